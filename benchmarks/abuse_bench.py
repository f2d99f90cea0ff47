"""What hostile clients inside the cluster cost the probes: the management port beside the app's.

One ``gracekit run`` process of ``examples/minimal.py`` with ``--management-port``: its app port
is uvicorn's own, its management port gracekit's server. Each attack of
``tests/support/abuse.py`` (the tests' own: 300 idle connections, 300 sending a head a byte a
second, 257 reconnecting as soon as they are closed, 300 pipelining without reading) runs
against one port at a time while kubelet-like probes (a fresh connection each, 10 a second, a
success being a 200 within 1 s) ask the same port: ``/health/live`` on the management port, the
app's ``/`` on its own. It reports the probes' success and the process's RSS growth, port beside
port, round by round in alternating order.

Usage::

    .venv/bin/python benchmarks/abuse_bench.py [--duration 8] [--rounds 1] [--json figures.json]

Bounded: connections on 127.0.0.1 only, at most ``--duration`` (<= 15) seconds of probing per
attack and port, and an attack stops early once the server has grown by ``--rss-cap`` MB. A
benchmark, not a test: a missed target is reported and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness: this script's directory is first on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # the attacks and the prober are the tests' own
from tests.support.abuse import (  # noqa: E402
    ATTACKS,
    CONNECTIONS,
    Outcome,
    probe_under_attack,
    raise_open_files,
)

PORTS = ("management", "app")
PATHS = {"management": "/health/live", "app": "/"}
TARGET_SUCCESS = 0.99  # at least, on the management port
TARGET_GROWTH_MB = 10.0  # less than, on the management port
MAX_DURATION = 15.0


def _duration(text: str) -> float:
    value = float(harness.positive(float)(text))
    if value > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"at most {MAX_DURATION:g} s: every attack is bounded")
    return value


def _attacks(text: str) -> list[str]:
    kinds = text.split(",")
    if not kinds or not set(kinds) <= set(ATTACKS):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(ATTACKS)}")
    return kinds


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=_duration,
        default=8.0,
        help=f"seconds of probing per attack and port (default 8, at most {MAX_DURATION:g})",
    )
    parser.add_argument(
        "--rounds", type=harness.positive(int), default=1, help="rounds of every attack"
    )
    parser.add_argument(
        "--attacks",
        type=_attacks,
        default=list(ATTACKS),
        help=f"comma-separated, of {','.join(ATTACKS)} (default: all)",
    )
    parser.add_argument(
        "--rss-cap",
        type=harness.positive(float),
        default=500.0,
        help="MB the server may grow by before an attack is stopped (default 500)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")


Run = tuple[str, str, int, Outcome]  # attack, port, round, what the probes met


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    raise_open_files(4096)  # before the server starts: it inherits the limit
    management = harness.free_port()
    app = harness.UvicornApp(
        "minimal:app",
        app_dir=ROOT / "examples",
        options=("--management-port", str(management), "--log-level", "warning"),
        launcher="gracekit",
    )
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="abuse-")))
        server = stack.enter_context(harness.run_server("minimal", app, log_dir=work_dir))
        ports = {"management": management, "app": server.port}

        def answering(name: str) -> None:
            server.wait_until(
                lambda: harness.fetch(ports[name], PATHS[name])[0] == 200,
                what=f"200 from the {name} port's {PATHS[name]}",
            )

        for kind in args.attacks:
            for round_ in range(args.rounds):
                for name in PORTS if round_ % 2 == 0 else PORTS[::-1]:
                    answering(name)  # up, or over the last attack
                    outcome = probe_under_attack(
                        kind,
                        ports[name],
                        pid=server.process.pid,
                        seconds=args.duration,
                        path=PATHS[name],
                        attack_path=PATHS[name],
                        rss_cap_mb=args.rss_cap,
                    )
                    if server.process.poll() is not None:
                        raise RuntimeError(f"the server exited:\n{server.log()}")
                    runs.append((kind, name, round_, outcome))
                    harness.progress(
                        f"{kind} on the {name} port, round {round_ + 1}: "
                        f"{outcome.succeeded}/{outcome.sent} probes, "
                        f"RSS {outcome.rss_growth_mb:+.1f} MB"
                    )
    return {
        "config": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "rss_cap_mb": args.rss_cap,
            "connections": {kind: CONNECTIONS[kind] for kind in args.attacks},
        },
        "environment": harness.environment(),
        "runs": [
            {"attack": kind, "port": name, "round": round_, **asdict(outcome)}
            for kind, name, round_, outcome in runs
        ],
        "summary": [summarize(kind, runs) for kind in args.attacks],
        "runtime_s": round(time.monotonic() - started, 1),
    }


def summarize(kind: str, runs: list[Run]) -> dict[str, Any]:
    """Per port: probes over all rounds, the success range, slowest, largest RSS growth; the
    ratio of the management port's success to the app's, and the verdict on the targets."""
    ports: dict[str, Any] = {}
    for name in PORTS:
        outcomes = [o for k, n, _, o in runs if (k, n) == (kind, name)]
        succeeded, sent = sum(o.succeeded for o in outcomes), sum(o.sent for o in outcomes)
        ports[name] = {
            "succeeded": succeeded,
            "sent": sent,
            "success": succeeded / sent if sent else 0.0,
            "success_low": min(o.success for o in outcomes),
            "success_high": max(o.success for o in outcomes),
            "slowest_s": max(o.slowest for o in outcomes),
            "rss_growth_mb": max(o.rss_growth_mb for o in outcomes),
            "rss_growth_median_mb": statistics.median(o.rss_growth_mb for o in outcomes),
            "opened": sum(o.stats["opened"] for o in outcomes),
        }
    ours, theirs = ports["management"], ports["app"]
    passed = ours["success"] >= TARGET_SUCCESS and ours["rss_growth_mb"] < TARGET_GROWTH_MB
    return {
        "attack": kind,
        "connections": CONNECTIONS[kind],
        **ports,
        "success_ratio": ours["success"] / theirs["success"] if theirs["success"] else None,
        "verdict": "PASS" if passed else "MISS",
    }


def report(result: dict[str, Any]) -> str:
    config, env = result["config"], result["environment"]
    lines = [
        f"gracekit abuse benchmark: {config['rounds']} round(s) x {config['duration_s']:g} s of "
        "probes per attack and port (10/s, fresh connections, 1 s timeout)",
        f"python {env['python']}, uvicorn {env['uvicorn']} ({env['loop']}, {env['http']}), "
        f"starlette {env['starlette']}, gracekit {env['gracekit']}",
        "",
        f"{'attack':<13} {'conns':>5}  {'port':<10} {'probes':>9} {'success (range)':>20}"
        f" {'slowest':>8} {'RSS growth':>11}  {'mgmt/app':>8}  verdict",
    ]
    for s in result["summary"]:
        for name in PORTS:
            p = s[name]
            first = name == PORTS[0]
            ratio = s["success_ratio"]
            lines.append(
                f"{s['attack'] if first else '':<13} {s['connections'] if first else '':>5}  "
                f"{name:<10} {p['succeeded']:>4}/{p['sent']:<4} {p['success']:8.3f} "
                f"({p['success_low']:.2f}..{p['success_high']:.2f})"
                f" {p['slowest_s']:7.2f}s {p['rss_growth_mb']:+8.1f} MB"
                + (
                    f"  {'-' if ratio is None else f'{ratio:.2f}':>8}  {s['verdict']}"
                    if first
                    else ""
                )
            )
    lines += [
        "",
        f"targets, on the management port: success >= {TARGET_SUCCESS:g}, RSS growth < "
        f"{TARGET_GROWTH_MB:g} MB (the largest over the rounds); the app's port has none. A "
        f"growth of {config['rss_cap_mb']:g} MB or more stopped that attack early (--rss-cap).",
        f"total runtime {result['runtime_s']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    options(parser)
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()
    return harness.run_benchmark(lambda: measure(args), report, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
