"""The command line every benchmark shares: load options, SIGTERM, exit status, progress."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report import write_json


def progress(text: str) -> None:
    """A progress line on stderr, so that stdout holds the report only."""
    print(text, file=sys.stderr, flush=True)


def positive(kind: type[float] | type[int], *, allow_zero: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=`` for a finite number above zero (or at least zero)."""

    def parse(text: str) -> float | int:
        value = kind(text)
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}")
        return value

    return parse


def add_load_options(
    parser: argparse.ArgumentParser,
    *,
    duration: float = 5.0,
    rounds: int = 5,
    connections: int = 16,
    warmup: float = 2.0,
) -> None:
    """``--duration --rounds --connections --warmup --json``, with defaults."""
    parser.add_argument(
        "--duration",
        type=positive(float),
        default=duration,
        help=f"seconds of load per scenario and round (default {duration:g})",
    )
    parser.add_argument(
        "--rounds",
        type=positive(int),
        default=rounds,
        help=f"interleaved rounds of every scenario (default {rounds})",
    )
    parser.add_argument(
        "--connections",
        type=positive(int),
        default=connections,
        help=f"keep-alive connections kept busy (default {connections})",
    )
    parser.add_argument(
        "--warmup",
        type=positive(float, allow_zero=True),
        default=warmup,
        help=f"seconds of unmeasured load per scenario first (default {warmup:g})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit, which unwinds through every cleanup on the way out."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def run_benchmark(
    measure: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    *,
    json_path: Path | None = None,
) -> int:
    """Measure, print the report, write the JSON if asked; the exit status.

    0 when the benchmark could measure, whatever its verdicts; 1 when *measure* raised
    RuntimeError (it could not); 130 on Ctrl-C, by which time its cleanups have run.
    """
    try:
        result = measure()
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(render(result))
    if json_path is not None:
        write_json(json_path, result)
    return 0


def main(
    description: str,
    measure: Callable[[argparse.Namespace], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    argv: list[str] | None = None,
    *,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """A benchmark's ``main``: the load options (and *options*' own), SIGTERM as an exit,
    then :func:`run_benchmark`."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    add_load_options(parser)
    if options is not None:
        options(parser)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    return run_benchmark(lambda: measure(args), render, json_path=args.json)
