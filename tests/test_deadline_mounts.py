"""Mounted apps under FastAPI as under Starlette: the route table finds the mount whichever way
the router says where a request went (``scope["route"]``, or only ``scope["endpoint"]`` as
FastAPI's router does for mounts and older Starlette does for everything), through included
routers and apps mounted in apps. gracekit's own endpoints there are never cut by a deadline,
counted as requests, or counted as in flight."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming
from gracekit.deadlines._routes import RouteTable, find_routes
from gracekit.metrics import Metrics, MetricsApp
from tests.support.asgi import Answer, call, eventually, lifespan
from tests.support.metrics import label_values, samples, value

pytestmark = pytest.mark.anyio

DEFAULT_DEADLINE = 0.2
DELAY = 0.5


class Files:
    """A mounted ASGI app without routes (as StaticFiles is): sleeps ``?s=`` seconds."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seconds = float(scope["query_string"].decode().partition("s=")[2] or 0)
        await anyio.sleep(seconds)
        await PlainTextResponse("file")(scope, receive, send)


async def item(request: Any) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["item_id"])


@dataclass
class Service:
    app: Any
    lifecycle: Lifecycle
    registry: CollectorRegistry
    prefix: str  # where the probes, the mounted apps and the routes are

    def scrape(self) -> dict[Any, float]:
        return samples(generate_latest(self.registry).decode())


def _parts() -> tuple[Lifecycle, CollectorRegistry, MetricsApp, ProbeApp]:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=DELAY, drain_timeout=0.5))
    registry = CollectorRegistry()
    metrics = MetricsApp(Metrics(lifecycle, registry=registry))
    return lifecycle, registry, metrics, ProbeApp(lifecycle, prestop=True, prestop_token="t")


def _drain(app: Any, lifecycle: Lifecycle, prefix: str) -> None:
    app.add_middleware(
        DrainMiddleware,
        lifecycle=lifecycle,
        deadline=DEFAULT_DEADLINE,
        route_deadlines={f"{prefix}/files": None},
    )


def starlette_app() -> Service:
    lifecycle, registry, metrics, probes = _parts()
    app = Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/metrics", metrics),
            Mount("/health", app=probes),
            Mount("/files", app=Files()),
            Mount("/cache", app=Files()),
        ],
        lifespan=lifecycle.lifespan(),
    )
    _drain(app, lifecycle, "")
    return Service(app, lifecycle, registry, "")


def _fastapi_routes(app: FastAPI | APIRouter, probes: ProbeApp) -> None:
    @app.get("/items/{item_id}")
    async def fastapi_item(item_id: int) -> int:
        return item_id

    app.mount("/health", probes)
    app.mount("/files", Files())
    app.mount("/cache", Files())


def fastapi_app() -> Service:
    # As the README wires it.
    lifecycle, registry, metrics, probes = _parts()
    app = FastAPI(lifespan=lifecycle.lifespan())
    _fastapi_routes(app, probes)
    app.add_route("/metrics", metrics)
    _drain(app, lifecycle, "")
    return Service(app, lifecycle, registry, "")


def fastapi_router() -> Service:
    lifecycle, registry, metrics, probes = _parts()
    app = FastAPI(lifespan=lifecycle.lifespan())
    router = APIRouter()
    _fastapi_routes(router, probes)
    app.include_router(router, prefix="/v1")
    app.add_route("/metrics", metrics)
    _drain(app, lifecycle, "/v1")
    return Service(app, lifecycle, registry, "/v1")


def fastapi_in_starlette() -> Service:
    lifecycle, registry, metrics, probes = _parts()
    inner = FastAPI()
    _fastapi_routes(inner, probes)
    app = Starlette(
        routes=[Route("/metrics", metrics), Mount("/api", app=inner)],
        lifespan=lifecycle.lifespan(),
    )
    _drain(app, lifecycle, "/api")
    return Service(app, lifecycle, registry, "/api")


def starlette_in_fastapi() -> Service:
    lifecycle, registry, metrics, probes = _parts()
    inner = Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Mount("/health", app=probes),
            Mount("/files", app=Files()),
            Mount("/cache", app=Files()),
        ]
    )
    app = FastAPI(lifespan=lifecycle.lifespan())
    app.mount("/api", inner)
    app.add_route("/metrics", metrics)
    _drain(app, lifecycle, "/api")
    return Service(app, lifecycle, registry, "/api")


SERVICES: dict[str, Callable[[], Service]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "fastapi-router": fastapi_router,
    "fastapi-in-starlette": fastapi_in_starlette,
    "starlette-in-fastapi": starlette_in_fastapi,
}


@pytest.fixture(params=list(SERVICES))
def service(request: pytest.FixtureRequest) -> Service:
    return SERVICES[request.param]()


async def test_mounted_apps_are_counted_by_their_mount_path(service: Service) -> None:
    p = service.prefix
    async with lifespan(service.app):
        for path in ("/health/ready", "/health/live", "/health/startup?verbose"):
            assert (await call(service.app, p + path)).status == 200, path
        assert (await call(service.app, "/metrics")).status == 200
        assert (await call(service.app, p + "/files/a.txt")).status == 200
        assert (await call(service.app, p + "/items/3")).status == 200
        assert (await call(service.app, p + "/nothing")).status == 404
    scrape = service.scrape()
    assert label_values(scrape, "http_requests_total", "route") == {
        f"{p}/files",
        f"{p}/items/{{item_id}}",
        "unmatched",
    }
    assert value(scrape, "http_requests_total", method="GET", route="unmatched", status="404") == 1


async def test_route_deadlines_apply_to_mounted_apps(service: Service) -> None:
    p = service.prefix
    async with lifespan(service.app):
        kept = await call(service.app, p + "/files/big?s=0.5")  # route_deadlines: None
        cut = await call(service.app, p + "/cache/big?s=0.5")  # the default, 0.2 s
    assert (kept.status, kept.body) == (200, b"file")
    assert cut.status == 504
    assert cut.json()["route"] == f"{p}/cache"


async def test_the_prestop_hook_is_neither_cut_nor_counted(service: Service) -> None:
    p, lifecycle = service.prefix, service.lifecycle
    answers: list[Answer] = []
    async with lifespan(service.app), anyio.create_task_group() as tg:

        async def prestop() -> None:
            headers = [(b"authorization", b"Bearer t"), (b"x-gracekit-budget-ms", b"1")]
            answers.append(await call(service.app, p + "/health/prestop", headers=headers))

        tg.start_soon(prestop)
        await eventually(lambda: lifecycle.draining)
        # During the delay: the hook waits; probes answer; none of it is the app's traffic.
        assert (await call(service.app, p + "/health/ready")).status == 503
        assert (await call(service.app, p + "/health/live")).status == 200
        assert len(lifecycle.inflight.requests) == 1, "the hook is still waiting"
        assert len(lifecycle.inflight) == 0, "and is not the app's request in flight"
        during = samples((await call(service.app, "/metrics")).body.decode())
        assert (await call(service.app, p + "/items/1")).status == 200
    assert [(a.status, a.body) for a in answers] == [(200, b"draining\n")]
    assert value(during, "gracekit_requests_in_flight") == 0
    scrape = service.scrape()
    assert label_values(scrape, "http_requests_total", "route") == {f"{p}/items/{{item_id}}"}
    assert value(scrape, "gracekit_requests_after_shutdown_total") == 1, "the /items request"
    assert value(scrape, "gracekit_deadline_expired_total", route=f"{p}/health") == 0


def _scope(path: str, **routed: Any) -> dict[str, Any]:
    return {"type": "http", "path": path, "root_path": "", **routed}


def test_an_endpoint_only_scope_finds_the_mount() -> None:
    # Starlette before scope["route"], and FastAPI's router for mounts, set only the endpoint.
    files, probes = Files(), ProbeApp(Lifecycle())
    sub = Starlette(routes=[Route("/items/{item_id}", item)])
    app = Starlette(
        routes=[Mount("/health", app=probes), Mount("/files", app=files), Mount("/sub", app=sub)]
    )
    table = RouteTable(find_routes(app), default=1.0, overrides={"/files": 5})
    health = table.resolve(_scope("/health/ready", endpoint=probes))
    assert (health.template, health.budget, health.exempt) == ("/health", None, True)
    mounted = table.resolve(_scope("/files/a", endpoint=files))
    assert (mounted.template, mounted.budget, mounted.exempt) == ("/files", 5, False)
    assert not table.resolve(_scope("/sub/items/1", endpoint=sub)).routed, "the leaf is to come"
    leaf = table.resolve(_scope("/sub/items/1", endpoint=item))
    assert (leaf.template, leaf.budget) == ("/sub/items/{item_id}", 1.0)


def test_one_app_mounted_twice_is_told_apart_by_path() -> None:
    files = Files()
    app = Starlette(routes=[Mount("/a", app=files), Mount("/b/{tenant}", app=files)])
    table = RouteTable(find_routes(app), default=None, overrides={"/a": 1.0, "/b/{tenant}": 2.0})
    by_endpoint = [table.resolve(_scope(path, endpoint=files)) for path in ("/a/x", "/b/t1/x")]
    assert [(i.template, i.budget) for i in by_endpoint] == [("/a", 1.0), ("/b/{tenant}", 2.0)]
    mounts = find_routes(app) or []
    by_route = [table.resolve(_scope("/b/t/x", route=m, endpoint=files)) for m in mounts]
    assert [i.template for i in by_route] == ["/a", "/b/{tenant}"]
