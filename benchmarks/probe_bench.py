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
import contextlib
import dataclasses
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path
from harness import Scenario, Server, ratio

APP = harness.UvicornApp(
    "probe_app:create_app", app_dir=Path(__file__).resolve().parent / "apps", factory=True
)
HEALTHY_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DSN_VARIABLE = "GRACEKIT_BENCH_POSTGRES_DSN"  # read by apps/probe_app.py
READY = "/health/ready"

TARGET_PROBE_VS_BARE_RPS = 0.90  # at least
TARGET_HANGING_VS_HEALTHY_P99 = 1.2  # at most

SCENARIOS = (
    Scenario("bare", "healthy", "/bare"),
    Scenario("probe", "healthy", READY),
    Scenario("probe-hanging", "hanging", READY),
    Scenario("bare-hanging", "hanging", "/bare"),
)


def checks(server: Server) -> dict[str, Any]:
    """The readiness report's checks (``?verbose``)."""
    _, body = server.get(READY + "?verbose")
    found: dict[str, Any] = json.loads(body)["checks"]
    return found


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="probe-bench-")))
        load = harness.make_load(connections=args.connections, work_dir=work_dir)
        listener = stack.enter_context(harness.HangingListener())
        hanging_dsn = f"postgresql://postgres@127.0.0.1:{listener.port}/test"
        apps = {
            "healthy": dataclasses.replace(APP, env={DSN_VARIABLE: HEALTHY_DSN}),
            "hanging": dataclasses.replace(APP, env={DSN_VARIABLE: hanging_dsn}),
        }
        servers = stack.enter_context(harness.run_servers(apps, log_dir=work_dir))
        servers["healthy"].wait_for_status(READY, 200)
        servers["hanging"].wait_until(
            lambda: checks(servers["hanging"])["postgres"]["status"] == "fail",
            what="failing postgres check",
        )
        harness.progress(
            f"servers ready after {time.monotonic() - started:.1f} s; load: {load.name}"
        )
        samples = harness.run_rounds(
            load,
            SCENARIOS,
            servers,
            rounds=args.rounds,
            duration=args.duration,
            warmup=args.warmup,
            counters={"hanging_connections": lambda: listener.accepted},
        )
        checks_after = {name: checks(server) for name, server in servers.items()}
        hanging = {"accepted": listener.accepted, "peak_open": listener.peak_open}

    control = ratio("bare hanging/healthy req/s", samples, "bare-hanging", "bare")
    ratios = [
        ratio("probe/bare req/s", samples, "probe", "bare", at_least=TARGET_PROBE_VS_BARE_RPS),
        ratio("probe/bare p99", samples, "probe", "bare", "p99_ms"),
        ratio(
            "probe hanging/healthy p99",
            samples,
            "probe-hanging",
            "probe",
            "p99_ms",
            at_most=TARGET_HANGING_VS_HEALTHY_P99,
        ),
        ratio("probe hanging/healthy req/s", samples, "probe-hanging", "probe"),
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
    return harness.results(
        args,
        load,
        samples,
        ratios,
        noise_warning=harness.noise_warning(control),
        started=started,
        checks_after_load=checks_after,
        hanging_listener=hanging,
    )


def report(result: dict[str, Any]) -> str:
    summary = result["summary"]
    hanging_s = sum(summary[s.name]["seconds"] for s in SCENARIOS if s.server == "hanging")
    during = sum(summary[s.name]["hanging_connections"] for s in SCENARIOS)
    listener = result["hanging_listener"]
    lines = [
        *harness.header_lines("gracekit probe benchmark", result),
        "",
        *harness.table_lines(SCENARIOS, summary),
        "",
        *harness.ratio_lines(result),
        "",
        f"hanging dependency: {during} connections accepted during {hanging_s:.0f} s of load on "
        f"its server ({listener['accepted']} in all), at most {listener['peak_open']} open at once",
        "checks after the load (status, last run ms, consecutive failures):",
    ]
    for name, server_checks in result["checks_after_load"].items():
        states = "  ".join(
            f"{check} {c['status']} {c['duration_ms']:.1f} {c['consecutive_failures']}"
            for check, c in server_checks.items()
        )
        lines.append(f"  {name:<8} {states}")
    lines.append(f"total runtime {result['runtime_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_load_options(parser)
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError as exc:
        print(f"PostgreSQL must listen on 127.0.0.1:5432 ({exc})", file=sys.stderr)
        return 1
    return harness.run_benchmark(lambda: measure(args), report, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
