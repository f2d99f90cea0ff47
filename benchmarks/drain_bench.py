"""What gracekit's drain middleware costs, how fast a SIGTERM with nothing in flight ends, and
whether the middleware holds on to memory.

1. Throughput: ``GET /`` (a hello route) on the same Starlette app with and without
   ``DrainMiddleware``, two uvicorn processes side by side, interleaved rounds; a second bare
   process is the control (how much two identical processes differ anyway).
2. SIGTERM to exit: the drained app under ``gracekit run --shutdown-delay 1``, nothing in
   flight; the time from SIGTERM to the process's exit, less the delay, and its exit status.
3. Memory: resident set size of each server before and after 100,000 more requests.

Usage::

    .venv/bin/python benchmarks/drain_bench.py --duration 5 --rounds 3 [--json figures.json]

A benchmark, not a test: a missed target is reported and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path
from harness import Scenario, Server, ratio

APPS_DIR = Path(__file__).resolve().parent / "apps"
BARE = harness.UvicornApp("drain_app:bare", app_dir=APPS_DIR, factory=True)
DRAINED = dataclasses.replace(BARE, target="drain_app:drained")

TARGET_DRAINED_VS_BARE_RPS = 0.97  # at least
TARGET_EXIT_OVERHEAD_S = 0.3  # at most, SIGTERM to exit beyond the delay
TARGET_RSS_GROWTH_MB = 5.0  # at most, over 100,000 requests
DELAY = 1.0
MEMORY_REQUESTS = 100_000

SCENARIOS = (
    Scenario("bare", "bare", "/"),
    Scenario("drained", "drained", "/"),
    Scenario("bare-control", "control", "/"),
)


def rss_mb(server: Server) -> float:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc")


def memory(load: harness.Load, server: Server, rps: float) -> dict[str, float]:
    """RSS before and after at least MEMORY_REQUESTS requests (sized from the measured rate)."""
    load.run(server.url + "/", 2.0)  # warm-up: imports, caches, pools
    before = rss_mb(server)
    served = 0
    while served < MEMORY_REQUESTS:
        seconds = max(1.0, (MEMORY_REQUESTS - served) / max(rps, 1.0) * 1.1)
        served += load.run(server.url + "/", seconds).requests
    after = rss_mb(server)
    return {"requests": served, "before_mb": before, "after_mb": after, "growth_mb": after - before}


def sigterm_exits(runs: int, work_dir: Path) -> list[dict[str, float]]:
    """Start the drained app under ``gracekit run``, SIGTERM it idle, time the exit."""
    exits = []
    for run in range(runs):
        port = harness.free_port()
        command = [
            sys.executable, "-m", "gracekit", "run", "drain_app:drained", "--factory",
            "--app-dir", str(APPS_DIR), "--port", str(port), "--log-level", "warning",
            "--shutdown-delay", str(DELAY),
        ]  # fmt: skip
        log = (work_dir / f"exit-{run}.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError):
                    if harness.fetch(port, "/health/ready")[0] == 200:
                        break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"gracekit run did not become ready (see {log.name})")
                time.sleep(0.05)
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=DELAY + 10)
            exits.append({"seconds": time.monotonic() - sent, "status": status})
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    return exits


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="drain-bench-")))
        load = harness.make_load(
            args.load_generator, connections=args.connections, work_dir=work_dir
        )
        apps = {"bare": BARE, "drained": DRAINED, "control": BARE}
        servers = stack.enter_context(harness.run_servers(apps, log_dir=work_dir))
        for server in servers.values():
            server.wait_for_status("/health/ready", 200)
        harness.progress(f"servers ready after {time.monotonic() - started:.1f} s")
        samples = harness.run_rounds(
            load,
            SCENARIOS,
            servers,
            rounds=args.rounds,
            duration=args.duration,
            warmup=args.warmup,
        )
        rates = {name: statistics.median(s.rps for s in runs) for name, runs in samples.items()}
        harness.progress("memory: 100,000 requests per server")
        memory_figures = {
            name: memory(load, servers[name], rates[name]) for name in ("bare", "drained")
        }
        harness.progress("SIGTERM to exit")
        exits = sigterm_exits(args.exit_runs, work_dir)

    control = ratio("bare control/bare req/s", samples, "bare-control", "bare")
    ratios = [
        ratio(
            "drained/bare req/s", samples, "drained", "bare", at_least=TARGET_DRAINED_VS_BARE_RPS
        ),
        ratio("drained/bare p99", samples, "drained", "bare", "p99_ms"),
        ratio("drained/bare cpu per request", samples, "drained", "bare", "cpu_us_per_request"),
        control,
    ]
    return harness.results(
        args,
        load,
        samples,
        ratios,
        noise_warning=harness.noise_warning(control),
        started=started,
        memory=memory_figures,
        sigterm_exits=exits,
    )


def report(result: dict[str, Any]) -> str:
    exits = result["sigterm_exits"]
    overheads = [e["seconds"] - DELAY for e in exits]
    worst = max(overheads)
    growth = result["memory"]["drained"]["growth_mb"]
    lines = [
        *harness.header_lines("gracekit drain benchmark", result),
        "",
        *harness.table_lines(SCENARIOS, result["summary"]),
        "",
        *harness.ratio_lines(result),
        "",
        f"SIGTERM to exit, nothing in flight, delay {DELAY:g} s, {len(exits)} runs: "
        f"delay + {statistics.median(overheads):.3f} s median, + {worst:.3f} s max "
        f"(target < {TARGET_EXIT_OVERHEAD_S} s) "
        f"{'PASS' if worst < TARGET_EXIT_OVERHEAD_S else 'MISS'}; "
        f"exit statuses {sorted({int(e['status']) for e in exits})}",
    ]
    for name, figures in result["memory"].items():
        verdict = ""
        if name == "drained":
            verdict = f" (target < {TARGET_RSS_GROWTH_MB:g} MB) " + (
                "PASS" if growth < TARGET_RSS_GROWTH_MB else "MISS"
            )
        lines.append(
            f"RSS {name:<8} {figures['before_mb']:.1f} -> {figures['after_mb']:.1f} MB over "
            f"{figures['requests']} requests: {figures['growth_mb']:+.2f} MB{verdict}"
        )
    lines.append(f"total runtime {result['runtime_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_load_options(parser)
    parser.add_argument("--exit-runs", type=harness.positive(int), default=5)
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()
    return harness.run_benchmark(lambda: measure(args), report, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
