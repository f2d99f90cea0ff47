"""gracekit: zero-downtime deploys for ASGI services.

Truthful startup, liveness and readiness probes from pluggable dependency checks, and (in later
modules) graceful termination, deadlines, metrics and Kubernetes tooling.
"""

from __future__ import annotations

from .errors import CheckFailed as CheckFailed
from .errors import GracekitError as GracekitError
from .errors import LifecycleError as LifecycleError
from .lifecycle import Gate as Gate
from .lifecycle import Lifecycle as Lifecycle
from .lifecycle import Phase as Phase
from .lifecycle import ProbeResult as ProbeResult
from .lifecycle import StartupTask as StartupTask
from .probes.check import Check as Check
from .probes.endpoints import ProbeApp as ProbeApp
from .probes.runner import CheckState as CheckState
from .probes.runner import CheckStatus as CheckStatus

__version__ = "0.1.0"

__all__ = [
    "Check",
    "CheckFailed",
    "CheckState",
    "CheckStatus",
    "Gate",
    "GracekitError",
    "Lifecycle",
    "LifecycleError",
    "Phase",
    "ProbeApp",
    "ProbeResult",
    "StartupTask",
]
