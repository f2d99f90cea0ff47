"""Probes and checks: what a check is, how checks run, and the endpoints that report them."""

from __future__ import annotations

from .check import Check as Check
from .check import CheckFunction as CheckFunction
from .endpoints import ProbeApp as ProbeApp
from .runner import CheckState as CheckState
from .runner import CheckStatus as CheckStatus

__all__ = ["Check", "CheckFunction", "CheckState", "CheckStatus", "ProbeApp"]
