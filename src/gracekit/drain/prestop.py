"""The preStop endpoint: a Kubernetes ``lifecycle.preStop.httpGet`` hook starts the shutdown.

The kubelet calls the hook before it sends SIGTERM and waits for the answer. The endpoint starts
the termination sequence and answers once the shutdown delay is over, so the delay is spent
before SIGTERM instead of after it; the SIGTERM that follows finds the sequence under way and
adds nothing. It serves clusters older than 1.30 (no ``sleep:`` action) on images without a
shell (no ``exec: sleep``), and servers gracekit cannot take over.

One request takes the pod out of rotation and shuts it down, so the endpoint is guarded: on the
application's own port it needs a secret, compared in constant time; only the management port,
which no Service exposes, may serve it without one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from starlette.types import Scope, Send

from .._asgi import plain, send_response

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["PreStop", "check_secret"]

logger = logging.getLogger("gracekit")

_DONE = plain(200, "draining")
_UNAUTHORIZED = plain(401, "unauthorized", (b"www-authenticate", b'Bearer realm="gracekit"'))
_FORBIDDEN = plain(403, "forbidden")
_NOT_ALLOWED = plain(405, "method not allowed", (b"allow", b"GET, POST"))
#: Refused callers are logged once each; this many are remembered.
_REMEMBERED_SOURCES = 256


def check_secret(token: object, header: object) -> None:
    """Raise ValueError unless *token* (None, or a non-empty str) and *header* (None, or a
    header name, and only with a token) can guard a preStop endpoint."""
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ValueError("the preStop token must be a non-empty str")
    if header is not None and (not isinstance(header, str) or not header.strip()):
        raise ValueError("the preStop header must be a non-empty header name")
    if header is not None and token is None:
        raise ValueError("a preStop header needs a token to compare it with")


def _digest(value: bytes) -> bytes:
    # Comparing digests keeps the comparison constant-time whatever the lengths.
    return hashlib.sha256(value).digest()


class PreStop:
    """Serves the preStop hook for a lifecycle.

    Parameters:
        lifecycle: the lifecycle to shut down.
        token: the secret a caller must present: ``Authorization: Bearer <token>``, or the
            value of *header*. Callers without it get 401, with a wrong one 403; neither
            changes anything. A Kubernetes ``httpGet`` hook sends it through ``httpHeaders``.
        header: the request header that carries *token*, instead of ``Authorization``.
        require_token: refuse to be built without a token (the application's port); only the
            management port serves the hook without one.

    Raises:
        ValueError: no token where one is required, an empty token or header.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        *,
        token: str | None = None,
        header: str | None = None,
        require_token: bool = True,
    ) -> None:
        check_secret(token, header)
        if token is None and require_token:
            raise ValueError(
                "the preStop endpoint needs a token on the application's port: without one, "
                "anyone who can reach the port can shut the pod down; give prestop_token, or "
                "serve the hook on the management port (Lifecycle(management=...))"
            )
        self.lifecycle = lifecycle
        self._digest = None if token is None else _digest(token.encode())
        self._header = None if header is None else header.strip().lower().encode("latin-1")
        self._refused: OrderedDict[str, None] = OrderedDict()

    @property
    def protected(self) -> bool:
        """True if a token is required."""
        return self._digest is not None

    @property
    def header(self) -> str | None:
        """The header that carries the token, or None for ``Authorization: Bearer``."""
        return None if self._header is None else self._header.decode("latin-1")

    def _presented(self, scope: Scope) -> bytes | None:
        """The secret the request presents, or None."""
        for key, value in scope["headers"]:
            if self._header is not None:
                if key == self._header:
                    return bytes(value)
            elif key == b"authorization":
                scheme, _, credentials = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    return credentials.strip()
                return b""  # another scheme: presented, and wrong
        return None

    async def __call__(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "POST"):
            await send_response(scope, send, *_NOT_ALLOWED)
            return
        if self._digest is not None:
            presented = self._presented(scope)
            if presented is None or not hmac.compare_digest(_digest(presented), self._digest):
                self._refuse(scope, "no token" if presented is None else "a wrong token")
                answer = _UNAUTHORIZED if presented is None else _FORBIDDEN
                await send_response(scope, send, *answer)
                return
        self.lifecycle.shutdown(source="preStop")
        await self.lifecycle.termination.wait_drain_started()
        await send_response(scope, send, *_DONE)

    def _refuse(self, scope: Scope, why: str) -> None:
        """Log a refused call once per source (never what it presented)."""
        client = scope.get("client") or ("unknown", 0)
        source = str(client[0])
        if source in self._refused:
            self._refused.move_to_end(source)
            return
        self._refused[source] = None
        if len(self._refused) > _REMEMBERED_SOURCES:
            self._refused.popitem(last=False)
        logger.warning("preStop call refused from %s: %s (nothing changed)", source, why)
