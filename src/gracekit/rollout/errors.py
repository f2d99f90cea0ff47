"""The errors of the rollout simulator, under gracekit's own hierarchy."""

from __future__ import annotations

from ..errors import GracekitError

__all__ = ["BadResponse", "RolloutError"]


class RolloutError(GracekitError):
    """The simulation could not run to the end: a process did not start, a pod never became
    ready, a bound on the load was reached before the rollout finished."""


class BadResponse(RolloutError):
    """What a server sent back is not an HTTP/1.x response the simulator can read."""
