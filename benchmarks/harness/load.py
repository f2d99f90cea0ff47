"""Load generators: keep N keep-alive connections busy on one URL for a while, return a Sample.

- :class:`WrkLoad` runs wrk with a small Lua script that counts statuses and prints the figures
  from wrk's own latency histogram. Preferred: it costs the machine little per request.
- :class:`SocketLoad` is the fallback without wrk: asyncio protocols on raw keep-alive sockets,
  in the benchmark's own process.

:func:`make_load` picks one; both satisfy :class:`Load`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from .stats import Sample, percentile

REQUEST_TIMEOUT_S = 5  # a request slower than this counts as an error, not a latency
GENERATORS = ("auto", "wrk", "builtin")


class Load(Protocol):
    """Something that loads a URL for *duration* seconds and says what it saw."""

    name: str  # printed in the report, e.g. "wrk 4.1.0 [epoll]"

    def run(self, url: str, duration: float) -> Sample: ...


def make_load(kind: str = "auto", *, connections: int, work_dir: Path) -> Load:
    """The load generator *kind* names: ``wrk``, ``builtin``, or ``auto`` (wrk when on PATH).

    Raises ValueError for another *kind*, RuntimeError for ``wrk`` when wrk is not on PATH.
    """
    if kind not in GENERATORS:
        raise ValueError(f"load generator {kind!r}: expected one of {', '.join(GENERATORS)}")
    wrk = shutil.which("wrk") if kind != "builtin" else None
    if kind == "wrk" and wrk is None:
        raise RuntimeError("--load-generator wrk, but wrk is not on PATH")
    if wrk:
        return WrkLoad(wrk, connections=connections, work_dir=work_dir)
    return SocketLoad(connections=connections)


# Counts statuses per thread, then prints the figures WrkLoad parses, one line each.
WRK_SCRIPT = """\
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("gracekit-bench %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout))
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("gracekit-bench-status %d %d\\n", status, count))
    end
  end
end
"""


class WrkLoad:
    """wrk with *threads* threads (one by default: on a 2-core machine the server needs the
    other core) and *connections* connections; the Lua script goes into *work_dir*."""

    def __init__(self, wrk: str, *, connections: int, work_dir: Path, threads: int = 1) -> None:
        self.wrk = wrk
        self.connections = connections
        self.threads = threads
        self.script = work_dir / "gracekit-bench.lua"
        self.script.write_text(WRK_SCRIPT)
        version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        self.name = (version.stdout or version.stderr).split(" Copyright")[0].strip() or "wrk"

    def run(self, url: str, duration: float) -> Sample:
        """Load *url* for *duration* seconds, rounded to whole seconds (at least one)."""
        command = [
            self.wrk, f"-t{self.threads}", f"-c{self.connections}",
            f"-d{max(1, round(duration))}s", f"--timeout={REQUEST_TIMEOUT_S}s",
            "-s", str(self.script), url,
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=duration + 30
        )
        figures, statuses = None, Counter[int]()
        for line in done.stdout.splitlines():
            words = line.split()
            if words[:1] == ["gracekit-bench"]:
                figures = [int(word) for word in words[1:]]
            elif words[:1] == ["gracekit-bench-status"]:
                statuses[int(words[1])] += int(words[2])
        if done.returncode != 0 or figures is None:
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        requests, duration_us, p50_us, p99_us, *errors = figures
        return Sample(
            requests=requests,
            seconds=duration_us / 1e6,
            p50_ms=p50_us / 1000,
            p99_ms=p99_us / 1000,
            statuses=dict(statuses),
            errors={
                k: n
                for k, n in zip(("connect", "read", "write", "timeout"), errors, strict=True)
                if n
            },
        )


class _Client(asyncio.Protocol):
    """One keep-alive connection: send, read one response (by Content-Length), repeat."""

    def __init__(self, load: _SocketRun) -> None:
        self.load = load
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # TCP connections get a Transport
        self._send()

    def _send(self) -> None:
        transport = cast(asyncio.Transport, self.transport)
        self.sent_at = time.perf_counter()
        if self.sent_at >= self.load.stop_at:
            transport.close()
        else:
            transport.write(self.load.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:head_end]).lower()
            start = head.find(b"\r\ncontent-length:")
            if start < 0:  # this client reads Content-Length framing only
                self.load.errors["unframed"] += 1
                cast(asyncio.Transport, self.transport).abort()
                return
            length = int(head[start + 17 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < head_end + 4 + length:
                return
            del self.buffer[: head_end + 4 + length]
            self.load.record(int(head[9:12]), time.perf_counter() - self.sent_at)
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self.load.stop_at:
            self.load.errors["read"] += 1
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class _SocketRun:
    request: bytes
    stop_at: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, status: int, latency: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(latency)


class SocketLoad:
    """The fallback without wrk: asyncio protocols over raw keep-alive sockets, in-process.

    Its latencies include this process's own event-loop scheduling, so they read higher than
    wrk's; the ratios between scenarios stay comparable within one run.
    """

    name = "built-in asyncio load generator"

    def __init__(self, *, connections: int) -> None:
        self.connections = connections

    def run(self, url: str, duration: float) -> Sample:
        """Load *url* (``http://host:port/path``) for *duration* seconds."""
        return asyncio.run(self._run(url, duration))

    async def _run(self, url: str, duration: float) -> Sample:
        host_port, _, path = url.removeprefix("http://").partition("/")
        host, _, port = host_port.partition(":")
        request = f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode()
        started = time.perf_counter()
        load = _SocketRun(request, stop_at=started + duration)
        loop = asyncio.get_running_loop()
        clients = []
        for _ in range(self.connections):
            try:
                _, client = await loop.create_connection(lambda: _Client(load), host, int(port))
            except OSError:
                load.errors["connect"] += 1
            else:
                clients.append(client)
        pending: set[asyncio.Future[None]] = set()
        if clients:
            _, pending = await asyncio.wait(
                [c.closed for c in clients], timeout=duration + REQUEST_TIMEOUT_S
            )
        for client in clients:
            if client.closed in pending and client.transport is not None:
                load.errors["timeout"] += 1
                client.transport.abort()
        seconds = time.perf_counter() - started
        ordered = sorted(load.latencies)
        return Sample(
            requests=len(ordered),
            seconds=seconds,
            p50_ms=percentile(ordered, 50) * 1000,
            p99_ms=percentile(ordered, 99) * 1000,
            statuses=dict(load.statuses),
            errors=dict(load.errors),
        )
