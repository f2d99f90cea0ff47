"""The preStop endpoint: a Kubernetes ``lifecycle.preStop.httpGet`` hook starts the shutdown.

The kubelet calls the hook before it sends SIGTERM and waits for the answer. The endpoint starts
the termination sequence and answers once the shutdown delay is over, so the delay is spent
before SIGTERM instead of after it; the SIGTERM that follows finds the sequence under way and
adds nothing. Images without a shell (where ``sleep`` cannot run) need exactly this.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import Scope, Send

from .._asgi import bearer_matches, plain, send_response

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["PreStop"]

logger = logging.getLogger("gracekit")

_DONE = plain(200, "draining")
_UNAUTHORIZED = plain(401, "unauthorized", (b"www-authenticate", b'Bearer realm="gracekit"'))
_NOT_ALLOWED = plain(405, "method not allowed", (b"allow", b"GET, POST"))


class PreStop:
    """Serves the preStop hook for a lifecycle.

    Parameters:
        lifecycle: the lifecycle to shut down.
        token: if set, only requests with ``Authorization: Bearer <token>`` start the shutdown
            (a Kubernetes ``httpGet`` hook sends it through ``httpHeaders``); others get 401
            and change nothing. Without a token, anyone who can reach the endpoint can take
            the pod out of rotation: serve it only where the public cannot reach it.
    """

    def __init__(self, lifecycle: Lifecycle, *, token: str | None = None) -> None:
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("the preStop token must be a non-empty str")
        self.lifecycle = lifecycle
        self._token = None if token is None else token.encode()

    @property
    def protected(self) -> bool:
        """True if a bearer token is required."""
        return self._token is not None

    async def __call__(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "POST"):
            await send_response(scope, send, *_NOT_ALLOWED)
            return
        if self._token is not None and not bearer_matches(scope, self._token):
            client = scope.get("client") or ("unknown", 0)
            logger.warning("preStop call refused from %s: no valid token", client[0])
            await send_response(scope, send, *_UNAUTHORIZED)
            return
        self.lifecycle.shutdown(source="preStop")
        await self.lifecycle.termination.wait_drain_started()
        await send_response(scope, send, *_DONE)
