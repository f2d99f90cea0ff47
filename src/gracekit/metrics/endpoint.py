"""The ``/metrics`` endpoint: a small ASGI app serving a :class:`Metrics`' registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from .._asgi import NO_STORE, bearer_matches, plain, send_response

if TYPE_CHECKING:
    from .prometheus import Metrics

__all__ = ["MetricsApp"]

_NOT_ALLOWED = plain(405, "method not allowed", (b"allow", b"GET, HEAD"))
_UNAUTHORIZED = plain(401, "unauthorized", (b"www-authenticate", b'Bearer realm="gracekit"'))


class MetricsApp:
    """Serves the metrics in Prometheus' text format, at the route Prometheus scrapes::

        app.routes.append(Route("/metrics", MetricsApp(metrics)))

    With *token*, only requests with ``Authorization: Bearer <token>`` get them (Prometheus'
    ``authorization`` scrape setting sends it); the management port serves them without one.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) the answer combines every worker's
    values, read from their files in a worker thread so the event loop keeps serving.
    Requests to it have no deadline and are not counted in the request metrics.
    """

    #: gracekit's own endpoints: no deadlines, not counted as the app's requests.
    gracekit_management = True

    def __init__(self, metrics: Metrics, *, token: str | None = None) -> None:
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("the metrics token must be a non-empty str")
        self.metrics = metrics
        self._token = None if token is None else token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_response(scope, send, *_NOT_ALLOWED)
            return
        if self._token is not None and not bearer_matches(scope, self._token):
            await send_response(scope, send, *_UNAUTHORIZED)
            return
        if self.metrics.multiprocess:
            self.metrics.publish()  # this worker's own state, current in its files
            body = await anyio.to_thread.run_sync(self._multiprocess)
        else:
            body = self._generate()
        from prometheus_client import CONTENT_TYPE_LATEST

        headers = [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
            NO_STORE,
        ]
        await send_response(scope, send, 200, headers, body)

    def _generate(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.metrics.registry)

    def _multiprocess(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
