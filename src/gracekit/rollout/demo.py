"""``gracekit demo``'s two runs: the bundled app under plain uvicorn, then under gracekit.

Both runs have the same pods, load, proxy and propagation delay. The only difference is who
handles SIGTERM: uvicorn, which stops accepting at once while the proxy still sends traffic
for the propagation delay; or gracekit, which keeps serving for a shutdown delay longer than
the propagation delay, then drains.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..drain.timing import ShutdownTiming
from .config import KubeletSettings, RolloutSettings
from .pods import PodCommand

__all__ = ["DEMO_APP", "RUNS", "demo_settings", "main"]

DEMO_APP = "gracekit.rollout.demo_app:create_app"

#: The runs, in order: (label, server).
RUNS = (("plain uvicorn", "uvicorn"), ("gracekit run", "gracekit"))

#: The events the demo prints while it runs.
PROGRESS = {"load-started", "rollout-started", "deleted", "rollout-finished", "error"}

#: gracekit's timings in the demo: a delay longer than the propagation delay, a short drain.
SHUTDOWN_DELAY = 3.0
DRAIN_TIMEOUT = 5.0
HOOK_TIMEOUT = 1.0
PROPAGATION_DELAY = 2.0


def demo_settings(
    server: str, *, proxy: str = "l7", shutdown_delay: float = SHUTDOWN_DELAY, **changes: Any
) -> RolloutSettings:
    """The settings of the demo's run under *server* (``uvicorn`` or ``gracekit``), with
    gracekit's *shutdown_delay*; *changes* replace fields of :class:`RolloutSettings` (the
    tests and the benchmark change the propagation delay and the length of the load).

    Both servers get the same grace period: what gracekit's sequence needs
    (:meth:`~gracekit.ShutdownTiming.grace_period`); the kubelet passes it on to the pods in
    ``GRACEKIT_GRACE_PERIOD``.

    Raises:
        ValueError: an unknown server or proxy mode.
    """
    timing = ShutdownTiming(
        delay=shutdown_delay, drain_timeout=DRAIN_TIMEOUT, hook_timeout=HOOK_TIMEOUT
    )
    grace_period = timing.grace_period()
    if server == "gracekit":
        env = {
            "GRACEKIT_SHUTDOWN_DELAY": f"{timing.delay:g}",
            "GRACEKIT_DRAIN_TIMEOUT": f"{timing.drain_timeout:g}",
            "GRACEKIT_HOOK_TIMEOUT": f"{timing.hook_timeout:g}",
        }
    elif server == "uvicorn":
        env = {"DEMO_TERMINATION": "uvicorn"}
    else:
        raise ValueError(f"the demo runs under uvicorn or gracekit, not {server!r}")
    command = PodCommand.for_app(DEMO_APP, server=server, factory=True, env=env)
    label = {srv: name for name, srv in RUNS}[server]
    settings = RolloutSettings(
        command=command,
        proxy=proxy,
        propagation_delay=PROPAGATION_DELAY,
        kubelet=KubeletSettings(grace_period=grace_period),
        label=label,
    )
    return replace(settings, **changes)


def main(*, proxy: str, plot_path: Path, json_path: Path | None, quiet: bool) -> int:
    """Run the demo and print its report; the exit status (0 when the gracekit run lost no
    request, 1 when it did, 2 when a run could not finish, 128 + N after signal N)."""
    from . import plot, report, text
    from .command import echo_events, interrupted
    from .envoy import envoy_binary
    from .simulator import Simulation, run_until_signal

    try:
        envoy_binary()
    except ImportError as exc:
        print(f"gracekit demo: {exc}", file=sys.stderr)
        return 2
    simulations = [
        Simulation(
            demo_settings(server, proxy=proxy),
            echo=None if quiet else echo_events(f"{label:<14}", PROGRESS),
        )
        for label, server in RUNS
    ]
    if not quiet:
        print(
            f"gracekit demo: a rolling update of 3 pods of the bundled app, behind Envoy "
            f"({proxy}) with a {PROPAGATION_DELAY:g} s propagation delay, at 200 req/s: "
            "first under plain uvicorn, then under gracekit run",
            file=sys.stderr,
        )
    results, signum = run_until_signal(simulations)
    if signum is not None:
        return interrupted(signum)
    built = [report.build(result) for result in results]
    print("gracekit demo: the same rolling update, under plain uvicorn and under gracekit run\n")
    print(text.comparison(built))
    print()
    print(_conclusion(built))
    plot.write(built, plot_path, title="gracekit demo: plain uvicorn vs gracekit run")
    print(f"\nchart written to {plot_path} (open it in a browser)")
    if json_path is not None:
        report.write_json(built, json_path)
        print(f"reports written to {json_path}")
    if any(r["error"] for r in built):
        return 2
    return 1 if built[-1]["requests"]["failed"] else 0


def _conclusion(reports: list[dict[str, Any]]) -> str:
    plain, graceful = reports
    lines = []
    lost, total = plain["requests"]["failed"], plain["requests"]["total"]
    if lost:
        lines.append(
            f"plain uvicorn lost {lost} of {total} requests ({lost / total:.1%}): uvicorn stops "
            f"accepting at SIGTERM, while the proxy goes on sending each old pod traffic for "
            f"{PROPAGATION_DELAY:g} s."
        )
    else:
        lines.append(f"plain uvicorn lost no request this time (of {total}).")
    lost, total = graceful["requests"]["failed"], graceful["requests"]["total"]
    if lost:
        lines.append(f"gracekit run lost {lost} of {total} requests: see the chart and the JSON.")
    else:
        lines.append(
            f"gracekit run lost none of {total}: each old pod failed readiness at SIGTERM, kept "
            f"serving for {SHUTDOWN_DELAY:g} s (its shutdown delay, longer than the propagation "
            "delay), then drained and exited 0."
        )
    return "\n".join(textwrap.fill(line, width=96) for line in lines)
