"""Probes and checks: what a check is, how checks run, and the endpoints that report them.

:class:`Check`, :class:`Gate`, :class:`ProbeResult` and :class:`ProbeApp` are also at the top
level (``from gracekit import Check``). The others describe what a
:class:`~gracekit.Lifecycle` holds: ``lifecycle.checks`` maps names to :class:`CheckState`
(whose ``status(now)`` is a :class:`CheckStatus`) and ``lifecycle.startup_tasks`` to
:class:`StartupTask`.
"""

from __future__ import annotations

from ._runner import CheckState as CheckState
from ._runner import CheckStatus as CheckStatus
from .check import Check as Check
from .check import CheckFunction as CheckFunction
from .conditions import Gate as Gate
from .conditions import ProbeResult as ProbeResult
from .conditions import StartupTask as StartupTask
from .endpoints import ProbeApp as ProbeApp

__all__ = [
    "Check",
    "CheckFunction",
    "CheckState",
    "CheckStatus",
    "Gate",
    "ProbeApp",
    "ProbeResult",
    "StartupTask",
]
