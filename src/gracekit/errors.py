"""The exceptions gracekit raises.

Configuration mistakes raise the built-in :class:`ValueError` or :class:`TypeError` at
construction, so they surface at import or startup time. Everything gracekit raises at run time
derives from :class:`GracekitError`.
"""

from __future__ import annotations

__all__ = ["CheckFailed", "DeadlineExceeded", "GracekitError", "LifecycleError"]


class GracekitError(Exception):
    """Base class of the errors gracekit raises at run time."""


class LifecycleError(GracekitError):
    """An operation that the lifecycle's current phase does not allow."""


class CheckFailed(GracekitError):
    """Raised by built-in checks when the dependency answered, but not as required."""


class DeadlineExceeded(GracekitError):
    """The request's deadline has passed: a downstream call was not started.

    Raised by the deadline helpers (:func:`gracekit.deadlines.timeout`, the httpx hooks) when
    no budget is left. If it escapes the endpoint, the drain middleware answers 504, as it does
    when the deadline cancels the endpoint.
    """
