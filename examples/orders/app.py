"""An orders service: FastAPI, PostgreSQL and Redis, with gracekit's probes on a management port.

Run it with:  uvicorn app:app --app-dir examples/orders --lifespan on   (see README.md)

Settings come from the environment, read once in :meth:`Settings.from_env`:
  ORDERS_DATABASE_URL       asyncpg DSN      (default postgresql://postgres@127.0.0.1:5432/test)
  ORDERS_REDIS_URL          redis URL        (default redis://127.0.0.1:6379/0)
  GRACEKIT_MANAGEMENT_PORT  the management port (default MANAGEMENT_PORT, 9001), read by
                            gracekit when the app starts (``gracekit run --management-port``)
  GRACEKIT_PRESTOP_TOKEN    the token the preStop hook sends (k8s/deployment.yaml)

On the app's port (8000), the only one the Service exposes:
  POST /orders          {"item": str, "quantity": int > 0} -> 201 with the stored order
  GET  /orders/{id}     -> the order, or 404
  GET  /orders          -> the latest 50 orders, newest first

Every request has a 10 s deadline (REQUEST_DEADLINE): past it the client gets a 504.

PostgreSQL and Redis may be down when the service starts: it starts all the same, answers
readiness 503, and becomes ready once both answer again (the startup task creates the table and
warms the cache, retrying every STARTUP_RETRY seconds until it can).

On the management port (9001), for the kubelet and Prometheus only (gracekit serves it):
  GET  /health/startup, /health/live, /health/ready, /health/ready/NAME   the probes; their
                        ``?verbose`` reports include error texts (details="always": no
                        Service exposes the port)
  GET  /health/prestop  the preStop hook: starts the graceful shutdown (see k8s/deployment.yaml);
                        it needs the token of GRACEKIT_PRESTOP_TOKEN, since the port listens
                        on 0.0.0.0 in the pod (it follows the server's --host)
  GET  /metrics         Prometheus metrics: requests by route, the lifecycle

In a container it runs as ``gracekit run app:app --host 0.0.0.0 --port 8000`` (see Dockerfile).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import anyio
import asyncpg
from fastapi import FastAPI, HTTPException, Path
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gracekit import DrainMiddleware, Lifecycle, Management
from gracekit.checks import postgres_check, redis_check
from gracekit.metrics import Metrics

__all__ = ["MANAGEMENT_PORT", "Settings", "Store", "app", "create_app", "create_lifecycle"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: The management port: probes, metrics and the preStop hook, apart from the orders routes.
#: GRACEKIT_MANAGEMENT_PORT overrides it when the app starts.
MANAGEMENT_PORT = 9001
#: The Redis key the startup task fills: the number of orders when this process started.
COUNT_KEY = "orders_example:count"
LATEST_LIMIT = 50
#: The largest value of the int columns: bigger numbers are rejected (422), not sent (500).
MAX_INT4 = 2**31 - 1
#: Every request's deadline, in seconds: past it the client gets a 504 and the query is cancelled.
REQUEST_DEADLINE = 10.0
#: How long shutdown waits for borrowed connections to come back before cutting them; the
#: shutdown hook that closes the pool is bounded a second later, so it never times out.
POOL_CLOSE_TIMEOUT = 4.0
#: Seconds between two attempts of the startup work while PostgreSQL or Redis is down.
STARTUP_RETRY = 1.0
#: What a dependency that is down (or starting, or restarting) raises: worth another attempt.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    RedisConnectionError,
    RedisTimeoutError,
)

logger = logging.getLogger("orders")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS orders_example (
    id serial PRIMARY KEY,
    item text NOT NULL,
    quantity int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
COLUMNS = "id, item, quantity, created_at"


@dataclass(frozen=True)
class Settings:
    """Where the service's dependencies are; built by :meth:`from_env` or by hand in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The settings named by the ``ORDERS_*`` variables of *environ*."""
        return cls(
            database_url=environ.get("ORDERS_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=environ.get("ORDERS_REDIS_URL", DEFAULT_REDIS_URL),
        )

    def __repr__(self) -> str:
        # DSNs can carry passwords.
        return "Settings(database_url=..., redis_url=...)"


class NewOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = Field(min_length=1, max_length=200)
    quantity: int = Field(gt=0, le=MAX_INT4)


class Order(BaseModel):
    id: int
    item: str
    quantity: int
    created_at: datetime


def _order(row: asyncpg.Record) -> Order:
    return Order.model_validate(dict(row))


async def _create_table(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    # Pods of a new deployment start together, and concurrent CREATE TABLE IF NOT EXISTS
    # can still collide in the catalog: the lock makes them take turns.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('orders_example'))")
        await conn.execute(CREATE_TABLE)


class Store:
    """The service's connections: opened and closed by :meth:`lifespan`, read by the routes
    and by gracekit's checks."""

    def __init__(self, settings: Settings) -> None:
        # from_url does no I/O: the client connects on first use, inside the event loop.
        # It exists before the lifespan because redis_check() takes the client itself.
        self.redis: Redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2.0)
        self.pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._database_url = settings.database_url

    def require_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self.pool is None:
            raise RuntimeError("the database pool is not open (is the lifespan running?)")
        return self.pool

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """Create the pool; close it (unless the shutdown hook did) and the Redis client at
        shutdown. Nothing connects here: with min_size=0 the pool connects on first use, so
        the service starts (unready) while PostgreSQL is down, instead of exiting."""
        try:
            self.pool = await asyncpg.create_pool(
                self._database_url, min_size=0, max_size=10, timeout=5.0, command_timeout=5.0
            )
            try:
                yield
            finally:
                await self.close_pool()
        finally:
            await self.redis.aclose()

    async def close_pool(self) -> None:
        """Close the pool within ``POOL_CLOSE_TIMEOUT``, then cut what is left; at most once."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        with anyio.move_on_after(POOL_CLOSE_TIMEOUT, shield=True) as scope:
            await pool.close()
        if scope.cancelled_caught:
            pool.terminate()

    async def prepare(self) -> None:
        """The startup work: the table if it is missing, and the cached count of orders."""
        pool = self.require_pool()
        await _create_table(pool)
        count = await pool.fetchval("SELECT count(*) FROM orders_example")
        await self.redis.set(COUNT_KEY, count)

    async def prepare_when_available(self) -> None:
        """:meth:`prepare`, attempted until PostgreSQL and Redis both answer. The startup
        probe's budget, not this loop, decides when a pod that cannot start is restarted."""
        said = ""
        while True:
            try:
                await self.prepare()
            except UNAVAILABLE as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != said:  # once per cause, not once per attempt
                    logger.warning("startup work waits for PostgreSQL and Redis: %s", error)
                    said = error
                await anyio.sleep(STARTUP_RETRY)
            else:
                return

    async def create(self, order: NewOrder) -> Order:
        row = await self.require_pool().fetchrow(
            f"INSERT INTO orders_example (item, quantity) VALUES ($1, $2) RETURNING {COLUMNS}",
            order.item,
            order.quantity,
        )
        if row is None:  # INSERT ... RETURNING always returns the row
            raise RuntimeError("INSERT returned no row")
        return _order(row)

    async def get(self, order_id: int) -> Order | None:
        row = await self.require_pool().fetchrow(
            f"SELECT {COLUMNS} FROM orders_example WHERE id = $1", order_id
        )
        return None if row is None else _order(row)

    async def latest(self, limit: int = LATEST_LIMIT) -> list[Order]:
        rows = await self.require_pool().fetch(
            f"SELECT {COLUMNS} FROM orders_example ORDER BY created_at DESC, id DESC LIMIT $1",
            limit,
        )
        return [_order(row) for row in rows]


def create_lifecycle(store: Store) -> Lifecycle:
    """gracekit's view of the service: what startup, readiness and the reports depend on."""
    # The probes, the metrics and the preStop hook get a port of their own, which no Service
    # exposes: nobody outside the cluster can read the reports or shut a pod down. It runs on
    # the app's event loop, so liveness there still says whether the app's loop keeps up.
    lifecycle = Lifecycle(management=Management(port=MANAGEMENT_PORT, details="always"))
    # Readiness follows the database: without it no route can answer.
    lifecycle.add_check(postgres_check(lambda: store.pool, interval=2.0, timeout=1.0))
    # The cache is shared by every pod: losing it must not take them all out of rotation.
    lifecycle.add_check(redis_check(store.redis, probes="informational", interval=2.0, timeout=1.0))
    cache_warm = lifecycle.gate("cache-warm")

    async def warm_cache() -> None:
        await store.prepare_when_available()
        cache_warm.open()

    # No timeout: while a dependency is down the task keeps trying and the pod stays unready.
    lifecycle.startup_task(warm_cache)
    # Closing the pool is a shutdown hook, so the grace period counts its bound (gracekit
    # does not bound the app's own lifespan, which closes it only if the hook did not run).
    lifecycle.on_shutdown(store.close_pool, name="close-pool", timeout=POOL_CLOSE_TIMEOUT + 1)
    return lifecycle


def create_app(settings: Settings) -> FastAPI:
    """The orders service for *settings*. Nothing connects until the app's lifespan starts."""
    store = Store(settings)
    lifecycle = create_lifecycle(store)
    app = FastAPI(title="orders example", lifespan=lifecycle.lifespan(store.lifespan))
    # A registry per app instance (tests build several); Prometheus scrapes /metrics on the
    # management port, where the metrics put it.
    Metrics(lifecycle, registry=CollectorRegistry())

    @app.post("/orders", status_code=201)
    async def create_order(order: NewOrder) -> Order:
        return await store.create(order)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: Annotated[int, Path(ge=1, le=MAX_INT4)]) -> Order:
        order = await store.get(order_id)
        if order is None:
            raise HTTPException(status_code=404, detail=f"no order {order_id}")
        return order

    @app.get("/orders")
    async def latest_orders() -> list[Order]:
        return await store.latest()

    # Added last, so it is the outermost middleware and sees every request from start to end.
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle, deadline=REQUEST_DEADLINE)
    return app


app = create_app(Settings.from_env())
