"""gracekit: zero-downtime deploys for ASGI services.

Truthful startup, liveness and readiness probes from pluggable dependency checks, and a graceful
termination sequence: a shutdown delay, an in-flight drain, tracked background work and hooks;
per-request deadlines that the drain caps and that downstream calls inherit.

The names here are what an application writes. The packages below hold the rest of the public
API: ``gracekit.checks`` (the built-in checks), ``gracekit.deadlines`` (reading and passing on a
request's budget), ``gracekit.metrics``, ``gracekit.events``, ``gracekit.probes`` (also what a
lifecycle holds: ``CheckState``, ``CheckStatus``, ``StartupTask``), ``gracekit.kubernetes`` and
``gracekit.rollout``. Each lists its public names in ``__all__``; an integration that needs a
driver is a module imported by its path (``gracekit.deadlines.http``, ``gracekit.events.otel``,
``gracekit.server.gunicorn``...). The rest is internal.
"""

from __future__ import annotations

from .deadlines._routes import deadline as deadline
from .drain._report import ShutdownReport as ShutdownReport
from .drain.middleware import DrainMiddleware as DrainMiddleware
from .drain.timing import ShutdownTiming as ShutdownTiming
from .errors import CheckFailed as CheckFailed
from .errors import DeadlineExceeded as DeadlineExceeded
from .errors import GracekitError as GracekitError
from .errors import LifecycleError as LifecycleError
from .lifecycle import Lifecycle as Lifecycle
from .lifecycle import Phase as Phase
from .probes.check import Check as Check
from .probes.conditions import Gate as Gate
from .probes.conditions import ProbeResult as ProbeResult
from .probes.endpoints import ProbeApp as ProbeApp
from .server.management import Management as Management
from .server.serve import serve as serve
from .wiring import install as install

__version__ = "0.1.0"

__all__ = [
    "Check",
    "CheckFailed",
    "DeadlineExceeded",
    "DrainMiddleware",
    "Gate",
    "GracekitError",
    "Lifecycle",
    "LifecycleError",
    "Management",
    "Phase",
    "ProbeApp",
    "ProbeResult",
    "ShutdownReport",
    "ShutdownTiming",
    "deadline",
    "install",
    "serve",
]
