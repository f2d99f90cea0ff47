"""Deadline arithmetic and the route table, as pure unit tests (no server, no event loop)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route

from gracekit import Lifecycle, ProbeApp, deadline
from gracekit.deadlines import DeadlineExceeded, RequestDeadline, timeout
from gracekit.deadlines._budget import DRAIN, EXPIRED
from gracekit.deadlines._context import activate, deactivate
from gracekit.deadlines._routes import RouteTable, find_routes


async def endpoint(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


@deadline(0.5)
async def decorated(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


@deadline(None)
async def unbounded(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


class Export(HTTPEndpoint):
    async def get(self, request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")


deadline(60)(Export)


def _task() -> Any:
    class FakeTask:  # the record only stores the task; arithmetic never touches it
        pass

    return FakeTask()


def record(
    table: RouteTable,
    route: Any = None,
    *,
    started: float = 100.0,
    inbound: float | None = None,
    drain_at: float | None = None,
) -> RequestDeadline:
    scope: dict[str, Any] = {"type": "http", "path": "/"}
    if route is not None:
        scope["route"] = route
    return RequestDeadline(_task(), scope, started, inbound, drain_at, table)


def starlette_app() -> Starlette:
    lifecycle = Lifecycle()
    return Starlette(
        routes=[
            Route("/", endpoint),
            Route("/items/{item_id:int}", endpoint),
            Route("/decorated", decorated),
            Route("/unbounded", unbounded),
            Route("/export", Export),
            Mount(
                "/api/{version}",
                routes=[Route("/orders/{order_id}", endpoint), Mount("/deep", routes=[])],
            ),
            Host("admin.example.com", app=Starlette(routes=[Route("/admin", endpoint)])),
            Mount("/health", app=ProbeApp(lifecycle)),
        ]
    )


def route_at(app: Starlette, template: str) -> Any:
    table = RouteTable(find_routes(app), default=None, overrides={})
    for entry in table._by_route.values():
        if template in [info.template for info in entry.infos or ()]:
            return entry.route
    raise AssertionError(f"no route {template}")


# -- the table ----------------------------------------------------------------------------


def test_walk_finds_every_route_with_its_full_template() -> None:
    table = RouteTable(find_routes(starlette_app()), default=None, overrides={})
    assert table.templates == [
        "/",
        "/admin",
        "/api/{version}/deep",
        "/api/{version}/orders/{order_id}",
        "/decorated",
        "/export",
        "/health",
        "/items/{item_id}",
        "/unbounded",
    ]


def test_default_decorators_and_overrides_each_give_their_deadline() -> None:
    app = starlette_app()
    table = RouteTable(
        find_routes(app),
        default=10.0,
        overrides={"/items/{item_id:int}": 2.0, "/api/{version}/orders/{order_id}": None},
    )
    budgets = {t: table.resolve({"route": route_at(app, t)}).budget for t in table.templates}
    assert budgets == {
        "/": 10.0,
        "/admin": 10.0,
        "/api/{version}/deep": 10.0,
        "/api/{version}/orders/{order_id}": None,  # the mapping's None: no deadline
        "/decorated": 0.5,
        "/export": 60.0,  # an HTTPEndpoint class, decorated
        "/health": None,  # the probe endpoints are exempt
        "/items/{item_id}": 2.0,  # keyed as written, convertor included
        "/unbounded": None,
    }
    assert table.shortest == 0.5
    assert table.resolve({"route": route_at(app, "/health")}).exempt


def test_a_key_without_the_convertor_names_the_route_too() -> None:
    app = starlette_app()
    table = RouteTable(find_routes(app), default=None, overrides={"/items/{item_id}": 3.0})
    assert table.resolve({"route": route_at(app, "/items/{item_id}")}).budget == 3.0


def test_an_unknown_route_is_refused_with_the_closest_one() -> None:
    with pytest.raises(
        ValueError, match=r"'/exprot', which is not a route.*did you mean '/export'"
    ):
        RouteTable(find_routes(starlette_app()), default=None, overrides={"/exprot": 1.0})


def test_a_deadline_from_both_the_decorator_and_the_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="both @deadline"):
        RouteTable(find_routes(starlette_app()), default=None, overrides={"/decorated": 1.0})


def test_overrides_without_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="needs an application with routes"):
        RouteTable(None, default=None, overrides={"/x": 1.0})


def test_unrouted_and_unknown_routes_get_the_default() -> None:
    table = RouteTable(find_routes(starlette_app()), default=4.0, overrides={})
    unrouted = table.resolve({"type": "http"})
    assert (unrouted.template, unrouted.budget, unrouted.routed) == (None, 4.0, False)
    stranger = Route("/added/later", endpoint)
    later = table.resolve({"route": stranger})
    assert (later.template, later.budget, later.routed) == ("/added/later", 4.0, True)


def test_older_starlette_is_resolved_by_endpoint() -> None:
    table = RouteTable(find_routes(starlette_app()), default=None, overrides={})
    assert table.resolve({"endpoint": decorated}).budget == 0.5


def test_fastapi_routes_included_under_two_prefixes_keep_both_templates() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/items/{item_id}")
    @deadline(1.5)
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @router.get("/plain")
    async def plain() -> dict[str, str]:
        return {}

    app.include_router(router, prefix="/v1")
    app.include_router(router, prefix="/v2")

    @deadline(7)  # above the path operation decorator: the same function is marked
    @app.get("/top")
    async def top() -> dict[str, str]:
        return {}

    table = RouteTable(find_routes(app), default=None, overrides={"/v2/plain": 9.0})
    route = next(r for r in router.routes if getattr(r, "path", "") == "/items/{item_id}")
    v1 = table.resolve({"route": route, "path": "/v1/items/3"})
    v2 = table.resolve({"route": route, "path": "/v2/items/3"})
    assert (v1.template, v1.budget) == ("/v1/items/{item_id}", 1.5)
    assert (v2.template, v2.budget) == ("/v2/items/{item_id}", 1.5)
    plain_route = next(r for r in router.routes if getattr(r, "path", "") == "/plain")
    assert table.resolve({"route": plain_route, "path": "/v1/plain"}).budget is None
    assert table.resolve({"route": plain_route, "path": "/v2/plain"}).budget == 9.0
    top_route = next(r for r in app.routes if getattr(r, "path", "") == "/top")
    assert table.resolve({"route": top_route}).budget == 7


def test_find_routes_follows_the_middleware_chain() -> None:
    app = starlette_app()

    class Wrapper:
        def __init__(self, app: Any) -> None:
            self.app = app

    assert find_routes(Wrapper(Wrapper(app))) is app.routes
    assert find_routes(Wrapper(object())) is None


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "5", True])
def test_the_decorator_refuses_what_is_not_seconds(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="deadline"):
        deadline(bad)


def test_the_decorator_refuses_what_is_not_an_endpoint() -> None:
    with pytest.raises(TypeError, match="marks an endpoint"):
        deadline(1)(42)


# -- one request's deadline -----------------------------------------------------------------


TABLE = RouteTable(None, default=10.0, overrides={})
NO_DEFAULT = RouteTable(None, default=None, overrides={})


def test_the_deadline_is_the_earliest_bound() -> None:
    assert record(TABLE).at == 110.0
    assert record(TABLE).source == "route"
    lower = record(TABLE, inbound=2.0)
    assert (lower.at, lower.source, lower.budget) == (102.0, "inbound", 2.0)
    higher = record(TABLE, inbound=60.0)
    assert (higher.at, higher.source) == (110.0, "route"), "a caller cannot raise the deadline"
    drained = record(TABLE, drain_at=105.0)
    assert (drained.at, drained.source, drained.expiry_reason()) == (105.0, DRAIN, DRAIN)
    late_drain = record(TABLE, drain_at=120.0)
    assert (late_drain.at, late_drain.expiry_reason()) == (110.0, EXPIRED)


def test_without_any_bound_there_is_no_deadline() -> None:
    free = record(NO_DEFAULT)
    assert (free.at, free.source, free.budget, free.remaining()) == (None, None, None, None)
    assert record(NO_DEFAULT, inbound=3.0).at == 103.0
    assert record(NO_DEFAULT, drain_at=150.0).source == DRAIN


def test_probe_endpoints_ignore_every_bound() -> None:
    app = starlette_app()
    table = RouteTable(find_routes(app), default=1.0, overrides={})
    probe = record(table, route_at(app, "/health"), inbound=0.001, drain_at=100.5)
    assert probe.at is None


def test_remaining_counts_down_to_zero() -> None:
    deadline_ = record(TABLE)
    assert deadline_.remaining(now=104.0) == 6.0
    assert deadline_.remaining(now=130.0) == 0.0


def test_unrouted_requests_may_still_get_a_shorter_deadline() -> None:
    app = starlette_app()
    table = RouteTable(find_routes(app), default=10.0, overrides={})
    assert table.shortest == 0.5
    assert record(table).may_tighten(), "a route with 0.5 s may still claim it"
    assert not record(table, route_at(app, "/")).may_tighten()


@given(
    default=st.one_of(st.none(), st.floats(0.001, 1e5)),
    inbound=st.one_of(st.none(), st.floats(0, 1e5)),
    drain=st.one_of(st.none(), st.floats(0, 1e5)),
)
def test_the_deadline_is_never_later_than_any_bound(
    default: float | None, inbound: float | None, drain: float | None
) -> None:
    table = RouteTable(None, default=default, overrides={})
    drain_at = None if drain is None else 100.0 + drain
    deadline_ = record(table, inbound=inbound, drain_at=drain_at)
    bounds = [100.0 + b for b in (default, inbound) if b is not None]
    bounds += [drain_at] if drain_at is not None else []
    assert deadline_.at == (min(bounds) if bounds else None)
    if bounds:
        assert deadline_.source in ("route", "inbound", DRAIN)
        assert deadline_.expiry_reason() == (DRAIN if deadline_.source == DRAIN else EXPIRED)


def test_timeout_outside_a_request_is_the_default() -> None:
    assert timeout() is None
    assert timeout(3.0) == 3.0


def test_timeout_inside_a_request_is_the_remaining_budget_capped() -> None:
    async def inside() -> tuple[float | None, float | None]:
        loop = asyncio.get_running_loop()
        token = activate(record(TABLE, started=loop.time()))
        try:
            return timeout(), timeout(2.0)
        finally:
            deactivate(token)

    left, capped = asyncio.run(inside())
    assert left is not None
    assert 9.0 < left <= 10.0
    assert capped == 2.0


def test_timeout_raises_once_the_budget_is_spent() -> None:
    async def spent() -> None:
        loop = asyncio.get_running_loop()
        token = activate(record(TABLE, started=loop.time() - 11))
        try:
            timeout()
        finally:
            deactivate(token)

    with pytest.raises(DeadlineExceeded, match="has passed"):
        asyncio.run(spent())
