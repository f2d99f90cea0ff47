"""gracekit's log lines, printed where and how the server prints its own.

gracekit logs through the ``gracekit`` logger and configures nothing at import. When a
lifecycle's lifespan starts and nothing would print its lines (no handler on the ``gracekit``
logger or above it: the application has not configured logging), the logger borrows the
handlers of uvicorn's error logger, as uvicorn's gunicorn worker does with gunicorn's: under
``gracekit run`` and plain uvicorn its lines look like uvicorn's, under gunicorn like gunicorn's,
and they go where those go. An application that configures logging itself before its lifespan
starts (``logging.basicConfig``, a ``dictConfig``, a handler on ``gracekit``) is left alone, so
every line is printed once whichever way the app is served.
"""

from __future__ import annotations

import logging

__all__ = ["follow_server_logging"]

#: The logger whose handlers gracekit's lines borrow: uvicorn's, in a uvicorn server of its own
#: or inside gunicorn's uvicorn worker (which hands it gunicorn's handlers).
SERVER_LOGGER = "uvicorn.error"


def follow_server_logging() -> bool:
    """Print the ``gracekit`` logger's lines with the server's handlers, unless the application
    configured logging (or nothing serves the app that gracekit knows); True if it did."""
    logger = logging.getLogger("gracekit")
    if logger.hasHandlers():
        return False
    handlers = _reached(logging.getLogger(SERVER_LOGGER))
    if not handlers:
        return False
    for handler in handlers:
        logger.addHandler(handler)
    logger.propagate = False  # as uvicorn's own loggers: a later root handler adds no copy
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return True


def _reached(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record logged on *logger* reaches, as ``Logger.callHandlers`` finds them."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found += current.handlers
        if not current.propagate:
            break
        current = current.parent
    return found
