"""What request deadlines cost on the request path, and how precisely they fire.

1. Throughput: the same hello route, whose 30 s deadline is never hit, with no middleware
   (``bare``), with ``DrainMiddleware`` without deadlines (``drained``), with a default
   deadline (``deadlines``), and with an anyio cancel scope per request instead (``scoped``, the
   mechanism gracekit does not use, measured to show why). A second bare process is the
   control (how much two identical processes differ anyway).
2. Precision: 200 requests sent at once, over 200 open connections, to a route whose 100 ms
   deadline always expires (the handler sleeps 1 s); how late after the deadline each 504
   arrives, over several rounds.

Usage::

    .venv/bin/python benchmarks/deadline_bench.py --duration 5 --rounds 3 [--json figures.json]

A benchmark, not a test: a missed target is reported and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path
from harness import Scenario, Server, percentile, ratio

APPS_DIR = Path(__file__).resolve().parent / "apps"
BARE = harness.UvicornApp("deadline_app:bare", app_dir=APPS_DIR, factory=True)
APPS = {
    "bare": BARE,
    "drained": dataclasses.replace(BARE, target="deadline_app:drained"),
    "deadlines": dataclasses.replace(BARE, target="deadline_app:deadlines"),
    "scoped": dataclasses.replace(BARE, target="deadline_app:scoped"),
    "control": BARE,
}
SCENARIOS = (
    Scenario("bare", "bare", "/"),
    Scenario("drained", "drained", "/"),
    Scenario("deadlines", "deadlines", "/"),
    Scenario("scoped", "scoped", "/"),
    Scenario("bare-control", "control", "/"),
)

TARGET_DEADLINES_VS_BARE_RPS = 0.97  # at least
EXPIRE_DEADLINE = 0.1  # the /expire route's deadline, seconds
TARGET_LATE_P99 = 0.050  # seconds after the deadline, at most
CONCURRENT = 200


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[float, int]:
    started = time.perf_counter()
    writer.write(b"GET /expire HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return time.perf_counter() - started, int(head.split(b" ", 2)[1])


async def _burst(port: int, count: int) -> list[tuple[float, int]]:
    """Open *count* connections, then send one request on each at the same moment."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    try:
        return await asyncio.gather(*(_one(r, w) for r, w in connections))
    finally:
        for _, writer in connections:
            writer.close()


def precision(server: Server, rounds: int) -> dict[str, Any]:
    """How late after the deadline the 504s of CONCURRENT simultaneous requests arrive."""
    asyncio.run(_burst(server.port, 20))  # warm-up
    late: list[float] = []
    statuses: dict[int, int] = {}
    for round_ in range(rounds):
        answers = asyncio.run(_burst(server.port, CONCURRENT))
        for elapsed, status in answers:
            late.append(elapsed - EXPIRE_DEADLINE)
            statuses[status] = statuses.get(status, 0) + 1
        harness.progress(
            f"precision round {round_ + 1}/{rounds}: p99 late "
            f"{percentile(sorted(e - EXPIRE_DEADLINE for e, _ in answers), 99) * 1000:.1f} ms"
        )
    ordered = sorted(late)
    p99 = percentile(ordered, 99)
    return {
        "requests": len(late),
        "concurrent": CONCURRENT,
        "deadline_s": EXPIRE_DEADLINE,
        "statuses": statuses,
        "late_p50_ms": percentile(ordered, 50) * 1000,
        "late_p99_ms": p99 * 1000,
        "late_max_ms": ordered[-1] * 1000,
        "early": sum(1 for x in late if x < 0),
        "target": f"p99 <= {TARGET_LATE_P99 * 1000:g} ms after the deadline, all 504",
        "verdict": "PASS" if p99 <= TARGET_LATE_P99 and set(statuses) == {504} else "MISS",
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="deadline-") as work_dir,
        harness.serving(args, APPS, Path(work_dir)) as (load, servers),
    ):
        samples = harness.measure_rounds(args, load, SCENARIOS, servers)
        harness.progress(f"precision: {args.precision_rounds} bursts of {CONCURRENT}")
        timing = precision(servers["deadlines"], args.precision_rounds)

    control = ratio("bare control/bare req/s", samples, "bare-control", "bare")
    ratios = [
        ratio(
            "deadlines/bare req/s",
            samples,
            "deadlines",
            "bare",
            at_least=TARGET_DEADLINES_VS_BARE_RPS,
        ),
        ratio("deadlines/drained req/s", samples, "deadlines", "drained"),
        ratio("drained/bare req/s", samples, "drained", "bare"),
        ratio("scoped/bare req/s", samples, "scoped", "bare"),
        ratio("deadlines/bare cpu per request", samples, "deadlines", "bare", "cpu_us_per_request"),
        ratio("scoped/bare cpu per request", samples, "scoped", "bare", "cpu_us_per_request"),
        control,
    ]
    return harness.results(
        args,
        load,
        samples,
        ratios,
        noise_warning=harness.noise_warning(control),
        started=started,
        precision=timing,
    )


def report(result: dict[str, Any]) -> str:
    timing = result["precision"]
    statuses = " ".join(f"{code}x{n}" for code, n in sorted(timing["statuses"].items()))
    return "\n".join(
        [
            *harness.header_lines("gracekit deadline benchmark", result),
            "",
            *harness.table_lines(SCENARIOS, result["summary"]),
            "",
            *harness.ratio_lines(result),
            "",
            f"precision: {timing['requests']} requests, {timing['concurrent']} at a time, "
            f"on a {timing['deadline_s'] * 1000:g} ms deadline (statuses {statuses}):",
            f"  arrival after the deadline  p50 {timing['late_p50_ms']:.1f} ms  "
            f"p99 {timing['late_p99_ms']:.1f} ms  max {timing['late_max_ms']:.1f} ms  "
            f"early {timing['early']}  target {timing['target']}  {timing['verdict']}",
            f"total runtime {result['runtime_s']:.1f} s",
        ]
    )


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision-rounds",
        type=harness.positive(int),
        default=5,
        help="bursts of 200 simultaneous requests on the expiring route (default 5)",
    )


def main(argv: list[str] | None = None) -> int:
    return harness.main(__doc__, measure, report, argv, options=options)


if __name__ == "__main__":
    sys.exit(main())
