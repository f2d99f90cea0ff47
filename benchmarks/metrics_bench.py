"""What gracekit's Prometheus metrics cost on the request path.

The same stack (``DrainMiddleware`` with a deadline, the probes) with and without
``gracekit.metrics``: the hello route and a templated route (``/items/{item_id}``, a new raw path
each request), in one process per variant under uvicorn, loaded side by side in interleaved
rounds. A third process runs the metered app in prometheus_client's multiprocess mode (values
in files, as under ``gracekit run --workers N``), and a fourth, a second plain one, is the
control. At the end each metered server is scraped once, to check that it counted what it
answered.

Usage::

    .venv/bin/python benchmarks/metrics_bench.py --duration 5 --rounds 3 [--json figures.json]

A benchmark, not a test: a missed target is reported and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path
from harness import Scenario, ratio

APPS_DIR = Path(__file__).resolve().parent / "apps"
PLAIN = harness.UvicornApp("metrics_app:plain", app_dir=APPS_DIR, factory=True)
METERED = dataclasses.replace(PLAIN, target="metrics_app:metered")
SCENARIOS = (
    Scenario("plain", "plain", "/"),
    Scenario("metered", "metered", "/"),
    Scenario("multiprocess", "multiprocess", "/"),
    Scenario("plain-control", "control", "/"),
    Scenario("plain-items", "plain", "/items/42"),
    Scenario("metered-items", "metered", "/items/42"),
)
READY = "/health/ready"
TARGET_METERED_VS_PLAIN_RPS = 0.95  # at least


def counted(server: harness.Server) -> float:
    """The sum of ``http_requests_total`` that *server* reports."""
    status, body = server.get("/metrics")
    if status != 200:
        raise RuntimeError(f"{server.name}: /metrics answered {status}")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("http_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="metrics-")))
        shared = work_dir / "multiproc"
        shared.mkdir()
        apps = {
            "plain": PLAIN,
            "metered": METERED,
            "multiprocess": dataclasses.replace(
                METERED, env={"PROMETHEUS_MULTIPROC_DIR": str(shared)}
            ),
            "control": PLAIN,
        }
        load = harness.make_load(
            args.load_generator, connections=args.connections, work_dir=work_dir
        )
        servers = stack.enter_context(harness.run_servers(apps, log_dir=work_dir))
        for server in servers.values():
            server.wait_for_status(READY)
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
        )
        answered = {
            name: sum(sum(s.statuses.values()) for s in samples[scenario])
            for name, scenario in (("metered", "metered"), ("multiprocess", "multiprocess"))
        }
        answered["metered"] += sum(sum(s.statuses.values()) for s in samples["metered-items"])
        scraped = {name: counted(servers[name]) for name in ("metered", "multiprocess")}

    control = ratio("plain control/plain req/s", samples, "plain-control", "plain")
    ratios = [
        ratio(
            "metered/plain req/s", samples, "metered", "plain", at_least=TARGET_METERED_VS_PLAIN_RPS
        ),
        ratio("metered/plain req/s, /items/{id}", samples, "metered-items", "plain-items"),
        ratio("multiprocess/plain req/s", samples, "multiprocess", "plain"),
        ratio("metered/plain cpu per request", samples, "metered", "plain", "cpu_us_per_request"),
        ratio("metered/plain p99", samples, "metered", "plain", "p99_ms"),
        control,
    ]
    return harness.results(
        args,
        load,
        samples,
        ratios,
        noise_warning=harness.noise_warning(control),
        started=started,
        counts={"answered": answered, "scraped": scraped},
    )


def report(result: dict[str, Any]) -> str:
    counts = result["counts"]
    lines = [
        *harness.header_lines("gracekit metrics benchmark", result),
        "",
        *harness.table_lines(SCENARIOS, result["summary"]),
        "",
        *harness.ratio_lines(result),
        "",
        "requests counted (http_requests_total, warm-up included) vs answered in the rounds:",
    ]
    for name in ("metered", "multiprocess"):
        lines.append(
            f"  {name:<13} {counts['scraped'][name]:>10,.0f} counted  "
            f"{counts['answered'][name]:>10,} answered in the rounds"
        )
    lines.append(f"total runtime {result['runtime_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_load_options(parser)
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()
    return harness.run_benchmark(lambda: measure(args), report, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
