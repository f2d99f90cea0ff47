"""The ``/metrics`` endpoint: a small ASGI app serving a :class:`Metrics`' registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from .._asgi import NO_STORE, plain, send_response

if TYPE_CHECKING:
    from .prometheus import Metrics

__all__ = ["MetricsApp"]

_NOT_ALLOWED = plain(405, "method not allowed", (b"allow", b"GET, HEAD"))


class MetricsApp:
    """Serves the metrics in Prometheus' text format; mount it where Prometheus scrapes::

        app.mount("/metrics", MetricsApp(metrics))

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) the answer combines every worker's
    values, read from their files in a worker thread so the event loop keeps serving.
    Requests to it have no deadline and are not counted in the request metrics.
    """

    #: gracekit's own endpoints: no deadlines, not counted as the app's requests.
    gracekit_management = True

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_response(scope, send, *_NOT_ALLOWED)
            return
        self.metrics.refresh(scraping=True)
        if self.metrics.multiprocess:
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
