"""The budget passed on downstream, against real servers: PostgreSQL cancels the query, an HTTP
service receives the budget header, a hanging Redis times out at the budget."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from redis.exceptions import TimeoutError as RedisTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from gracekit import DrainMiddleware, Lifecycle, deadline
from gracekit.deadlines import RequestDeadline, remaining, timeout
from gracekit.deadlines._context import activate, deactivate
from gracekit.deadlines._routes import RouteTable
from gracekit.deadlines.http import budget_hook, sync_budget_hook
from gracekit.deadlines.postgres import statement_timeout
from gracekit.errors import GracekitError
from tests.support.asgi import call, eventually, lifespan
from tests.support.faultproxy import FaultProxy
from tests.support.faults import proxy_to
from tests.support.server import free_port

pytestmark = pytest.mark.anyio


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    # One connection: if a cancelled query left it unusable, the next acquire would show it.
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=1) as created:
        yield created


async def running(dsn: str, tag: str) -> int:
    """How many backends are running the query marked *tag*."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND query LIKE $1 AND pid <> pg_backend_pid()",
            f"%{tag}%",
        )
        return count
    finally:
        await conn.close()


def query_app(pool: asyncpg.Pool, how: str, tag: str) -> Starlette:
    sql = f"SELECT pg_sleep(5) /* {tag} */"

    @deadline(0.3)
    async def query(request: Request) -> PlainTextResponse:
        async with pool.acquire() as conn:
            if how == "cancelled":  # nothing but the deadline's cancellation
                await conn.fetchval(sql)
            elif how == "timeout":
                await conn.fetchval(sql, timeout=timeout())
            else:
                async with conn.transaction():
                    await statement_timeout(conn)
                    await conn.fetchval(sql)
        return PlainTextResponse("finished")

    lifecycle = Lifecycle()
    app = Starlette(routes=[Route("/query", query)], lifespan=lifecycle.lifespan())
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    return app


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["cancelled", "timeout", "statement_timeout"])
async def test_a_query_past_the_deadline_is_cancelled_in_the_server(
    pool: asyncpg.Pool, postgres_dsn: str, how: str
) -> None:
    tag = f"gracekit-deadline-{uuid.uuid4().hex}"
    app = query_app(pool, how, tag)
    async with lifespan(app):
        started = time.monotonic()
        answer = await call(app, "/query")
        elapsed = time.monotonic() - started
    assert answer.status == 504
    assert elapsed < 2.5, "cut near its 0.3 s deadline, not after the query's 5 s"
    deadline_ = time.monotonic() + 3
    while await running(postgres_dsn, tag):
        assert time.monotonic() < deadline_, "the query still runs in PostgreSQL"
        await anyio.sleep(0.05)
    async with pool.acquire() as conn:  # the same, only connection
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW statement_timeout") == "0", "SET LOCAL did not leak"
        assert not conn.is_in_transaction()
    assert pool.get_size() == 1


@pytest.mark.postgres
async def test_statement_timeout_needs_a_transaction(pool: asyncpg.Pool) -> None:
    table = RouteTable(None, default=1.0, overrides={})
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    token = activate(RequestDeadline(task, {}, loop.time(), None, None, table))
    try:
        async with pool.acquire() as conn:
            with pytest.raises(GracekitError, match="needs a transaction"):
                await statement_timeout(conn)
            async with conn.transaction():
                milliseconds = await statement_timeout(conn)
                assert milliseconds is not None
                assert 900 <= milliseconds <= 1000
                shown = await conn.fetchval("SHOW statement_timeout")
                assert shown in (f"{milliseconds}ms", f"{milliseconds / 1000:g}s")
    finally:
        deactivate(token)
    async with pool.acquire() as conn:
        assert await statement_timeout(conn) is None, "no request, no change"


# -- HTTP ------------------------------------------------------------------------------------


def downstream_app(seen: list[dict[str, Any]]) -> Starlette:
    """A gracekit service, as the one called would be: it reads its caller's budget."""

    async def work(request: Request) -> JSONResponse:
        seen.append({"header": request.headers.get("x-gracekit-budget-ms"), "left": remaining()})
        await anyio.sleep(float(request.query_params.get("s", "0")))
        return JSONResponse(seen[-1])

    lifecycle = Lifecycle()
    app = Starlette(routes=[Route("/work", work)], lifespan=lifecycle.lifespan())
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    return app


@pytest.fixture
async def downstream() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    port = free_port()
    config = uvicorn.Config(downstream_app(seen), port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await eventually(lambda: server.started)
        yield f"http://127.0.0.1:{port}", seen
        server.should_exit = True


def caller_app(base: str, thread: dict[str, Any] | None = None) -> Starlette:
    thread = {} if thread is None else thread

    @deadline(0.8)
    async def forward(request: Request) -> JSONResponse:
        seconds = request.query_params.get("s", "0")
        async with httpx.AsyncClient(event_hooks={"request": [budget_hook]}) as http:
            response = await http.get(f"{base}/work?s={seconds}")
        return JSONResponse(response.json())

    @deadline(0.8)
    def forward_sync(request: Request) -> JSONResponse:  # a worker thread: no cancellation
        seconds = request.query_params.get("s", "0")
        started = time.monotonic()
        try:
            with httpx.Client(event_hooks={"request": [sync_budget_hook]}, timeout=30) as http:
                thread["outcome"] = http.get(f"{base}/work?s={seconds}").status_code
        except httpx.TimeoutException:
            thread["outcome"] = "timeout"
        thread["elapsed"] = time.monotonic() - started
        return JSONResponse({})

    lifecycle = Lifecycle()
    app = Starlette(
        routes=[Route("/forward", forward), Route("/forward-sync", forward_sync)],
        lifespan=lifecycle.lifespan(),
    )
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    return app


async def test_a_downstream_call_receives_the_remaining_budget(
    downstream: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = downstream
    app = caller_app(base)
    async with lifespan(app):
        answer = await call(app, "/forward")
        slow = await call(app, "/forward?s=3")
    assert answer.status == 200
    header = int(answer.json()["header"])
    assert 0 < header <= 800
    assert 0 < answer.json()["left"] <= header / 1000, "the service called runs on that budget"
    assert slow.status == 504, "the call's wait ends with the caller's deadline"
    assert int(seen[-1]["header"]) <= 800


async def test_a_sync_client_times_out_at_the_budget(
    downstream: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = downstream
    thread: dict[str, Any] = {}
    app = caller_app(base, thread)
    async with lifespan(app):
        started = time.monotonic()
        answer = await call(app, "/forward-sync?s=3")
        elapsed = time.monotonic() - started
        await eventually(lambda: "elapsed" in thread, timeout=10)
    assert answer.status == 504, "the async side answers at the deadline"
    assert elapsed < 2.5
    # Nothing can cancel the thread. Its call ended with the budget, not after 30 s: the service
    # called cut it at the budget it was sent (504), or the client's capped timeout did.
    assert thread["outcome"] in (504, "timeout")
    assert thread["elapsed"] < 2.5


def test_the_hook_caps_the_timeouts_and_refuses_a_spent_budget() -> None:
    from gracekit.deadlines.http import apply_budget
    from gracekit.errors import DeadlineExceeded

    async def inside(started_ago: float) -> httpx.Request:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        table = RouteTable(None, default=1.0, overrides={})
        token = activate(RequestDeadline(task, {}, loop.time() - started_ago, None, None, table))
        try:
            request = httpx.Request("GET", "http://example.invalid/x")
            request.extensions["timeout"] = {"connect": 0.25, "read": 9.0}
            apply_budget(request)
            return request
        finally:
            deactivate(token)

    request = asyncio.run(inside(0.0))
    timeouts = request.extensions["timeout"]
    assert timeouts["connect"] == 0.25, "a shorter timeout stays"
    assert 0.9 < timeouts["read"] <= 1.0
    assert 0.9 < timeouts["pool"] <= 1.0, "an unset one gets the budget"
    assert 900 <= int(request.headers["x-gracekit-budget-ms"]) <= 1000
    with pytest.raises(DeadlineExceeded, match=r"no budget left to call http://example\.invalid/x"):
        asyncio.run(inside(2.0))


async def test_no_budget_means_no_header_and_no_timeout_change(
    downstream: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = downstream
    async with httpx.AsyncClient(event_hooks={"request": [budget_hook]}, timeout=7) as http:
        response = await http.get(f"{base}/work")
    assert response.json()["header"] is None
    assert response.request.extensions["timeout"]["read"] == 7


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[FaultProxy]:
    with proxy_to(redis_url) as running_proxy:
        yield running_proxy


@pytest.mark.redis
async def test_a_hanging_redis_times_out_at_the_budget(redis_proxy: FaultProxy) -> None:
    from gracekit.deadlines.redis import DeadlineConnection

    client = aioredis.Redis.from_url(
        f"redis://{redis_proxy.host}:{redis_proxy.port}/0",
        socket_timeout=5,
        connection_class=DeadlineConnection,
    )
    try:
        assert await client.ping()
        redis_proxy.hang()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        table = RouteTable(None, default=0.3, overrides={})
        token = activate(RequestDeadline(task, {}, loop.time(), None, None, table))
        started = time.monotonic()
        try:
            with pytest.raises(RedisTimeout):
                await client.get("gracekit:test:deadline")
        finally:
            deactivate(token)
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"gave up after {elapsed:.2f} s, not at the 0.3 s budget"
        redis_proxy.pass_through()
        assert await client.ping(), "outside a request the configured timeout applies again"
        connection = client.connection_pool.make_connection()
        assert connection.socket_timeout == 5
    finally:
        await client.aclose()


def test_from_url_picks_the_deadline_class_of_the_scheme() -> None:
    from gracekit.deadlines.redis import DeadlineConnection, DeadlineSSLConnection, from_url

    plain = from_url("redis://127.0.0.1:6379/0", socket_timeout=5)
    tls = from_url("rediss://user:secret@cache.internal:6380/2", socket_timeout=3)
    assert plain.connection_pool.connection_class is DeadlineConnection
    assert tls.connection_pool.connection_class is DeadlineSSLConnection
    assert tls.connection_pool.connection_kwargs["db"] == 2
    assert tls.connection_pool.connection_kwargs["socket_timeout"] == 3
    with pytest.raises(ValueError, match="unix://"):
        from_url("unix:///run/redis.sock")
