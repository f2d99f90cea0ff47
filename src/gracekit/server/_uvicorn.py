"""What gracekit relies on in uvicorn, in one place.

Supported: uvicorn >= 0.30, < 0.55 (pinned in pyproject.toml). gracekit uses these parts of
``uvicorn.Server``, and ``tests/test_uvicorn_contract.py`` fails if one of them goes away:

- ``capture_signals()`` registers the bound method ``Server.handle_exit`` with
  ``signal.signal`` for SIGINT and SIGTERM before the lifespan starts, so the lifespan can find
  the server through ``signal.getsignal(SIGTERM).__self__``;
- setting ``Server.should_exit`` makes the main loop stop accepting within 0.1 s and wait for
  open connections; setting ``Server.force_exit`` as well stops that wait;
- ``Server.config.reload`` is true in the worker process that ``--reload`` runs;
- ``Server.config.timeout_graceful_shutdown`` is read when the shutdown starts (gracekit sets it,
  when the user has not, as a backstop behind its own drain deadline).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["UvicornControl", "find_server"]


def find_server(handler: object) -> Any | None:
    """The ``uvicorn.Server`` whose ``handle_exit`` is *handler*, if it is one."""
    server = getattr(handler, "__self__", None)
    if server is None or getattr(handler, "__name__", None) != "handle_exit":
        return None
    uvicorn_server = sys.modules.get("uvicorn.server")
    if uvicorn_server is None or not isinstance(server, uvicorn_server.Server):
        return None
    return server


class UvicornControl:
    """Stops a running uvicorn server on gracekit's schedule."""

    def __init__(self, server: Any) -> None:
        self._server = server

    @property
    def server(self) -> Any:
        return self._server

    @property
    def reload(self) -> bool:
        """True in the worker process of ``uvicorn --reload``: no one needs a delay there."""
        return bool(getattr(self._server.config, "reload", False))

    def bound_graceful_wait(self, seconds: float) -> None:
        """Bound uvicorn's own wait for connections, unless the user already did. The drain
        deadline comes first; this only ends work that ignores its cancellation."""
        config = self._server.config
        if config.timeout_graceful_shutdown is None:
            config.timeout_graceful_shutdown = seconds

    def stop_accepting(self) -> None:
        self._server.should_exit = True

    def force_exit(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True
