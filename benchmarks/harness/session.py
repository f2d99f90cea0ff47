"""What every benchmark's measurement starts with: its servers up and ready, the load generator
made, and the rounds run with the command line's settings."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .cli import progress
from .load import Load, make_load
from .rounds import Scenario, run_rounds
from .servers import Server, UvicornApp, run_servers
from .stats import Sample

__all__ = ["measure_rounds", "serving"]

READY = "/health/ready"


def _ready(server: Server) -> None:
    server.wait_for_status(READY)


@contextlib.contextmanager
def serving(
    args: argparse.Namespace,
    apps: Mapping[str, UvicornApp],
    work_dir: Path,
    *,
    ready: Callable[[Server], None] = _ready,
) -> Iterator[tuple[Load, dict[str, Server]]]:
    """The load generator (wrk) and *apps* under uvicorn, each waited on with *ready*
    (default: until ``/health/ready`` answers 200); stopped on the way out."""
    started = time.monotonic()
    load = make_load(connections=args.connections, work_dir=work_dir)
    with run_servers(apps, log_dir=work_dir) as servers:
        for server in servers.values():
            ready(server)
        progress(f"servers ready after {time.monotonic() - started:.1f} s; load: {load.name}")
        yield load, servers


def measure_rounds(
    args: argparse.Namespace,
    load: Load,
    scenarios: Sequence[Scenario],
    servers: Mapping[str, Server],
    **options: Any,
) -> dict[str, list[Sample]]:
    """:func:`run_rounds` with ``--rounds``, ``--duration`` and ``--warmup``."""
    return run_rounds(
        load,
        scenarios,
        servers,
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        **options,
    )
