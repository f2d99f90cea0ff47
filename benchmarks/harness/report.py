"""What a benchmark prints and writes: its result as data, the table, the ratio lines, JSON.

A result is a plain dict (see :func:`results`), so that the printed report and the JSON file
come from the same figures. Its NaNs (figures that could not be measured) become JSON nulls.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .stats import Ratio, Sample, summarize

if TYPE_CHECKING:
    from .load import Load
    from .rounds import Scenario


def environment(packages: Iterable[str] = ("uvicorn", "starlette", "gracekit")) -> dict[str, str]:
    """Python's version, *packages*' versions ("-" when missing), and uvicorn's "auto" picks."""

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return {
        "python": platform.python_version(),
        **{package: version(package) for package in packages},
        # What uvicorn's "auto" settings pick in this interpreter.
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }


def results(
    args: argparse.Namespace,
    load: Load,
    samples: Mapping[str, Sequence[Sample]],
    ratios: Sequence[Ratio],
    *,
    noise_warning: str | None,
    started: float,
    **extra: Any,
) -> dict[str, Any]:
    """A benchmark's result: the options of :func:`harness.add_load_options`, the environment,
    every sample, each scenario's summary, the ratios, the noise warning, then *extra*
    (whatever else the benchmark observed) and the runtime since *started* (monotonic)."""
    return {
        "config": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "warmup_s": args.warmup,
            "load_generator": load.name,
        },
        "environment": environment(),
        "samples": [s.as_dict() for runs in samples.values() for s in runs],
        "summary": {name: summarize(runs) for name, runs in samples.items()},
        "ratios": [asdict(r) for r in ratios],
        "noise_warning": noise_warning,
        **extra,
        "runtime_s": round(time.monotonic() - started, 1),
    }


def header_lines(title: str, result: Mapping[str, Any]) -> list[str]:
    """The title with the load settings, then the versions of what was measured."""
    config, env = result["config"], result["environment"]
    return [
        f"{title}: {config['load_generator']}, {config['connections']} "
        f"connections, {config['rounds']} rounds x {config['duration_s']:g} s "
        f"(warm-up {config['warmup_s']:g} s)",
        f"python {env['python']}, uvicorn {env['uvicorn']} ({env['loop']}, {env['http']}), "
        f"starlette {env['starlette']}, gracekit {env['gracekit']}",
    ]


def table_lines(scenarios: Sequence[Scenario], summary: Mapping[str, Any]) -> list[str]:
    """One line per scenario: its medians, CPU per request, statuses and transport errors."""
    name_w = max([14, *(len(s.name) for s in scenarios)])
    server_w = max([8, *(len(s.server) for s in scenarios)])
    path_w = max([14, *(len(s.path) for s in scenarios)])
    lines = [
        f"{'scenario':<{name_w}} {'server':<{server_w}} {'path':<{path_w}} {'req/s':>8}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10}  statuses"
    ]
    for scenario in scenarios:
        s = summary[scenario.name]
        statuses = " ".join(f"{code}x{n}" for code, n in s["statuses"].items()) or "-"
        errors = " ".join(f"{kind}x{n}" for kind, n in s["errors"].items())
        lines.append(
            f"{scenario.name:<{name_w}} {scenario.server:<{server_w}} {scenario.path:<{path_w}}"
            f" {s['rps']:8.0f} {s['p50_ms']:7.2f} {s['p99_ms']:7.2f}"
            f" {s['cpu_us_per_request']:10.0f}  {statuses}"
            + (f"  errors: {errors}" if errors else "")
        )
    return lines


def ratio_lines(result: Mapping[str, Any]) -> list[str]:
    """A heading, one line per ratio with its range and verdict, and the noise warning."""
    ratios = result["ratios"]
    label_w = max([34, *(len(r["label"]) for r in ratios)])
    lines = ["medians over rounds; ratio of medians (range of the per-round ratios):"]
    for r in ratios:
        target = f"target {r['target']}  {r['verdict']}" if r["target"] else "info"
        lines.append(
            f"  {r['label']:<{label_w}} {r['value']:5.2f}  ({r['low']:.2f}..{r['high']:.2f})"
            f"  {target}"
        )
    if result["noise_warning"]:
        lines.append(f"WARNING: {result['noise_warning']}")
    return lines


def json_safe(value: Any) -> Any:
    """*value* with NaN (a figure that could not be measured) as null, which JSON allows."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def write_json(path: Path, result: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(json_safe(dict(result)), indent=2) + "\n")
