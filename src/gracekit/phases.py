"""The phases an application lives through, the bottom of gracekit's state.

Everything else reads the phase: the probes (readiness fails once draining), the events (each
carries the phase it happened in), the metrics. Nothing here imports the rest of gracekit.
"""

from __future__ import annotations

import enum

__all__ = ["Phase"]


class Phase(str, enum.Enum):
    """Where the application is in its life. Phases only move forward."""

    STARTING = "starting"
    STARTED = "started"
    DRAINING = "draining"
    STOPPED = "stopped"
