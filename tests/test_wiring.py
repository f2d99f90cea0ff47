"""gracekit.install() wires a Starlette or FastAPI app in one call; an app wired by hand with a
piece missing says so at startup, once, naming the piece and how to add it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import gracekit
from gracekit import DrainMiddleware, Lifecycle, Management, ProbeApp, ShutdownTiming
from gracekit.metrics import Metrics, MetricsApp
from tests.apps.miswired import hand_wired
from tests.support.asgi import call, eventually, lifespan
from tests.support.server import TEST_APPS, run_uvicorn, wait_until

pytestmark = pytest.mark.anyio

LIFESPAN = (
    "the lifecycle's lifespan is not in use: the app started without it, so no check, startup "
    "task or shutdown sequence runs and the probes answer 'not running'; add it with "
    "gracekit.install(app, lifecycle), or pass lifespan=lifecycle.lifespan() (around the app's "
    "own lifespan, if it has one) to Starlette() or FastAPI()"
)
MIDDLEWARE = (
    "no DrainMiddleware wraps the app: its requests are not counted, get no 'Connection: close' "
    "while the pod drains, have no deadline and are not waited for at shutdown; add it with "
    "gracekit.install(app, lifecycle), or app.add_middleware(DrainMiddleware, "
    "lifecycle=lifecycle) after any other middleware"
)
PROBES = (
    "no probe endpoints: the app mounts no ProbeApp of this lifecycle and there is no "
    "management port, so Kubernetes cannot ask whether it started, lives or is ready; add them "
    "with gracekit.install(app, lifecycle), or app.mount('/health', ProbeApp(lifecycle))"
)
METRICS = (
    "no metrics route: the lifecycle has Metrics, but the app serves no MetricsApp of them and "
    "there is no management port, so Prometheus cannot scrape them; add it with "
    "gracekit.install(app, lifecycle), or app.routes.append(Route('/metrics', MetricsApp(metrics)))"
)


def quick() -> Lifecycle:
    return Lifecycle(shutdown=ShutdownTiming(delay=0, drain_timeout=1, hook_timeout=1))


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def hang(request: Request) -> PlainTextResponse:
    await anyio.sleep(30)
    return PlainTextResponse("never")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gracekit" and r.levelno >= logging.WARNING
    ]


# -- install() -------------------------------------------------------------------------------


def fastapi_app(lifecycle: Lifecycle, opened: list[str]) -> FastAPI:
    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        opened.append("open")
        yield {"greeting": "hello"}
        opened.append("closed")

    app = FastAPI(lifespan=own)

    @app.get("/before")
    async def before() -> dict[str, str]:
        return {"route": "before"}

    return app


async def test_install_wires_a_fastapi_app_with_routes_before_and_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gracekit")
    lifecycle, opened = quick(), []
    Metrics(lifecycle, registry=CollectorRegistry())  # install() serves the ones it has
    app = fastapi_app(lifecycle, opened)
    gracekit.install(app, lifecycle, deadline=0.2)

    @app.get("/after")
    async def after() -> dict[str, str]:
        await anyio.sleep(30)
        return {"never": "reached"}

    async with lifespan(app) as state:
        assert opened == ["open"], "the app's own lifespan runs, inside the lifecycle's"
        assert state == {"greeting": "hello"}
        await eventually(lambda: lifecycle.readiness().ok)
        ready = await call(app, "/health/ready")
        assert (ready.status, ready.body) == (200, b"pass\n")
        before = await call(app, "/before")
        assert before.status == 200
        # The middleware is there: a route added after install() gets its deadline.
        assert (await call(app, "/after")).status == 504
        scrape = (await call(app, "/metrics")).body.decode()
        assert 'http_requests_total{method="GET",route="/after",status="504"} 1.0' in scrape
        assert 'route="/health' not in scrape, "the probes are gracekit's own, not counted"
    assert opened == ["open", "closed"]
    assert warnings(caplog) == [], "nothing missing"


async def test_install_wires_a_starlette_app_and_keeps_its_lifespan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifecycle, seen = quick(), []

    @asynccontextmanager
    async def own(app: Starlette) -> AsyncIterator[None]:
        seen.append(lifecycle.phase.value)  # entered before the lifecycle runs
        yield
        seen.append(lifecycle.phase.value)  # left after it stopped

    app = Starlette(routes=[Route("/", hello), Route("/hang", hang)], lifespan=own)
    gracekit.install(app, lifecycle, metrics=None, route_deadlines={"/hang": 0.2})
    async with lifespan(app):
        await eventually(lambda: lifecycle.readiness().ok)
        assert (await call(app, "/health/live")).status == 200
        assert (await call(app, "/hang")).status == 504
        assert (await call(app, "/metrics")).status == 404, "metrics=None: none"
        lifecycle.shutdown()
        answer = await call(app, "/")
        assert answer.headers[b"connection"] == b"close", "the middleware drains"
    assert seen == ["starting", "stopped"]
    assert warnings(caplog) == []


async def test_the_probes_go_before_a_catch_all_mount(tmp_path: Any) -> None:
    lifecycle = quick()
    app = Starlette(routes=[Mount("/", app=StaticFiles(directory=tmp_path))])
    gracekit.install(app, lifecycle, metrics=None)
    async with lifespan(app):
        await eventually(lambda: lifecycle.readiness().ok)
        assert (await call(app, "/health/ready")).status == 200


async def test_install_takes_a_probe_app_and_a_metrics_app() -> None:
    lifecycle = quick()
    metrics = Metrics(lifecycle, registry=CollectorRegistry())
    app = Starlette(routes=[Route("/", hello)])
    gracekit.install(
        app,
        lifecycle,
        probes="/healthz",
        probe_app=ProbeApp(lifecycle, details="always"),
        metrics="/internal/metrics",
        metrics_app=MetricsApp(metrics, token="t0ken"),
    )
    async with lifespan(app):
        await eventually(lambda: lifecycle.readiness().ok)
        verbose = await call(app, "/healthz/ready?verbose")
        assert verbose.json()["status"] == "pass"
        assert (await call(app, "/internal/metrics")).status == 401
        authorized = [(b"authorization", b"Bearer t0ken")]
        assert (await call(app, "/internal/metrics", headers=authorized)).status == 200


def test_installing_twice_fails_and_changes_nothing() -> None:
    lifecycle = quick()
    app = Starlette(routes=[Route("/", hello)])
    gracekit.install(app, lifecycle, metrics=None)
    routes, middleware = list(app.routes), list(app.user_middleware)
    with pytest.raises(ValueError, match="wired already") as raised:
        gracekit.install(app, lifecycle, metrics=None)
    assert str(raised.value) == (
        "the app is wired already: its lifespan is a lifecycle's (lifecycle.lifespan()); it has "
        "a DrainMiddleware; it serves the lifecycle's probes (a ProbeApp). Call install() once, "
        "on an app wired by nothing else, or wire every piece by hand"
    )
    assert (app.routes, app.user_middleware) == (routes, middleware)


@pytest.mark.parametrize(
    ("piece", "found"),
    [
        ("lifespan", "its lifespan is a lifecycle's (lifecycle.lifespan())"),
        ("middleware", "it has a DrainMiddleware"),
        ("probes", "it serves the lifecycle's probes (a ProbeApp)"),
        ("metrics", "it serves the lifecycle's metrics (a MetricsApp)"),
    ],
)
def test_install_refuses_an_app_wired_by_hand(piece: str, found: str) -> None:
    lifecycle = quick()
    routes: list[Any] = [Route("/", hello)]
    if piece == "probes":
        routes.append(Mount("/probes", app=ProbeApp(lifecycle)))
    if piece == "metrics":
        routes.append(Route("/stats", MetricsApp(Metrics(lifecycle, registry=CollectorRegistry()))))
    app = Starlette(routes=routes, lifespan=lifecycle.lifespan() if piece == "lifespan" else None)
    if piece == "middleware":
        app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    with pytest.raises(ValueError, match=r"^the app is wired already: ") as raised:
        gracekit.install(app, lifecycle)
    assert str(raised.value).split(": ", 1)[1].split(". Call")[0] == found


def test_install_refuses_a_fastapi_app_wired_by_hand_or_twice() -> None:
    lifecycle = quick()
    by_hand = FastAPI(lifespan=lifecycle.lifespan())
    with pytest.raises(ValueError, match=r"its lifespan is a lifecycle's \(lifecycle.lifespan"):
        gracekit.install(by_hand, lifecycle)
    app = FastAPI()
    gracekit.install(app, lifecycle, metrics=None)
    with pytest.raises(ValueError, match="wired already: its lifespan is a lifecycle's"):
        gracekit.install(app, lifecycle, metrics=None)


async def test_install_refuses_a_started_app() -> None:
    lifecycle = quick()
    app = Starlette(routes=[Route("/", hello)])
    assert (await call(app, "/")).status == 200
    with pytest.raises(ValueError, match="before the app starts"):
        gracekit.install(app, lifecycle, metrics=None)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"probes": "health"}, ValueError, "probes must be a path like '/probes'"),
        ({"metrics": "/metrics/"}, ValueError, "metrics must be a path like '/metrics'"),
        ({"probes": 5}, TypeError, "probes must be a path"),
        ({"metrics": "/health/metrics"}, ValueError, "must not be below probes"),
        ({"probes": None, "probe_app": "x"}, ValueError, "probe_app needs a path"),
        ({"probe_app": ProbeApp(Lifecycle())}, ValueError, "a ProbeApp of this lifecycle"),
        ({"deadline": -1}, ValueError, "deadline"),
        ({"retry_after": "1"}, ValueError, "retry_after"),
        ({"route_deadlines": {"nope": 1}}, ValueError, "route_deadlines keys"),
        ({"probes": "/taken"}, ValueError, "the app has a route at /taken already"),
    ],
)
def test_bad_settings_raise_before_anything_is_wired(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    lifecycle = quick()
    app = Starlette(routes=[Route("/", hello), Route("/taken", hello)])
    lifespan_before = app.router.lifespan_context
    with pytest.raises(error, match=message):
        gracekit.install(app, lifecycle, **options)
    assert len(app.routes) == 2
    assert app.user_middleware == []
    assert app.router.lifespan_context is lifespan_before
    assert lifecycle.request_observer is None


def test_install_takes_only_starlette_apps_and_lifecycles() -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(TypeError, match="wires a Starlette or FastAPI app, not function"):
        gracekit.install(bare, quick())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a Lifecycle, not str"):
        gracekit.install(Starlette(), "lifecycle")  # type: ignore[arg-type]


async def test_middleware_added_after_install_runs_outside_it() -> None:
    # Documented: install() adds DrainMiddleware as the outermost middleware *so far*.
    lifecycle = quick()
    app = Starlette(routes=[Route("/", hello)])
    gracekit.install(app, lifecycle, metrics=None)
    app.add_middleware(GZipMiddleware)
    assert [m.cls for m in app.user_middleware] == [GZipMiddleware, DrainMiddleware]


# -- the startup report ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "message"),
    [("middleware", MIDDLEWARE), ("probes", PROBES), ("metrics", METRICS), ("lifespan", LIFESPAN)],
)
async def test_a_missing_piece_is_reported_once_at_startup(
    missing: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    lifecycle = quick()
    app = hand_wired(lifecycle, missing, CollectorRegistry())
    async with lifespan(app):
        assert warnings(caplog) == [message]
    async with lifespan(app):  # a second startup of the same app: said already
        pass
    assert warnings(caplog) == [message]


async def test_a_complete_wiring_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    lifecycle = quick()
    app = hand_wired(lifecycle, "nothing", CollectorRegistry())
    async with lifespan(app):
        await eventually(lambda: lifecycle.readiness().ok)
    assert warnings(caplog) == []


async def test_without_the_lifespan_the_other_missing_pieces_are_reported_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifecycle = quick()
    Metrics(lifecycle, registry=CollectorRegistry())
    app = DrainMiddleware(Starlette(routes=[Route("/", hello)]), lifecycle=lifecycle)
    async with lifespan(app):
        pass
    assert warnings(caplog) == [LIFESPAN, PROBES, METRICS]


async def test_without_metrics_no_metrics_route_is_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifecycle = quick()  # no Metrics: the app did not ask for any
    app = Starlette(
        routes=[Route("/", hello), Mount("/health", app=ProbeApp(lifecycle))],
        lifespan=lifecycle.lifespan(),
    )
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    async with lifespan(app):
        pass
    assert warnings(caplog) == []


async def test_a_management_port_serves_the_probes_and_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifecycle = Lifecycle(management=Management(port=0, host="127.0.0.1"))
    Metrics(lifecycle, registry=CollectorRegistry())
    app = Starlette(routes=[Route("/", hello)], lifespan=lifecycle.lifespan())
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    async with lifespan(app):
        assert lifecycle.management_port is not None
    assert warnings(caplog) == []


async def test_install_without_probes_does_not_report_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifecycle = quick()
    app = Starlette(routes=[Route("/", hello)])
    gracekit.install(app, lifecycle, probes=None, metrics=None)
    async with lifespan(app):
        pass
    assert warnings(caplog) == []


async def test_probes_in_a_mounted_sub_app_are_found(caplog: pytest.LogCaptureFixture) -> None:
    lifecycle = quick()
    inner = Starlette(routes=[Mount("/health", app=ProbeApp(lifecycle))])
    app = Starlette(routes=[Mount("/api", app=inner)], lifespan=lifecycle.lifespan())
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    async with lifespan(app):
        pass
    assert warnings(caplog) == []


async def test_a_state_of_the_apps_own_passes_through_the_watch() -> None:
    lifecycle = quick()

    @asynccontextmanager
    async def own(app: Starlette) -> AsyncIterator[dict[str, str]]:
        yield {"pool": "open"}

    async def pool(request: Request) -> JSONResponse:
        return JSONResponse({"pool": request.state.pool})

    app = Starlette(routes=[Route("/", pool)], lifespan=own)
    gracekit.install(app, lifecycle, metrics=None)
    async with lifespan(app) as state:
        assert state == {"pool": "open"}


# -- in a real process -----------------------------------------------------------------------


@pytest.mark.parametrize(("missing", "message"), [("lifespan", LIFESPAN), ("nothing", None)])
def test_a_real_server_says_what_is_missing(missing: str, message: str | None) -> None:
    with run_uvicorn(
        "miswired:app",
        app_dir=TEST_APPS,
        env={"MISSING": missing},
        launcher="gracekit",
        ready_path="/health/live",
        ready_statuses=(200, 503),
    ) as server:
        assert wait_until(lambda: "Application startup complete." in server.log(), timeout=10)
        log = server.log()
    warned = [line for line in log.splitlines() if line.startswith("WARNING:")]
    if message is None:
        assert warned == [], log
    else:
        assert warned == [f"WARNING:  {message}"], log
        startup = log.index("Application startup complete.")
        assert log.index(message) < startup, "at startup, before it serves"


@pytest.mark.parametrize("missing", ["middleware", "install"])
def test_a_real_server_under_plain_uvicorn(missing: str) -> None:
    with run_uvicorn(
        "miswired:app", app_dir=TEST_APPS, env={"MISSING": missing}, args=["--lifespan", "on"]
    ) as server:
        assert wait_until(lambda: "Application startup complete." in server.log(), timeout=10)
        log = server.log()
    warned = [line for line in log.splitlines() if line.startswith("WARNING:")]
    assert warned == ([f"WARNING:  {MIDDLEWARE}"] if missing == "middleware" else []), log
