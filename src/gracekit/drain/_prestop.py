"""The preStop endpoint: a Kubernetes ``lifecycle.preStop.httpGet`` hook starts the shutdown.

The kubelet calls the hook before it sends SIGTERM and waits for the answer. The endpoint starts
the termination sequence and answers once the shutdown delay is over, so the delay is spent
before SIGTERM instead of after it; the SIGTERM that follows finds the sequence under way and
adds nothing. It serves clusters older than 1.30 (no ``sleep:`` action) on images without a
shell (no ``exec: sleep``), and servers gracekit cannot take over.

One request takes the pod out of rotation and shuts it down, so the endpoint is guarded: on the
application's own port it needs a secret, compared in constant time; the management port, which
no Service exposes, serves it without one only where no other pod can reach it (a loopback
address) or when told to (``Management(unauthenticated_prestop=True)``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from typing import Protocol

from starlette.types import Scope, Send

from .._asgi import plain, send_response
from ._sequence import Termination

__all__ = ["PreStop", "ShutdownTarget", "check_secret"]

logger = logging.getLogger("gracekit")

_DONE = plain(200, "draining")
_UNAUTHORIZED = plain(401, "unauthorized", (b"www-authenticate", b'Bearer realm="gracekit"'))
_FORBIDDEN = plain(403, "forbidden")
_NOT_ALLOWED = plain(405, "method not allowed", (b"allow", b"GET, POST"))
#: A caller is logged once a period; this many callers are remembered.
_REMEMBERED_PEERS = 256
_PERIOD = 60.0  # seconds
_BURST = 10  # log lines a period, all callers together


class ShutdownTarget(Protocol):
    """What the preStop hook shuts down (a :class:`~gracekit.Lifecycle` is one)."""

    @property
    def termination(self) -> Termination: ...

    def shutdown(self, *, source: str, delay: float | None = None) -> bool:
        """Start the termination sequence; False if it had started already."""
        ...


def check_secret(token: object, header: object) -> None:
    """Raise ValueError unless *token* (None, or a non-empty str) and *header* (None, or a
    header name, and only with a token) can guard a preStop endpoint."""
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("the preStop token must be a non-empty str")
        if token != token.strip():
            # The kubelet trims header values and the endpoint trims what it reads: such a
            # token could never match. A Secret read from a file ends with a newline.
            raise ValueError(
                "the preStop token has whitespace around it (a Secret file's trailing "
                "newline?), which no caller can send: strip it"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
            raise ValueError("the preStop token has control characters: no header carries them")
    if header is not None and (not isinstance(header, str) or not header.strip()):
        raise ValueError("the preStop header must be a non-empty header name")
    if header is not None and token is None:
        raise ValueError("a preStop header needs a token to compare it with")


def _digest(value: bytes) -> bytes:
    # Comparing digests keeps the comparison constant-time whatever the lengths.
    return hashlib.sha256(value).digest()


class _LogThrottle:
    """Which preStop calls get a log line: the first from each peer in a period, and no more
    than :data:`_BURST` lines a period in all (a caller can pose as many peers when a proxy
    header sets the client), the rest counted into the next line."""

    def __init__(self) -> None:
        self._last: OrderedDict[str, float] = OrderedDict()
        self._window = -_PERIOD
        self._lines = 0
        self.unlogged = 0

    def allow(self, peer: str, now: float) -> bool:
        last = self._last.get(peer)
        if last is not None and now - last < _PERIOD:
            return False
        if now - self._window >= _PERIOD:
            self._window, self._lines = now, 0
        if self._lines >= _BURST:
            self.unlogged += 1
            return False
        self._lines += 1
        self._last[peer] = now
        self._last.move_to_end(peer)
        if len(self._last) > _REMEMBERED_PEERS:
            self._last.popitem(last=False)
        return True


def _peer(scope: Scope) -> str:
    """The caller's address as the server saw it, fit for a log line."""
    client = scope.get("client") or ("unknown", 0)
    text = str(client[0])[:64]
    # A proxy header can set it (uvicorn's proxy_headers): keep it to address characters.
    return "".join(c if c.isalnum() or c in ".:-_[]" else "?" for c in text) or "unknown"


class PreStop:
    """Serves the preStop hook for a lifecycle.

    Every call is logged with the caller's address (accepted and refused calls once per
    address a minute each, at most ten lines a minute in all), never with what it presented.

    Parameters:
        lifecycle: the lifecycle to shut down.
        token: the secret a caller must present: ``Authorization: Bearer <token>``, or the
            value of *header*. Callers without it get 401, with a wrong one 403; neither
            changes anything. A Kubernetes ``httpGet`` hook sends it through ``httpHeaders``.
        header: the request header that carries *token*, instead of ``Authorization``.
        require_token: refuse to be built without a token (the application's port); only the
            management port serves the hook without one.
        closed: refuse every call (403) for this reason, logged with each refusal: the
            management port on an address other pods reach, without a token.

    Raises:
        ValueError: no token where one is required, an empty token or header, a token with
            whitespace around it.
    """

    def __init__(
        self,
        lifecycle: ShutdownTarget,
        *,
        token: str | None = None,
        header: str | None = None,
        require_token: bool = True,
        closed: str | None = None,
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
        self._closed = closed
        self._throttle = _LogThrottle()

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
        if self._closed is not None:
            self._log(scope, "refused", self._closed)
            await send_response(scope, send, *_FORBIDDEN)
            return
        if self._digest is not None:
            presented = self._presented(scope)
            if presented is None or not hmac.compare_digest(_digest(presented), self._digest):
                why = "no token" if presented is None else "a wrong token"
                self._log(scope, "refused", why)
                answer = _UNAUTHORIZED if presented is None else _FORBIDDEN
                await send_response(scope, send, *answer)
                return
        self._log(scope, "accepted", "shutting down")
        self.lifecycle.shutdown(source="preStop")
        await self.lifecycle.termination.wait_drain_started()
        await send_response(scope, send, *_DONE)

    def _log(self, scope: Scope, outcome: str, why: str) -> None:
        peer = _peer(scope)
        if not self._throttle.allow(f"{outcome} {peer}", time.monotonic()):
            return
        unlogged, self._throttle.unlogged = self._throttle.unlogged, 0
        more = f" ({unlogged} more calls not logged)" if unlogged else ""
        if outcome == "accepted":
            logger.info("preStop call accepted from %s: %s%s", peer, why, more)
        else:
            logger.warning("preStop call refused from %s: %s (nothing changed)%s", peer, why, more)
