"""The exceptions gracekit raises.

Configuration mistakes raise the built-in :class:`ValueError` or :class:`TypeError` at
construction, so they surface at import or startup time. Everything gracekit raises at run time
derives from :class:`GracekitError`.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CheckFailed", "DeadlineExceeded", "GracekitError", "LifecycleError", "describe"]

#: The longest error text gracekit reports (probe responses, shutdown reports).
MAX_ERROR_CHARS = 300


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


def describe(exc: BaseException, *, redact: Callable[[str], str] | None = None) -> str:
    """``"TypeName: message"``, passed through *redact* (masks secrets), shortened to a size
    fit for a probe response or a log line."""
    try:
        message = str(exc)
    except Exception:  # an exception whose __str__ fails must not take its reporter down
        message = "<unprintable message>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if redact is not None:
        text = redact(text)  # before shortening, which could cut a secret in two
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    return text
