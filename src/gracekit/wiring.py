"""One call that wires a Starlette or FastAPI app to its lifecycle: :func:`install`.

It does what the docs show by hand, with the same defaults: the lifecycle's lifespan around the
app's own, the probe endpoints mounted at ``/health``, the metrics at ``/metrics`` (when
prometheus_client is installed) and ``DrainMiddleware`` around the app.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from ._wiring_report import METRICS, PROBES, lifecycle_of, served
from .drain.middleware import DrainMiddleware
from .lifecycle import Lifecycle
from .probes.endpoints import ProbeApp

if TYPE_CHECKING:
    from .metrics.endpoint import MetricsApp

__all__ = ["install"]


def _path(value: str | None, *, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a path (str) or None, not {type(value).__name__}")
    if not value.startswith("/") or value == "/" or value.endswith("/"):
        raise ValueError(f"{what} must be a path like '/{what}', got {value!r}")
    return value


def _wired_already(app: Starlette, lifecycle: Lifecycle) -> list[str]:
    """What of the wiring *app* has already, by hand or from an earlier install()."""
    found = []
    if lifecycle_of(app.router.lifespan_context) is not None:
        found.append("its lifespan is a lifecycle's (lifecycle.lifespan())")
    if any(
        isinstance(entry.cls, type) and issubclass(entry.cls, DrainMiddleware)
        for entry in app.user_middleware
    ):
        found.append("it has a DrainMiddleware")
    endpoints = served(lifecycle, app) or set()
    if PROBES in endpoints:
        found.append("it serves the lifecycle's probes (a ProbeApp)")
    if METRICS in endpoints:
        found.append("it serves the lifecycle's metrics (a MetricsApp)")
    return found


def install(
    app: Starlette,
    lifecycle: Lifecycle,
    *,
    probes: str | None = "/health",
    probe_app: ProbeApp | None = None,
    metrics: str | None = "/metrics",
    metrics_app: MetricsApp | None = None,
    deadline: float | None = None,
    route_deadlines: Mapping[str, float | None] | None = None,
    budget_headers: bool = True,
    retry_after: int = 1,
) -> None:
    """Wire *app* (Starlette or FastAPI) to *lifecycle*, as the docs wire it by hand:

    - the lifecycle's lifespan around the app's own (``lifecycle.lifespan(...)``), which is
      kept: whatever the app was given as ``lifespan=`` still runs, first in and last out;
    - a :class:`~gracekit.ProbeApp` mounted at *probes*;
    - a :class:`~gracekit.metrics.MetricsApp` route at *metrics*, serving the lifecycle's
      :class:`~gracekit.metrics.Metrics` (created on prometheus_client's global registry
      unless the lifecycle has them already), when prometheus_client is installed; without
      it there are no metrics and no error;
    - :class:`~gracekit.DrainMiddleware` as the outermost middleware added so far, with
      *deadline*, *route_deadlines*, *budget_headers* and *retry_after*.

    The probes and the metrics go first among the app's routes, so no route or mount of the
    app (a catch-all, static files at ``/``) hides them; routes added later work as usual.
    Call it once the app's own middleware is added (middleware added after it runs outside
    ``DrainMiddleware``) and before the app starts.

    Parameters:
        app: the application, not started yet and not wired yet.
        lifecycle: the lifecycle to wire it to.
        probes: where to mount the probe endpoints; None for none on the app's port (they
            are on the management port, or mounted by hand).
        probe_app: the probe endpoints to mount (default ``ProbeApp(lifecycle)``): one with
            ``prestop=True`` or ``details=`` settings.
        metrics: the path of the metrics route; None for none (no metrics are created).
        metrics_app: the metrics endpoint to serve (default ``MetricsApp(metrics)``): one with
            a ``token=``.
        deadline, route_deadlines, budget_headers, retry_after: DrainMiddleware's settings.

    Raises:
        TypeError, ValueError: not a Starlette or FastAPI app; an app started already, wired
            already (install() called before, or a piece wired by hand), or with a route at
            *probes* or *metrics*; bad settings.
    """
    if not isinstance(lifecycle, Lifecycle):
        raise TypeError(f"install() takes a Lifecycle, not {type(lifecycle).__name__}")
    if not isinstance(app, Starlette):
        raise TypeError(
            f"install() wires a Starlette or FastAPI app, not {type(app).__name__}; wire "
            "another ASGI app by hand: DrainMiddleware(app, lifecycle=lifecycle) around it, "
            "lifecycle.lifespan() as its lifespan, ProbeApp(lifecycle) at /health"
        )
    probes = _path(probes, what="probes")
    metrics = _path(metrics, what="metrics")
    if probes is not None and metrics is not None and (metrics + "/").startswith(probes + "/"):
        raise ValueError(f"metrics ({metrics!r}) must not be below probes ({probes!r})")
    if probe_app is not None:
        if probes is None:
            raise ValueError("probe_app needs a path to be mounted at: probes=None leaves it out")
        if not isinstance(probe_app, ProbeApp) or probe_app.lifecycle is not lifecycle:
            raise ValueError("probe_app must be a ProbeApp of this lifecycle")
    if metrics_app is not None:
        if metrics is None:
            raise ValueError("metrics_app needs a path to be served at: metrics=None leaves it out")
        if getattr(getattr(metrics_app, "metrics", None), "lifecycle", None) is not lifecycle:
            raise ValueError("metrics_app must be a MetricsApp of this lifecycle's Metrics")
    if app.middleware_stack is not None:
        raise ValueError("install() must be called before the app starts, not once it has")
    found = _wired_already(app, lifecycle)
    if found:
        raise ValueError(
            f"the app is wired already: {'; '.join(found)}. Call install() once, on an app "
            "wired by nothing else, or wire every piece by hand"
        )
    taken = {getattr(route, "path", None) for route in app.router.routes}
    for path in (probes, metrics):
        if path is not None and path in taken:
            raise ValueError(f"the app has a route at {path} already")
    options: dict[str, Any] = {
        "deadline": deadline,
        "route_deadlines": route_deadlines,
        "budget_headers": budget_headers,
        "retry_after": retry_after,
    }
    DrainMiddleware(app.router, lifecycle=lifecycle, **options)  # raises on bad settings now

    # Everything is checked: wire it.
    if metrics is not None and metrics_app is None:
        metrics_app = _metrics_app(lifecycle)
    routes = app.router.routes
    if probes is None:
        lifecycle.wiring.unwanted.add(PROBES)
    else:
        routes.insert(0, Mount(probes, app=probe_app or ProbeApp(lifecycle)))
    if metrics is None:
        lifecycle.wiring.unwanted.add(METRICS)
    elif metrics_app is not None:
        routes.insert(0, Route(metrics, metrics_app))  # a route: a mount would redirect
    app.router.lifespan_context = lifecycle.lifespan(app.router.lifespan_context)
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle, **options)


def _metrics_app(lifecycle: Lifecycle) -> MetricsApp | None:
    """A MetricsApp of the lifecycle's Metrics (made now if need be), or None without
    prometheus_client."""
    if importlib.util.find_spec("prometheus_client") is None:
        return None
    from .metrics import Metrics, MetricsApp

    observer = lifecycle.request_observer
    return MetricsApp(observer if isinstance(observer, Metrics) else Metrics(lifecycle))
