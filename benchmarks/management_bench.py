"""What the management port costs the application while the kubelet and Prometheus poll it.

Three uvicorn processes of the same app (a hello route behind ``DrainMiddleware``; probes and
``/metrics`` on a management port): ``polled`` has its management port polled at 100 probes a
second for the whole run (a fresh connection each, as the kubelet's ``httpGet`` probes do,
rotating through ``/health/ready``, ``/health/live``, ``/health/startup`` and, once a second,
``/metrics``); ``quiet`` is not polled; ``quiet-control``, a second unpolled one, is the control.
The app's port is loaded side by side in interleaved rounds.

Usage::

    .venv/bin/python benchmarks/management_bench.py --duration 5 --rounds 3 [--json figures.json]

A benchmark, not a test: a missed target is reported and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path
from harness import Scenario, ratio

APPS_DIR = Path(__file__).resolve().parent / "apps"
APP = harness.UvicornApp("management_app:app", app_dir=APPS_DIR)
SCENARIOS = (
    Scenario("quiet", "quiet", "/"),
    Scenario("polled", "polled", "/"),
    Scenario("quiet-control", "control", "/"),
)
TARGET_POLLED_VS_QUIET_RPS = 0.97  # at least
POLL_RATE = 100.0  # probes a second
PATHS = ("/health/ready", "/health/live", "/health/startup")


class Poller(threading.Thread):
    """Polls a management port at a fixed rate, one fresh connection per probe."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, 1.0 / rate
        self.stopping = threading.Event()
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.worst_ms = 0.0

    def run(self) -> None:
        next_at, count = time.monotonic(), 0
        while not self.stopping.is_set():
            path = "/metrics" if count % int(1 / self.interval) == 0 else PATHS[count % 3]
            started = time.monotonic()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                connection.close()
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            except OSError:
                self.errors += 1
            self.worst_ms = max(self.worst_ms, (time.monotonic() - started) * 1000)
            count += 1
            next_at += self.interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    ports = {name: harness.free_port() for name in ("quiet", "polled", "control")}
    apps = {
        name: dataclasses.replace(APP, env={"GRACEKIT_MANAGEMENT_PORT": str(port)})
        for name, port in ports.items()
    }
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="management-")))

        def ready(server: harness.Server) -> None:
            port = ports[server.name]
            server.wait_until(
                lambda: harness.fetch(port, "/health/ready")[0] == 200,
                what="200 from the management port's /health/ready",
            )

        load, servers = stack.enter_context(harness.serving(args, apps, work_dir, ready=ready))
        poller = Poller(ports["polled"], POLL_RATE)
        poller.start()
        stack.callback(poller.stopping.set)
        polled_from = time.monotonic()
        samples = harness.measure_rounds(args, load, SCENARIOS, servers)
        poller.stopping.set()
        poller.join(timeout=5)
        polling = {
            "rate_target": POLL_RATE,
            "probes": sum(poller.statuses.values()),
            "rate": sum(poller.statuses.values()) / (time.monotonic() - polled_from),
            "statuses": poller.statuses,
            "errors": poller.errors,
            "worst_ms": poller.worst_ms,
        }

    control = ratio("quiet control/quiet req/s", samples, "quiet-control", "quiet")
    ratios = [
        ratio(
            "polled/quiet req/s", samples, "polled", "quiet", at_least=TARGET_POLLED_VS_QUIET_RPS
        ),
        ratio("polled/quiet p99", samples, "polled", "quiet", "p99_ms"),
        ratio("polled/quiet cpu per request", samples, "polled", "quiet", "cpu_us_per_request"),
        control,
    ]
    return harness.results(
        args,
        load,
        samples,
        ratios,
        noise_warning=harness.noise_warning(control),
        started=started,
        polling=polling,
    )


def report(result: dict[str, Any]) -> str:
    polling = result["polling"]
    statuses = " ".join(f"{code}x{n}" for code, n in sorted(polling["statuses"].items()))
    return "\n".join(
        [
            *harness.header_lines("gracekit management port benchmark", result),
            "",
            *harness.table_lines(SCENARIOS, result["summary"]),
            "",
            *harness.ratio_lines(result),
            "",
            f"polling of the polled server's management port: {polling['probes']:,} probes at "
            f"{polling['rate']:.0f}/s (target {polling['rate_target']:g}/s), statuses "
            f"{statuses}, {polling['errors']} errors, slowest {polling['worst_ms']:.1f} ms",
            f"total runtime {result['runtime_s']:.1f} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    return harness.main(__doc__, measure, report, argv)


if __name__ == "__main__":
    sys.exit(main())
