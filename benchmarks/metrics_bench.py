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
    with tempfile.TemporaryDirectory(prefix="metrics-") as work:
        work_dir = Path(work)
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
        with harness.serving(args, apps, work_dir) as (load, servers):
            samples = harness.measure_rounds(args, load, SCENARIOS, servers)
            scraped = {name: counted(servers[name]) for name in ("metered", "multiprocess")}
        answered = {
            name: sum(sum(s.statuses.values()) for s in samples[scenario])
            for name, scenario in (("metered", "metered"), ("multiprocess", "multiprocess"))
        }
        answered["metered"] += sum(sum(s.statuses.values()) for s in samples["metered-items"])

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
    return harness.main(__doc__, measure, report, argv)


if __name__ == "__main__":
    sys.exit(main())
