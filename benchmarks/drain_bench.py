"""What gracekit's drain middleware costs, how fast a SIGTERM with nothing in flight ends, and
whether the middleware holds on to memory.

1. Throughput: ``GET /`` (a hello route) on the same Starlette app with and without
   ``DrainMiddleware``, two uvicorn processes side by side, interleaved rounds; a second bare
   process is the control (how much two identical processes differ anyway).
2. SIGTERM to exit: the drained app under ``gracekit run --shutdown-delay 1``, nothing in
   flight; the time from SIGTERM to the process's exit, less the delay, and its exit status.
3. Memory: resident set size of the bare and the drained server after a warm-up of 10,000
   requests, then after 100,000 more.

Usage::

    .venv/bin/python benchmarks/drain_bench.py --duration 5 --rounds 3 [--json figures.json]

A benchmark, not a test: a missed target is reported and the exit status stays 0. It reads
``/proc`` and waits on pidfds, so it runs on Linux.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path
from harness import Load, Scenario, Server, ratio

APPS_DIR = Path(__file__).resolve().parent / "apps"
BARE = harness.UvicornApp("drain_app:bare", app_dir=APPS_DIR, factory=True)
DRAINED = dataclasses.replace(BARE, target="drain_app:drained")
READY = "/health/ready"

TARGET_DRAINED_VS_BARE_RPS = 0.97  # at least
TARGET_EXIT_BEYOND_DELAY_S = 0.3  # below, in every run: SIGTERM to exit, less the delay
TARGET_RSS_GROWTH_MB = 5.0  # below, over MEMORY_REQUESTS
DELAY = 1.0  # gracekit run --shutdown-delay
EXIT_TIMEOUT = DELAY + 15.0  # the app's drain timeout is 5 s; past this, something is stuck
WARMUP_REQUESTS = 10_000
MEMORY_REQUESTS = 100_000

SCENARIOS = (
    Scenario("bare", "bare", "/"),
    Scenario("drained", "drained", "/"),
    Scenario("bare-control", "control", "/"),
)


def rss_mb(process: subprocess.Popen[bytes]) -> float:
    """The resident set size of *process*, in MB, from ``/proc/PID/status``."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{process.pid}/status")


def serve_requests(load: Load, url: str, count: int, rate: float) -> dict[int, int]:
    """Load *url* until it has answered at least *count* requests; the statuses it gave.

    wrk has no request count, only a duration: each run is sized from the last known *rate*,
    with a margin, and the real count comes from the load generator's own figures.
    """
    statuses: dict[int, int] = {}
    served = 0
    while served < count:
        sample = load.run(url, max(1.0, (count - served) / rate * 1.1))
        if not sample.requests:
            raise RuntimeError(f"no answers from {url}: {sample.errors}")
        served += sample.requests
        rate = sample.rps
        for status, n in sample.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return statuses


def memory(load: Load, server: Server, rate: float) -> dict[str, Any]:
    """RSS after WARMUP_REQUESTS, then after at least MEMORY_REQUESTS more."""
    url = server.url + "/"
    serve_requests(load, url, WARMUP_REQUESTS, rate)
    before = rss_mb(server.process)
    statuses = serve_requests(load, url, MEMORY_REQUESTS, rate)
    after = rss_mb(server.process)
    return {
        "requests": sum(statuses.values()),
        "statuses": statuses,
        "before_mb": before,
        "after_mb": after,
        "growth_mb": after - before,
    }


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait for *process* to exit; the monotonic time it did.

    ``Popen.wait(timeout)`` polls, up to 50 ms apart: too coarse next to a 0.3 s target. A
    pidfd becomes readable the moment the process exits.
    """
    pidfd = os.pidfd_open(process.pid)
    try:
        exited, _, _ = select.select([pidfd], [], [], timeout)
        at = time.monotonic()
    finally:
        os.close(pidfd)
    if not exited:
        raise subprocess.TimeoutExpired(process.args, timeout)
    process.wait()
    return at


def sigterm_exit(run: int, work_dir: Path) -> dict[str, Any]:
    """Start the drained app under ``gracekit run``, wait until it is ready, SIGTERM it with
    nothing in flight, and time its exit."""
    port = harness.free_port()
    command = [
        sys.executable, "-m", "gracekit", "run", "drain_app:drained", "--factory",
        "--app-dir", str(APPS_DIR), "--port", str(port), "--log-level", "warning",
        "--shutdown-delay", str(DELAY),
    ]  # fmt: skip
    log_path = work_dir / f"gracekit-run-{run}.log"
    with log_path.open("wb") as log:
        # A session of its own, like the harness's servers: a Ctrl-C reaches the benchmark only.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        Server(f"gracekit run #{run + 1}", port, process, log_path).wait_for_status(READY)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            exited = wait_exit(process, EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"gracekit run did not exit within {EXIT_TIMEOUT:g} s of SIGTERM:\n"
                + log_path.read_text(errors="replace")
            ) from None
        return {
            "seconds": exited - sent,
            "beyond_delay_s": exited - sent - DELAY,
            "status": process.returncode,
        }
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="drain-bench-")))
        apps = {"bare": BARE, "drained": DRAINED, "control": BARE}
        with harness.serving(args, apps, work_dir) as (load, servers):
            samples = harness.measure_rounds(args, load, SCENARIOS, servers)
            harness.progress(
                f"memory: {WARMUP_REQUESTS:,} requests, RSS, {MEMORY_REQUESTS:,} more, RSS"
            )
            memory_figures = {}
            for name in ("bare", "drained"):
                rate = statistics.median(s.rps for s in samples[name]) or 1000.0
                memory_figures[name] = memory(load, servers[name], rate)
        # The load servers have stopped: nothing else runs while the exits are timed.
        harness.progress(f"SIGTERM to exit: {args.exit_runs} runs of gracekit run")
        exits = [sigterm_exit(run, work_dir) for run in range(args.exit_runs)]

    control = ratio("bare control/bare req/s", samples, "bare-control", "bare")
    ratios = [
        ratio(
            "drained/bare req/s", samples, "drained", "bare", at_least=TARGET_DRAINED_VS_BARE_RPS
        ),
        ratio("drained/bare p50", samples, "drained", "bare", "p50_ms"),
        ratio("drained/bare p99", samples, "drained", "bare", "p99_ms"),
        ratio("drained/bare cpu per request", samples, "drained", "bare", "cpu_us_per_request"),
        control,
    ]
    beyond = [e["beyond_delay_s"] for e in exits]
    statuses = [e["status"] for e in exits]
    growth = memory_figures["drained"]["growth_mb"]
    return harness.results(
        args,
        load,
        samples,
        ratios,
        noise_warning=harness.noise_warning(control),
        started=started,
        sigterm_exit={
            "delay_s": DELAY,
            "runs": exits,
            "median_beyond_delay_s": statistics.median(beyond),
            "max_beyond_delay_s": max(beyond),
            "target": f"max < {TARGET_EXIT_BEYOND_DELAY_S:g} s",
            "verdict": verdict(max(beyond) < TARGET_EXIT_BEYOND_DELAY_S),
            "statuses_verdict": verdict(all(s == 0 for s in statuses)),
        },
        memory={
            **memory_figures,
            "target": f"drained growth < {TARGET_RSS_GROWTH_MB:g} MB",
            "verdict": verdict(growth < TARGET_RSS_GROWTH_MB),
        },
    )


def report(result: dict[str, Any]) -> str:
    exits, mem = result["sigterm_exit"], result["memory"]
    statuses = " ".join(str(e["status"]) for e in exits["runs"])
    lines = [
        *harness.header_lines("gracekit drain benchmark", result),
        "",
        *harness.table_lines(SCENARIOS, result["summary"]),
        "",
        *harness.ratio_lines(result),
        "",
        f"SIGTERM to exit under gracekit run, nothing in flight, --shutdown-delay {DELAY:g}, "
        f"{len(exits['runs'])} runs:",
        f"  time beyond the delay  {exits['median_beyond_delay_s']:.3f} s median, "
        f"{exits['max_beyond_delay_s']:.3f} s max  target {exits['target']}  {exits['verdict']}",
        f"  exit statuses          {statuses}  target all 0  {exits['statuses_verdict']}",
        f"resident set size after {WARMUP_REQUESTS:,} warm-up requests, then after "
        f"{MEMORY_REQUESTS:,}+ more:",
    ]
    for name in ("bare", "drained"):
        m = mem[name]
        odd = {code: n for code, n in m["statuses"].items() if code != 200}
        target = (
            f"target < {TARGET_RSS_GROWTH_MB:g} MB  {mem['verdict']}"
            if name == "drained"
            else "info"
        )
        lines.append(
            f"  {name:<8} {m['before_mb']:6.1f} -> {m['after_mb']:6.1f} MB over {m['requests']:,}"
            f" requests  {m['growth_mb']:+.2f} MB  {target}"
            + (f"  (non-200: {odd})" if odd else "")
        )
    lines.append(f"total runtime {result['runtime_s']:.1f} s")
    return "\n".join(lines)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exit-runs",
        type=harness.positive(int),
        default=5,
        help="SIGTERM-to-exit runs of gracekit run (default 5)",
    )


def main(argv: list[str] | None = None) -> int:
    return harness.main(__doc__, measure, report, argv, options=options)


if __name__ == "__main__":
    sys.exit(main())
