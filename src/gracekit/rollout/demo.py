"""``gracekit demo``'s two runs: the bundled app under plain uvicorn, then under gracekit.

Both runs have the same pods, load, proxy and propagation delay. The only difference is who
handles SIGTERM: uvicorn, which stops accepting at once while the proxy still sends traffic
for the propagation delay; or gracekit, which keeps serving for a shutdown delay longer than
the propagation delay, then drains.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .config import KubeletSettings, RolloutSettings
from .pods import PodCommand

__all__ = ["DEMO_APP", "RUNS", "demo_settings"]

DEMO_APP = "gracekit.rollout.demo_app:create_app"

#: The runs, in order: (label, server).
RUNS = (("plain uvicorn", "uvicorn"), ("gracekit run", "gracekit"))

#: gracekit's timings in the demo: a delay longer than the propagation delay, a short drain.
SHUTDOWN_DELAY = 3.0
DRAIN_TIMEOUT = 5.0
HOOK_TIMEOUT = 1.0
PROPAGATION_DELAY = 2.0
#: delay + drain + hooks + 2 s of margin, rounded up (ShutdownTiming.grace_period()).
GRACE_PERIOD = 11.0


def demo_settings(server: str, *, proxy: str = "l7", **changes: Any) -> RolloutSettings:
    """The settings of the demo's run under *server* (``uvicorn`` or ``gracekit``); *changes*
    replace fields of :class:`RolloutSettings` (the tests shorten the run this way).

    Raises:
        ValueError: an unknown server or proxy mode.
    """
    if server == "gracekit":
        env = {
            "GRACEKIT_SHUTDOWN_DELAY": f"{SHUTDOWN_DELAY:g}",
            "GRACEKIT_DRAIN_TIMEOUT": f"{DRAIN_TIMEOUT:g}",
            "GRACEKIT_HOOK_TIMEOUT": f"{HOOK_TIMEOUT:g}",
        }
    elif server == "uvicorn":
        env = {"DEMO_TERMINATION": "uvicorn"}
    else:
        raise ValueError(f"the demo runs under uvicorn or gracekit, not {server!r}")
    env["GRACEKIT_GRACE_PERIOD"] = f"{GRACE_PERIOD:g}"
    command = PodCommand.for_app(DEMO_APP, server=server, factory=True, env=env)
    label = {srv: name for name, srv in RUNS}[server]
    settings = RolloutSettings(
        command=command,
        proxy=proxy,
        propagation_delay=PROPAGATION_DELAY,
        kubelet=KubeletSettings(grace_period=GRACE_PERIOD),
        label=label,
    )
    return replace(settings, **changes)
