"""The steps of a lifecycle's ASGI lifespan that meet the outside world, in the order the
lifespan takes them: the signals (:class:`~gracekit.server._signals.SignalTakeover`), the
management port (:func:`management_port`), the application's own startup (:class:`AppStartup`),
which a shutdown may cancel. Then the lifecycle runs (``gracekit._runner``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import anyio

from .management import Managed, Management, serve_management

__all__ = ["AppStartup", "ManagedPort", "management_port"]

logger = logging.getLogger("gracekit")


class ManagedPort(Managed, Protocol):
    """What the management port serves, told where it listens (a :class:`~gracekit.Lifecycle`)."""

    management_port: int | None


@asynccontextmanager
async def management_port(host: ManagedPort, base: Management | None) -> AsyncIterator[None]:
    """Serve *host*'s management port (*base*, with what the environment sets; none when
    neither sets one) in the block; ``host.management_port`` says where it listens."""
    config = Management.from_env(base=base)
    if config is None:
        yield
        return
    async with serve_management(host, config) as port:
        host.management_port = port
        try:
            yield
        finally:
            host.management_port = None


class AppStartup:
    """The application's own lifespan startup, which a shutdown cancels: a SIGTERM or a preStop
    call while it runs leaves nothing to serve and nothing to wait for."""

    def __init__(self) -> None:
        self._scope: anyio.CancelScope | None = None

    async def enter(
        self,
        stack: AsyncExitStack,
        lifespan: AbstractAsyncContextManager[Any],
        *,
        cancelled: bool = False,
    ) -> tuple[bool, Any]:
        """Enter *lifespan* on *stack*; (True, its state), or (False, None) if a shutdown
        cancelled its startup (already *cancelled*, or :meth:`cancel` while it ran)."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if cancelled:
                scope.cancel()
            try:
                return True, await stack.enter_async_context(lifespan)
            except Exception as exc:
                if not scope.cancel_called:
                    raise
                # Its own error in place of the cancellation (a driver that wraps it).
                logger.info("the application's startup ended with %r when cancelled", exc)
            finally:
                self._scope = None
        return False, None

    def cancel(self) -> None:
        """Cancel the startup under way, if one is."""
        if self._scope is not None:
            self._scope.cancel()
