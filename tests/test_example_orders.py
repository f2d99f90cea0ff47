"""The orders example (examples/orders) as a real process against the real PostgreSQL and Redis:
the orders routes on the app's port; the probes, the metrics and the preStop hook on the
management port."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from tests.support.faults import MARGIN, proxy_to, through
from tests.support.server import EXAMPLES, Server, free_port, run_uvicorn, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

APP_DIR = EXAMPLES / "orders"
COUNT_KEY = "orders_example:count"  # the key the example's startup task fills
START_TIMEOUT = 40.0  # uvicorn plus FastAPI on a busy 2-core machine
ITEM_PREFIX = "test-example-orders-"
#: The checks' interval (2 s, 10 % jitter) and timeout (1 s) in app.py, with a margin.
CHECK_WAIT = 2.0 * 1.1 + 1.0 + MARGIN


@dataclass
class Orders:
    """The example running: its server (the app's port) and its management port."""

    server: Server
    management_port: int

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def management(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"


@contextmanager
def run_orders(
    postgres_dsn: str,
    redis_url: str,
    *,
    ready_path: str = "/health/ready",
    ready_statuses: Collection[int] = (200,),
    launcher: str = "uvicorn",
    flag: bool = False,
) -> Iterator[Orders]:
    """The example on free ports; the management port through GRACEKIT_MANAGEMENT_PORT, or
    with *flag* through ``gracekit run --management-port``."""
    port = free_port()
    env = {"ORDERS_DATABASE_URL": postgres_dsn, "ORDERS_REDIS_URL": redis_url}
    args: Sequence[str] = ("--management-port", str(port)) if flag else ()
    if not flag:
        env["GRACEKIT_MANAGEMENT_PORT"] = str(port)
    with run_uvicorn(
        "app:app",
        app_dir=APP_DIR,
        env=env,
        args=args,
        ready_path=ready_path,
        ready_statuses=ready_statuses,
        ready_port=port,
        start_timeout=START_TIMEOUT,
        launcher=launcher,
    ) as server:
        yield Orders(server, port)


def probe(orders: Orders, path: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(orders.management + path, timeout=5)
    return response.status_code, response.json()


def delete_orders(dsn: str, item: str) -> None:
    async def delete() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DELETE FROM orders_example WHERE item = $1", item)
        finally:
            await conn.close()

    asyncio.run(delete())


@pytest.fixture(scope="module")
def orders(postgres_dsn: str, redis_url: str) -> Iterator[Orders]:
    """The example, started with both services up, and ready."""
    with redis.Redis.from_url(redis_url) as client:
        client.delete(COUNT_KEY)  # so that finding it later proves this server's startup
    with run_orders(postgres_dsn, redis_url) as running:
        yield running


@pytest.fixture
def item(postgres_dsn: str) -> Iterator[str]:
    """An item name no other test run uses; its orders are deleted afterwards."""
    name = f"{ITEM_PREFIX}{uuid.uuid4().hex}"
    yield name
    delete_orders(postgres_dsn, name)


def test_orders_round_trip(orders: Orders, item: str) -> None:
    with httpx.Client(base_url=orders.url, timeout=5) as http:
        response = http.post("/orders", json={"item": item, "quantity": 3})
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["item"] == item
        assert created["quantity"] == 3
        assert isinstance(created["id"], int)
        assert created["created_at"]

        response = http.get(f"/orders/{created['id']}")
        assert response.status_code == 200, response.text
        assert response.json() == created

        second = http.post("/orders", json={"item": item, "quantity": 1}).json()
        listed = http.get("/orders")
        assert listed.status_code == 200, listed.text
        latest = listed.json()
        assert len(latest) <= 50
        ours = [order for order in latest if order["item"] == item]
        assert ours == [second, created]  # newest first


def test_orders_rejects_bad_input_and_unknown_ids(orders: Orders, item: str) -> None:
    with httpx.Client(base_url=orders.url, timeout=5) as http:
        for body in (
            {"item": item, "quantity": 0},
            {"item": item, "quantity": -2},
            {"item": item, "quantity": "many"},
            {"item": item, "quantity": 2**31},
            {"item": "", "quantity": 1},
            {"quantity": 1},
        ):
            response = http.post("/orders", json=body)
            assert response.status_code == 422, (body, response.text)
        assert http.get(f"/orders/{2**31 - 1}").status_code == 404
        assert http.get("/orders/0").status_code == 422
        assert http.get(f"/orders/{2**31}").status_code == 422
        assert not [o for o in http.get("/orders").json() if o["item"] == item]


def test_metrics_count_requests_by_route_template(orders: Orders, item: str) -> None:
    def count(text: str, route: str, status: str) -> float:
        wanted = (f'route="{route}"', f'status="{status}"', 'method="GET"')
        for line in text.splitlines():
            if line.startswith("http_requests_total{") and all(w in line for w in wanted):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    scrape = orders.management + "/metrics"
    with httpx.Client(base_url=orders.url, timeout=5) as http:
        assert http.get("/metrics").status_code == 404, "not on the app's port"
        before = http.get(scrape).text
        created = http.post("/orders", json={"item": item, "quantity": 1}).json()
        for _ in range(3):
            assert http.get(f"/orders/{created['id']}").status_code == 200
        assert http.get(f"/orders/{2**31 - 2}").status_code == 404
        after = http.get(scrape)
    assert after.headers["content-type"].startswith("text/plain")
    route = "/orders/{order_id}"
    assert count(after.text, route, "200") - count(before, route, "200") == 3
    assert count(after.text, route, "404") - count(before, route, "404") == 1
    assert f"/orders/{created['id']}" not in after.text, "the template, never the raw path"


def test_probes_report_startup_checks_and_gate(orders: Orders, redis_url: str) -> None:
    status, startup = probe(orders, "/health/startup?verbose")
    assert status == 200, startup
    assert startup["status"] == "pass"
    assert startup["tasks"]["warm_cache"]["status"] == "pass"
    assert "error" not in startup["tasks"]["warm_cache"]

    status, ready = probe(orders, "/health/ready?verbose")
    assert status == 200, ready
    assert ready["status"] == "pass"
    assert ready["checks"]["postgres"]["status"] == "pass"
    assert ready["checks"]["postgres"]["probes"] == ["readiness"]
    assert ready["checks"]["redis"]["status"] == "pass"
    assert ready["checks"]["redis"]["probes"] == ["informational"]
    assert ready["gates"] == {"cache-warm": "open"}

    assert httpx.get(orders.management + "/health/live", timeout=5).status_code == 200
    for path in ("/health/live", "/health/ready", "/health/prestop"):
        assert httpx.get(orders.url + path, timeout=5).status_code == 404, "not on the app's port"
    with redis.Redis.from_url(redis_url) as client:
        cached = client.get(COUNT_KEY)
    assert cached is not None, "the startup task did not fill the cache"
    assert cached.isdigit(), cached


def test_it_starts_with_postgres_and_redis_down_and_turns_ready_when_they_are_back(
    postgres_dsn: str, redis_url: str
) -> None:
    with proxy_to(postgres_dsn) as postgres, proxy_to(redis_url) as cache:
        postgres.refuse()
        cache.refuse()
        with run_orders(
            through(postgres_dsn, postgres), through(redis_url, cache), ready_path="/health/live"
        ) as orders:

            def report(probe_path: str) -> dict[str, Any]:
                return probe(orders, f"/health/{probe_path}?verbose")[1]

            def check(name: str) -> str:
                return str(report("ready")["checks"][name]["status"])

            # Up, not ready, and saying why; alive: a restart would not bring them back.
            assert wait_until(lambda: check("postgres") == check("redis") == "fail", timeout=10)
            status, ready = probe(orders, "/health/ready?verbose")
            assert status == 503, ready
            assert "broken" not in ready["reasons"], ready
            assert {"phase starting", "check postgres: fail", "gate cache-warm: closed"} <= set(
                ready["reasons"]
            ), ready
            status, startup = probe(orders, "/health/startup?verbose")
            assert (status, startup["tasks"]["warm_cache"]["status"]) == (503, "pending")
            assert probe(orders, "/health/live?verbose")[0] == 200

            # PostgreSQL back: its check passes, but the warm-up needs Redis as well.
            postgres.pass_through()
            assert wait_until(lambda: check("postgres") == "pass", timeout=CHECK_WAIT)
            status, ready = probe(orders, "/health/ready?verbose")
            assert status == 503, ready
            assert ready["reasons"] == [
                "phase starting",
                "gate cache-warm: closed",
                "check redis: fail (informational)",
            ], ready

            # Redis back: ready within one check interval.
            started = time.monotonic()
            cache.pass_through()
            assert wait_until(
                lambda: probe(orders, "/health/ready?verbose")[0] == 200, timeout=CHECK_WAIT
            ), orders.server.log()
            assert time.monotonic() - started <= CHECK_WAIT
            assert report("startup")["tasks"]["warm_cache"]["status"] == "pass"
            assert report("ready")["gates"] == {"cache-warm": "open"}
            log = orders.server.log()
            assert "startup work waits for PostgreSQL and Redis: " in log, log
            assert "Traceback" not in log, log


def test_sigterm_shuts_down_cleanly(postgres_dsn: str, redis_url: str) -> None:
    with run_orders(postgres_dsn, redis_url) as orders:
        server = orders.server
        server.process.send_signal(signal.SIGTERM)
        returncode = server.process.wait(timeout=20)
        log = server.log()
        # gracekit took the signal over, so uvicorn does not re-raise it: a clean exit.
        assert returncode == 0, log
        assert "Application shutdown complete." in log, log
        # A pool or client that failed to close would show up here.
        assert "Traceback" not in log, log
        assert "shutdown failed" not in log, log


def test_the_prestop_hook_on_the_management_port_drains_and_the_pool_closes_in_a_hook(
    postgres_dsn: str, redis_url: str, item: str
) -> None:
    with run_orders(
        postgres_dsn,
        redis_url,
        launcher="gracekit",  # as the Dockerfile runs it; it also prints gracekit's log lines
        flag=True,  # gracekit run --management-port
    ) as orders:
        server = orders.server
        assert httpx.get(orders.url + "/health/prestop", timeout=5).status_code == 404
        assert httpx.get(orders.management + "/health/ready", timeout=5).status_code == 200
        # No token: no Service exposes the port. The hook returns once the shutdown delay
        # (5 s) is over; meanwhile readiness fails and the app's port keeps serving.
        with ThreadPoolExecutor(1) as pool:
            hook = pool.submit(httpx.get, orders.management + "/health/prestop", timeout=30)
            assert wait_until(
                lambda: httpx.get(orders.management + "/health/ready").status_code == 503,
                timeout=5,
            ), server.log()
            served = httpx.post(orders.url + "/orders", json={"item": item, "quantity": 1})
            assert served.status_code == 201, served.text
            assert served.headers["connection"] == "close"
            response = hook.result(timeout=30)
        assert response.status_code == 200, response.text
        assert response.text == "draining\n"
        returncode = server.process.wait(timeout=30)
        log = server.log()
        assert returncode == 0, log  # gracekit run: a clean shutdown
        assert "shutdown started by preStop" in log, log
        assert "shutdown hook close-pool done" in log, log
        assert "Traceback" not in log, log
