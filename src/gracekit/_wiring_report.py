"""What of an application's wiring a lifecycle has seen, and a warning for each missing piece.

A served app needs four pieces around its lifecycle: the lifecycle's lifespan, a
``DrainMiddleware`` around the app, the probe endpoints, and (once there are ``Metrics``) a route
that serves them. Forgetting one fails quietly: without the middleware the probes and SIGTERM
still look right but nothing drains; without the lifespan the probes answer "not running"
forever. So whichever part of gracekit sees the app start looks for the others:

- the lifecycle's lifespan, once the lifecycle runs, looks for the middleware (which, wrapping
  the app, saw the lifespan scope on its way in), the probes and the metrics route;
- the middleware, when the app says its startup is complete and the lifecycle's lifespan never
  began, reports the lifespan, and looks for the probes and the metrics route.

Each missing piece is one WARNING on the ``gracekit`` logger, once per lifecycle. With a
management port, the probes and the metrics are served there, so the app need not serve them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from starlette.types import Message, Send

from .deadlines._routers import find_routes, walk
from .probes.endpoints import ProbeApp
from .server._logs import follow_server_logging

if TYPE_CHECKING:
    from .drain.middleware import RequestObserver


class Wired(Protocol):
    """What the report reads of a lifecycle (a :class:`~gracekit.Lifecycle` is one)."""

    @property
    def management_port(self) -> int | None: ...

    @property
    def management(self) -> object | None: ...

    @property
    def request_observer(self) -> RequestObserver | None: ...


__all__ = ["LIFESPAN", "METRICS", "MIDDLEWARE", "PROBES", "Wiring", "lifecycle_of", "served"]

logger = logging.getLogger("gracekit")

LIFESPAN = "lifespan"
MIDDLEWARE = "middleware"
PROBES = "probes"
METRICS = "metrics"

#: What each missing piece costs, and how to add it.
MESSAGES = {
    LIFESPAN: (
        "the lifecycle's lifespan is not in use: the app started without it, so no check, "
        "startup task or shutdown sequence runs and the probes answer 'not running'; add it "
        "with gracekit.install(app, lifecycle), or pass lifespan=lifecycle.lifespan() (around "
        "the app's own lifespan, if it has one) to Starlette() or FastAPI()"
    ),
    MIDDLEWARE: (
        "no DrainMiddleware wraps the app: its requests are not counted, get no "
        "'Connection: close' while the pod drains, have no deadline and are not waited for at "
        "shutdown; add it with gracekit.install(app, lifecycle), or "
        "app.add_middleware(DrainMiddleware, lifecycle=lifecycle) after any other middleware"
    ),
    PROBES: (
        "no probe endpoints: the app mounts no ProbeApp of this lifecycle and there is no "
        "management port, so Kubernetes cannot ask whether it started, lives or is ready; add "
        "them with gracekit.install(app, lifecycle), or app.mount('/health', ProbeApp(lifecycle))"
    ),
    METRICS: (
        "no metrics route: the lifecycle has Metrics, but the app serves no MetricsApp of them "
        "and there is no management port, so Prometheus cannot scrape them; add it with "
        "gracekit.install(app, lifecycle), or "
        "app.routes.append(Route('/metrics', MetricsApp(metrics)))"
    ),
}

#: Where a lifespan made by :meth:`Lifecycle.lifespan` names its lifecycle.
_MARK = "__gracekit_lifecycle__"

_L = TypeVar("_L", bound=Callable[..., Any])


def lifecycle_of(lifespan: object) -> Any:
    """The lifecycle whose :meth:`~gracekit.Lifecycle.lifespan` *lifespan* is, or None."""
    return getattr(lifespan, _MARK, None)


def served(lifecycle: object, app: object) -> set[str] | None:
    """Which of *lifecycle*'s endpoints (:data:`PROBES`, :data:`METRICS`) the routes of *app*
    serve, below mounts and middleware; None when *app* has no router gracekit can read."""
    routes = find_routes(app)
    if routes is None:
        return None
    # A MetricsApp exists only once gracekit.metrics is imported (it needs prometheus_client).
    metrics_app = getattr(sys.modules.get("gracekit.metrics.endpoint"), "MetricsApp", None)
    found: set[str] = set()
    for _route, _template, endpoint, _mounted in walk(routes, "", set()):
        for _ in range(8):  # through the middleware a mounted app may have
            if isinstance(endpoint, ProbeApp) and endpoint.lifecycle is lifecycle:
                found.add(PROBES)
            elif (
                metrics_app is not None
                and isinstance(endpoint, metrics_app)
                and endpoint.metrics.lifecycle is lifecycle
            ):
                found.add(METRICS)
            endpoint = getattr(endpoint, "app", None)
            if endpoint is None:
                break
    return found


class Wiring:
    """What one lifecycle has seen of the app it serves, and what it reported missing."""

    def __init__(self, lifecycle: Wired) -> None:
        self._lifecycle = lifecycle
        #: A DrainMiddleware of this lifecycle has seen a lifespan scope: it wraps the app.
        self.middleware = False
        #: The lifecycle's lifespan has begun a startup.
        self.lifespan = False
        #: Pieces the app goes without on purpose (``install(..., probes=None)``).
        self.unwanted: set[str] = set()
        self._reported: set[str] = set()

    def mark(self, lifespan: _L) -> _L:
        """Mark *lifespan* as this lifecycle's (so install() can tell an app wired by hand)."""
        setattr(lifespan, _MARK, self._lifecycle)
        return lifespan

    def lifespan_began(self) -> None:
        """The lifecycle's lifespan is starting."""
        self.lifespan = True

    def lifespan_started(self, app: object) -> None:
        """The lifecycle's lifespan has started the lifecycle for *app*: report the rest."""
        missing = [] if self.middleware else [MIDDLEWARE]
        self._report([*missing, *self._endpoints_missing(app)])

    def watch(self, app: object, send: Send) -> Send:
        """A DrainMiddleware around *app* passes on a lifespan scope: it wraps the app. The
        returned *send* reports what is missing once the app's startup is complete, if the
        lifecycle's lifespan never began (the lifespan reports otherwise)."""
        self.middleware = True

        async def send_watched(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete" and not self.lifespan:
                follow_server_logging()  # as the lifecycle's lifespan would have
                self._report([LIFESPAN, *self._endpoints_missing(app)])
            await send(message)

        return send_watched

    def _endpoints_missing(self, app: object) -> list[str]:
        found = served(self._lifecycle, app)
        lifecycle = self._lifecycle
        if (
            found is None
            or lifecycle.management_port is not None
            or lifecycle.management is not None
        ):
            return []  # a router gracekit cannot read, or the management port serves them
        missing = [] if PROBES in found else [PROBES]
        prometheus = sys.modules.get("gracekit.metrics.prometheus")
        metrics = getattr(prometheus, "Metrics", None)
        if (
            METRICS not in found
            and metrics is not None
            and isinstance(lifecycle.request_observer, metrics)
        ):
            missing.append(METRICS)
        return missing

    def _report(self, missing: list[str]) -> None:
        for piece in missing:
            if piece not in self._reported and piece not in self.unwanted:
                self._reported.add(piece)
                logger.warning("%s", MESSAGES[piece])
