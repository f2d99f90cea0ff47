"""Hostile clients of an HTTP port, and a kubelet-like prober to measure what they cost.

Every attack is bounded: a fixed number of connections on 127.0.0.1, run in a thread of its
own until the ``with`` block ends. An attacker reconnects whenever the server closes one of its
connections, as one that wants to keep the server full would. ``benchmarks/abuse_bench.py``
uses the same attacks, so the test and the benchmark measure the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ATTACKS",
    "CONNECTIONS",
    "Outcome",
    "Prober",
    "attack",
    "probe_under_attack",
    "raise_open_files",
    "rss_mb",
    "smuggle",
]

ATTACKS = ("idle", "slow-header", "reconnecting", "pipelining")
#: How many connections each attack opens: more than the management port's budget (256), or,
#: reconnecting, one more, so that every connection the server closes for room comes back.
CONNECTIONS = {"idle": 300, "slow-header": 300, "reconnecting": 257, "pipelining": 300}
HEAD = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"


def raise_open_files(wanted: int = 4096) -> int:
    """Raise this process's soft limit of open files towards *wanted* (child processes
    inherit it); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss_mb(pid: int) -> float:
    """The resident set size of process *pid*, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _connection(kind: str, port: int, path: str, stats: dict[str, int]) -> None:
    """One attacking connection, reopened whenever the server closes it."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["refused"] += 1
            await asyncio.sleep(0.01)
            continue
        stats["opened"] += 1
        try:
            if kind == "slow-header":
                writer.write(HEAD)
                while True:  # one byte a second of a header that never ends
                    await asyncio.sleep(1)
                    writer.write(b"a")
                    await writer.drain()
            elif kind == "pipelining":
                while True:  # requests, never reading an answer
                    writer.write(request * 64)
                    await writer.drain()
            else:  # idle, reconnecting: say nothing, and see when the server hangs up
                await reader.read(1)
        except OSError:
            pass
        finally:
            writer.transport.abort()  # at once, unsent requests and all
        await asyncio.sleep(0)


@dataclass
class _Attack:
    kind: str
    port: int
    connections: int
    path: str
    stats: dict[str, int] = field(default_factory=lambda: {"opened": 0, "refused": 0})


@contextlib.contextmanager
def attack(kind: str, port: int, connections: int, *, path: str = "/") -> Iterator[_Attack]:
    """Run *connections* attacking connections of *kind* (one of :data:`ATTACKS`) on
    127.0.0.1:*port* in a thread of their own, for the body's duration."""
    if kind not in ATTACKS:
        raise ValueError(f"kind must be one of {ATTACKS}")
    state = _Attack(kind, port, connections, path)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def run() -> None:
        tasks = [
            asyncio.ensure_future(_connection(kind, port, path, state.stats))
            for _ in range(connections)
        ]
        ready.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=lambda: _run_until_cancelled(loop, run()), daemon=True)
    thread.start()
    ready.wait(10)
    # Give the connections time to be opened before the body measures anything.
    deadline = time.monotonic() + 10
    while state.stats["opened"] < connections and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(_cancel_all, loop)
        thread.join(15)


def _run_until_cancelled(loop: asyncio.AbstractEventLoop, coro: object) -> None:
    asyncio.set_event_loop(loop)
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(coro)  # type: ignore[arg-type]
    loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


class Prober(threading.Thread):
    """Probes like the kubelet: a fresh connection every *interval* seconds, ``GET path``,
    a success being a 200 within *timeout* seconds, from connect to the end of the answer."""

    def __init__(
        self, port: int, *, path: str = "/health/live", interval: float = 0.1, timeout: float = 1.0
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.interval, self.timeout = port, path, interval, timeout
        self.stopping = threading.Event()
        self.results: list[tuple[bool, float]] = []  # (succeeded, seconds)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            started = time.monotonic()
            ok = False
            try:
                connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
                try:
                    connection.request("GET", self.path)
                    response = connection.getresponse()
                    response.read()
                    ok = response.status == 200
                finally:
                    connection.close()
            except (OSError, http.client.HTTPException):
                pass
            took = time.monotonic() - started
            self.results.append((ok and took <= self.timeout, took))
            next_at += self.interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def measure(
        self, seconds: float, *, sample: Callable[[], None] | None = None
    ) -> tuple[int, int, float]:
        """Probe for *seconds*, calling *sample* every 0.25 s meanwhile: (succeeded, sent,
        slowest seconds)."""
        self.start()
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.25, left))
            if sample is not None:
                sample()
        self.stopping.set()
        self.join(self.timeout + 1)
        succeeded = sum(ok for ok, _ in self.results)
        return succeeded, len(self.results), max((t for _, t in self.results), default=0.0)


@dataclass
class Outcome:
    """What kubelet-like probes met on a port under attack, and what the attack cost."""

    succeeded: int
    sent: int
    slowest: float  # seconds
    rss_growth_mb: float  # the server's peak during the attack, over its RSS just before
    stats: dict[str, int]  # the attack's connections: opened, refused

    @property
    def success(self) -> float:
        return self.succeeded / self.sent if self.sent else 0.0


def probe_under_attack(
    kind: str,
    port: int,
    *,
    pid: int,
    seconds: float,
    path: str = "/health/live",
    connections: int | None = None,
    attack_path: str = "/",
    rss_cap_mb: float | None = None,
) -> Outcome:
    """Probe ``GET path`` on 127.0.0.1:*port* for *seconds* while *connections* (default:
    :data:`CONNECTIONS`) of *kind* attack it (their requests on *attack_path*), watching the
    RSS of server process *pid*; the attack stops early once that has grown by *rss_cap_mb*."""
    before = peak = rss_mb(pid)
    with attack(kind, port, connections or CONNECTIONS[kind], path=attack_path) as attacking:
        prober = Prober(port, path=path)

        def sample() -> None:
            nonlocal peak
            peak = max(peak, rss_mb(pid))
            if rss_cap_mb is not None and peak - before >= rss_cap_mb:
                prober.stopping.set()

        succeeded, sent, slowest = prober.measure(seconds, sample=sample)
    return Outcome(succeeded, sent, slowest, peak - before, dict(attacking.stats))


def smuggle(port: int, *, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send a request with both Content-Length and Transfer-Encoding whose chunked body ends
    early, with a second request behind it; what came back, and whether the server closed
    the connection."""
    hidden = b"GET /health/prestop HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + hidden
    first = (
        b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(first + body)
        sock.settimeout(1.5)  # a second answer, or the close, comes at once when it comes
        received = b""
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return received, closed
