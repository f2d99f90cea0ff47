"""What gracekit's readiness probe costs, and whether a hanging dependency slows it down.

Two uvicorn processes serve ``benchmarks/apps/probe_app.py``, identical but for the DSN of its
PostgreSQL check: the *healthy* one points at the real server on 127.0.0.1:5432, the *hanging*
one at a listener this script opens, which accepts connections and never answers. Both run for
the whole benchmark, so every measurement shares the same background (six checks a second).

Four scenarios are measured in interleaved rounds, rotating their order, after a warm-up:

  bare           healthy server, ``GET /bare`` (a plain Starlette route: the baseline)
  probe          healthy server, ``GET /health/ready``
  probe-hanging  hanging server, ``GET /health/ready`` (answers 503, as it should)
  bare-hanging   hanging server, ``GET /bare`` (control: how much two processes differ anyway)

Usage::

    .venv/bin/python benchmarks/probe_bench.py --duration 5 --rounds 3 [--json figures.json]

This is a benchmark, not a test: a ratio that misses its target is reported, and the exit status
stays 0. It fails (exit 1) only when it cannot measure at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

APPS = Path(__file__).resolve().parent / "apps"
HEALTHY_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DSN_VARIABLE = "GRACEKIT_BENCH_POSTGRES_DSN"  # read by apps/probe_app.py
READY = "/health/ready"

TARGET_PROBE_VS_BARE_RPS = 0.90  # at least
TARGET_HANGING_VS_HEALTHY_P99 = 1.2  # at most
# Two identical processes serving the same route differ by less than this when the machine is
# quiet; a control ratio further from 1 in any round means something else took the CPU.
CONTROL_SPREAD = 0.10

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT_S = 5  # a request slower than this counts as an error, not a latency


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # "healthy" or "hanging"
    path: str


SCENARIOS = (
    Scenario("bare", "healthy", "/bare"),
    Scenario("probe", "healthy", READY),
    Scenario("probe-hanging", "hanging", READY),
    Scenario("bare-hanging", "hanging", "/bare"),
)


@dataclass
class Sample:
    """One load run: what a load generator saw in *seconds* of keeping every connection busy."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    errors: dict[str, int]
    scenario: str = ""
    round: int = 0
    hanging_connections: int = 0  # accepted by the hanging listener during the run
    cpu_us_per_request: float = math.nan  # the server's CPU time (user + system) per answer

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


# -- the dependency that hangs ---------------------------------------------------------------


class HangingListener:
    """A TCP listener that accepts connections, reads whatever arrives, and never answers.

    It runs in a thread of its own and counts what it accepted and the most it held open at
    once: a check that gives up must also close its socket, or connections pile up here.
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._server.setblocking(False)
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self.peak_open = 0  # more than one would mean a check left a connection behind
        self._peers: set[socket.socket] = set()
        self._wake, self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="hanging-listener", daemon=True)

    def __enter__(self) -> HangingListener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._waker.send(b"x")
        self._thread.join(timeout=STOP_TIMEOUT)
        self._waker.close()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._server, selectors.EVENT_READ)
        selector.register(self._wake, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in selector.select():
                    sock = key.fileobj
                    if sock is self._wake:
                        return
                    if sock is self._server:
                        with contextlib.suppress(BlockingIOError):
                            peer, _ = self._server.accept()
                            peer.setblocking(False)
                            self.accepted += 1
                            self._peers.add(peer)
                            self.peak_open = max(self.peak_open, len(self._peers))
                            selector.register(peer, selectors.EVENT_READ)
                    elif isinstance(sock, socket.socket) and not self._drain(sock):
                        selector.unregister(sock)
                        self._peers.discard(sock)
                        sock.close()
        finally:
            for sock in (*self._peers, self._server, self._wake):
                sock.close()
            self._peers.clear()
            selector.close()

    @staticmethod
    def _drain(peer: socket.socket) -> bool:
        """Read and drop what the peer sent; False once it has closed its end."""
        try:
            return bool(peer.recv(65536))
        except BlockingIOError:
            return True
        except OSError:
            return False


# -- the servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) uvicorn has used so far; NaN where there is no /proc.

        Per request, it moves far less than req/s when other processes compete for the cores.
        """
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def checks(self) -> dict[str, Any]:
        """The readiness report's checks (``?verbose``)."""
        _, body = fetch(self.port, READY + "?verbose")
        checks: dict[str, Any] = json.loads(body)["checks"]
        return checks

    def wait_until(self, condition: Callable[[], bool], *, what: str) -> None:
        """Poll *condition* until it holds; fail at once if uvicorn exits, or after a while."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} uvicorn exited with {self.process.returncode}:"
                    f"\n{self.log_path.read_text(errors='replace')}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if condition():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} server: no {what} within {START_TIMEOUT:g} s:"
                    f"\n{self.log_path.read_text(errors='replace')}"
                )
            time.sleep(0.05)


@contextlib.contextmanager
def run_server(name: str, dsn: str, log_dir: Path) -> Iterator[Server]:
    """A uvicorn process serving the benchmark app; SIGTERM, then SIGKILL, on the way out."""
    port = free_port()
    log_path = log_dir / f"uvicorn-{name}.log"
    command = [
        sys.executable, "-m", "uvicorn", "probe_app:create_app", "--factory",
        "--app-dir", str(APPS), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = {**os.environ, DSN_VARIABLE: dsn, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        # A session of its own: a Ctrl-C reaches this script only, whose cleanup stops uvicorn.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield Server(name, port, process, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- load generators -------------------------------------------------------------------------

# Counts statuses per thread, then prints the figures this script parses, one line each.
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
    """wrk with one thread (the server needs the other core) and *connections* connections."""

    def __init__(self, wrk: str, *, connections: int, work_dir: Path) -> None:
        self.wrk = wrk
        self.connections = connections
        self.script = work_dir / "probe_bench.lua"
        self.script.write_text(WRK_SCRIPT)
        version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        self.name = (version.stdout or version.stderr).split(" Copyright")[0].strip() or "wrk"

    def run(self, url: str, duration: float) -> Sample:
        command = [
            self.wrk, "-t1", f"-c{self.connections}", f"-d{max(1, round(duration))}s",
            f"--timeout={REQUEST_TIMEOUT_S}s", "-s", str(self.script), url,
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
            p50_ms=_percentile(ordered, 50) * 1000,
            p99_ms=_percentile(ordered, 99) * 1000,
            statuses=dict(load.statuses),
            errors=dict(load.errors),
        )


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# -- the benchmark ---------------------------------------------------------------------------


@dataclass
class Ratio:
    label: str
    value: float
    low: float  # the spread of the same ratio taken round by round
    high: float
    target: str | None = None  # ">= 0.9", "<= 1.2", or None for information only
    verdict: str = "info"


def ratio(
    label: str, samples: dict[str, list[Sample]], top: str, bottom: str, figure: str
) -> Ratio:
    """The median of *figure* ("req/s" or a Sample field) in scenario *top* over *bottom*."""

    def pick(s: Sample) -> float:
        return s.rps if figure == "req/s" else float(getattr(s, figure))

    def median(name: str) -> float:
        return statistics.median(pick(s) for s in samples[name])

    rounds = [
        pick(a) / pick(b) for a, b in zip(samples[top], samples[bottom], strict=True) if pick(b)
    ]
    value = median(top) / median(bottom) if median(bottom) else math.nan
    return Ratio(label, value, min(rounds, default=math.nan), max(rounds, default=math.nan))


def judged(r: Ratio, op: str, target: float) -> Ratio:
    r.target = f"{op} {target:g}"
    ok = r.value >= target if op == ">=" else r.value <= target
    r.verdict = "PASS" if ok else "MISS"
    return r


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="probe-bench-")))
        wrk = shutil.which("wrk") if args.load_generator != "builtin" else None
        if args.load_generator == "wrk" and wrk is None:
            raise RuntimeError("--load-generator wrk, but wrk is not on PATH")
        load: WrkLoad | SocketLoad = (
            WrkLoad(wrk, connections=args.connections, work_dir=work_dir)
            if wrk
            else SocketLoad(connections=args.connections)
        )
        listener = stack.enter_context(HangingListener())
        hanging_dsn = f"postgresql://postgres@127.0.0.1:{listener.port}/test"
        servers = {
            "healthy": stack.enter_context(run_server("healthy", HEALTHY_DSN, work_dir)),
            "hanging": stack.enter_context(run_server("hanging", hanging_dsn, work_dir)),
        }
        servers["healthy"].wait_until(
            lambda: fetch(servers["healthy"].port, READY)[0] == 200, what="200 from " + READY
        )
        servers["hanging"].wait_until(
            lambda: servers["hanging"].checks()["postgres"]["status"] == "fail",
            what="failing postgres check",
        )
        _progress(f"servers ready after {time.monotonic() - started:.1f} s; load: {load.name}")

        if args.warmup > 0:
            for scenario in SCENARIOS:
                load.run(servers[scenario.server].url + scenario.path, args.warmup)
        samples: dict[str, list[Sample]] = {s.name: [] for s in SCENARIOS}
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(SCENARIOS)  # every scenario takes every position
            for scenario in SCENARIOS[shift:] + SCENARIOS[:shift]:
                server = servers[scenario.server]
                accepted, cpu = listener.accepted, server.cpu_seconds()
                sample = load.run(server.url + scenario.path, args.duration)
                sample.scenario, sample.round = scenario.name, round_no
                sample.hanging_connections = listener.accepted - accepted
                if sample.requests:
                    sample.cpu_us_per_request = (server.cpu_seconds() - cpu) / sample.requests * 1e6
                samples[scenario.name].append(sample)
                _progress(
                    f"round {round_no}/{args.rounds} {scenario.name:<14} {sample.rps:8.0f} req/s"
                    f"  p50 {sample.p50_ms:6.2f} ms  p99 {sample.p99_ms:6.2f} ms"
                    f"  cpu {sample.cpu_us_per_request:5.0f} us/req"
                )
        checks_after = {name: server.checks() for name, server in servers.items()}
        hanging = {"accepted": listener.accepted, "peak_open": listener.peak_open}

    control = ratio("bare hanging/healthy req/s", samples, "bare-hanging", "bare", "req/s")
    ratios = [
        judged(
            ratio("probe/bare req/s", samples, "probe", "bare", "req/s"),
            ">=",
            TARGET_PROBE_VS_BARE_RPS,
        ),
        ratio("probe/bare p99", samples, "probe", "bare", "p99_ms"),
        judged(
            ratio("probe hanging/healthy p99", samples, "probe-hanging", "probe", "p99_ms"),
            "<=",
            TARGET_HANGING_VS_HEALTHY_P99,
        ),
        ratio("probe hanging/healthy req/s", samples, "probe-hanging", "probe", "req/s"),
        control,
        ratio("probe/bare cpu per request", samples, "probe", "bare", "cpu_us_per_request"),
        ratio(
            "probe hanging/healthy cpu per req",
            samples,
            "probe-hanging",
            "probe",
            "cpu_us_per_request",
        ),
    ]
    noise = None
    if not 1 - CONTROL_SPREAD <= control.low <= control.high <= 1 + CONTROL_SPREAD:
        noise = (
            f"the control ratio ranged {control.low:.2f}..{control.high:.2f} over the rounds: "
            "something else used the CPU, so these figures are unreliable; run again, or run "
            "more and shorter rounds"
        )
    return {
        "config": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "warmup_s": args.warmup,
            "load_generator": load.name,
        },
        "environment": _environment(),
        "samples": [{**asdict(s), "rps": s.rps} for runs in samples.values() for s in runs],
        "summary": {name: _summary(runs) for name, runs in samples.items()},
        "ratios": [asdict(r) for r in ratios],
        "noise_warning": noise,
        "checks_after_load": checks_after,
        "hanging_listener": hanging,
        "runtime_s": round(time.monotonic() - started, 1),
    }


def _summary(runs: list[Sample]) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for s in runs:
        statuses.update(s.statuses)
        errors.update(s.errors)
    return {
        "rps": statistics.median(s.rps for s in runs),
        "p50_ms": statistics.median(s.p50_ms for s in runs),
        "p99_ms": statistics.median(s.p99_ms for s in runs),
        "cpu_us_per_request": statistics.median(s.cpu_us_per_request for s in runs),
        "statuses": dict(sorted(statuses.items())),
        "errors": dict(errors),
        "hanging_connections": sum(s.hanging_connections for s in runs),
        "seconds": sum(s.seconds for s in runs),
    }


def _environment() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return {
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "starlette": version("starlette"),
        "gracekit": version("gracekit"),
        # What uvicorn's "auto" settings pick in this interpreter.
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }


def report(result: dict[str, Any]) -> str:
    config, env = result["config"], result["environment"]
    lines = [
        f"gracekit probe benchmark: {config['load_generator']}, {config['connections']} "
        f"connections, {config['rounds']} rounds x {config['duration_s']:g} s "
        f"(warm-up {config['warmup_s']:g} s)",
        f"python {env['python']}, uvicorn {env['uvicorn']} ({env['loop']}, {env['http']}), "
        f"starlette {env['starlette']}, gracekit {env['gracekit']}",
        "",
        f"{'scenario':<14} {'server':<8} {'path':<14} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'cpu us/req':>10}  statuses",
    ]
    for scenario in SCENARIOS:
        s = result["summary"][scenario.name]
        statuses = " ".join(f"{code}x{n}" for code, n in s["statuses"].items()) or "-"
        errors = " ".join(f"{kind}x{n}" for kind, n in s["errors"].items())
        lines.append(
            f"{scenario.name:<14} {scenario.server:<8} {scenario.path:<14} {s['rps']:8.0f} "
            f"{s['p50_ms']:7.2f} {s['p99_ms']:7.2f} {s['cpu_us_per_request']:10.0f}  {statuses}"
            + (f"  errors: {errors}" if errors else "")
        )
    lines += ["", "medians over rounds; ratio of medians (range of the per-round ratios):"]
    for r in result["ratios"]:
        target = f"target {r['target']}  {r['verdict']}" if r["target"] else "info"
        lines.append(
            f"  {r['label']:<34} {r['value']:5.2f}  ({r['low']:.2f}..{r['high']:.2f})  {target}"
        )
    if result["noise_warning"]:
        lines.append(f"WARNING: {result['noise_warning']}")
    hanging_s = sum(
        result["summary"][s.name]["seconds"] for s in SCENARIOS if s.server == "hanging"
    )
    during = sum(result["summary"][s.name]["hanging_connections"] for s in SCENARIOS)
    listener = result["hanging_listener"]
    lines += [
        "",
        f"hanging dependency: {during} connections accepted during {hanging_s:.0f} s of load on "
        f"its server ({listener['accepted']} in all), at most {listener['peak_open']} open at once",
        "checks after the load (status, last run ms, consecutive failures):",
    ]
    for name, checks in result["checks_after_load"].items():
        states = "  ".join(
            f"{check} {c['status']} {c['duration_ms']:.1f} {c['consecutive_failures']}"
            for check, c in checks.items()
        )
        lines.append(f"  {name:<8} {states}")
    lines.append(f"total runtime {result['runtime_s']:.1f} s")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """*value* with NaN (a figure that could not be measured) as null, which JSON allows."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _positive(kind: type[float] | type[int], *, allow_zero: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> float | int:
        value = kind(text)
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=_positive(float),
        default=5.0,
        help="seconds of load per scenario and round (default 5)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive(int),
        default=5,
        help="interleaved rounds of every scenario (default 5)",
    )
    parser.add_argument(
        "--connections",
        type=_positive(int),
        default=16,
        help="keep-alive connections kept busy (default 16)",
    )
    parser.add_argument(
        "--warmup",
        type=_positive(float, allow_zero=True),
        default=2.0,
        help="seconds of unmeasured load per scenario first (default 2)",
    )
    parser.add_argument(
        "--load-generator",
        choices=("auto", "wrk", "builtin"),
        default="auto",
        help="auto: wrk when it is on PATH, else the built-in one",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every cleanup on the way out

    signal.signal(signal.SIGTERM, stop)
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError as exc:
        print(f"PostgreSQL must listen on 127.0.0.1:5432 ({exc})", file=sys.stderr)
        return 1
    try:
        result = measure(args)
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the servers and wrk are stopped by now
        print("interrupted", file=sys.stderr)
        return 130
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(_json_safe(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
