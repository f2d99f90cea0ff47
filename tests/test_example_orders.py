"""The orders example (examples/orders) as a real process against the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from tests.support.server import EXAMPLES, Server, free_port, run_uvicorn, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

APP_DIR = EXAMPLES / "orders"
TOKEN = "orders-example-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COUNT_KEY = "orders_example:count"  # the key the example's startup task fills
START_TIMEOUT = 40.0  # uvicorn plus FastAPI on a busy 2-core machine
ITEM_PREFIX = "test-example-orders-"


def orders_env(postgres_dsn: str, redis_url: str) -> dict[str, str]:
    return {
        "ORDERS_DATABASE_URL": postgres_dsn,
        "ORDERS_REDIS_URL": redis_url,
        "ORDERS_PROBE_TOKEN": TOKEN,
    }


def probe(server: Server, path: str, *, auth: bool = True) -> tuple[int, dict[str, Any]]:
    response = httpx.get(server.url + path, headers=AUTH if auth else None, timeout=5)
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
def orders(postgres_dsn: str, redis_url: str) -> Iterator[Server]:
    """The example, started with both services up, and ready."""
    with redis.Redis.from_url(redis_url) as client:
        client.delete(COUNT_KEY)  # so that finding it later proves this server's startup
    with run_uvicorn(
        "app:app",
        app_dir=APP_DIR,
        env=orders_env(postgres_dsn, redis_url),
        ready_path="/health/ready",
        start_timeout=START_TIMEOUT,
    ) as server:
        yield server


@pytest.fixture
def item(postgres_dsn: str) -> Iterator[str]:
    """An item name no other test run uses; its orders are deleted afterwards."""
    name = f"{ITEM_PREFIX}{uuid.uuid4().hex}"
    yield name
    delete_orders(postgres_dsn, name)


def test_orders_round_trip(orders: Server, item: str) -> None:
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


def test_orders_rejects_bad_input_and_unknown_ids(orders: Server, item: str) -> None:
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


def test_metrics_count_requests_by_route_template(orders: Server, item: str) -> None:
    def count(text: str, route: str, status: str) -> float:
        wanted = (f'route="{route}"', f'status="{status}"', 'method="GET"')
        for line in text.splitlines():
            if line.startswith("http_requests_total{") and all(w in line for w in wanted):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    with httpx.Client(base_url=orders.url, timeout=5) as http:
        before = http.get("/metrics").text
        created = http.post("/orders", json={"item": item, "quantity": 1}).json()
        for _ in range(3):
            assert http.get(f"/orders/{created['id']}").status_code == 200
        assert http.get(f"/orders/{2**31 - 2}").status_code == 404
        after = http.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    route = "/orders/{order_id}"
    assert count(after.text, route, "200") - count(before, route, "200") == 3
    assert count(after.text, route, "404") - count(before, route, "404") == 1
    assert f"/orders/{created['id']}" not in after.text, "the template, never the raw path"


def test_probes_report_startup_checks_and_gate(orders: Server, redis_url: str) -> None:
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

    assert httpx.get(orders.url + "/health/live", timeout=5).status_code == 200
    with redis.Redis.from_url(redis_url) as client:
        cached = client.get(COUNT_KEY)
    assert cached is not None, "the startup task did not fill the cache"
    assert cached.isdigit(), cached


def test_without_redis_startup_fails_and_says_why(postgres_dsn: str) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # a port nothing listens on
    env = orders_env(postgres_dsn, closed)
    with run_uvicorn(
        "app:app",
        app_dir=APP_DIR,
        env=env,
        ready_path="/health/live",
        ready_statuses=(200, 503),  # it may already be broken when first asked
        start_timeout=START_TIMEOUT,
    ) as server:

        def startup_failed() -> bool:
            _, report = probe(server, "/health/startup?verbose")
            return bool(report["tasks"]["warm_cache"]["status"] == "fail")

        assert wait_until(startup_failed, timeout=20), server.log()
        status, startup = probe(server, "/health/startup?verbose")
        assert status == 503
        assert "startup task warm_cache: fail" in startup["reasons"]
        assert startup["tasks"]["warm_cache"]["error"].startswith("ConnectionError: ")
        # Without the token the report still says what failed, but not the error text.
        _, anonymous = probe(server, "/health/startup?verbose", auth=False)
        assert anonymous["tasks"]["warm_cache"]["status"] == "fail"
        assert "error" not in anonymous["tasks"]["warm_cache"]

        def checks_ran() -> bool:
            _, report = probe(server, "/health/ready?verbose")
            checks = report["checks"]
            return bool(
                checks["postgres"]["status"] == "pass" and checks["redis"]["status"] == "fail"
            )

        assert wait_until(checks_ran, timeout=20), server.log()
        status, ready = probe(server, "/health/ready?verbose")
        assert status == 503
        assert ready["phase"] == "starting"
        # What holds readiness back: startup never finished, so the gate stayed closed.
        assert "phase starting" in ready["reasons"]
        assert "gate cache-warm: closed" in ready["reasons"]
        assert not [reason for reason in ready["reasons"] if "postgres" in reason]
        assert ready["checks"]["redis"]["probes"] == ["informational"]
        assert ready["checks"]["redis"]["error"].startswith("ConnectionError: ")
        assert ready["gates"] == {"cache-warm": "closed"}
        # Nothing retries a startup task: the process marks itself broken, so liveness asks for
        # a restart too (where no startup probe is configured, liveness is what restarts it).
        status, live = probe(server, "/health/live?verbose")
        assert status == 503
        assert live["broken"] == "startup task warm_cache failed"
        assert "broken" in ready["reasons"]
        assert httpx.get(server.url + "/health/startup", timeout=5).text == "fail\n"


def test_sigterm_shuts_down_cleanly(postgres_dsn: str, redis_url: str) -> None:
    env = orders_env(postgres_dsn, redis_url)
    with run_uvicorn(
        "app:app", app_dir=APP_DIR, env=env, ready_path="/health/ready", start_timeout=START_TIMEOUT
    ) as server:
        server.process.send_signal(signal.SIGTERM)
        returncode = server.process.wait(timeout=20)
        log = server.log()
        # uvicorn re-raises the signal it handled once shutdown is over (0.29 and later).
        assert returncode in (0, -signal.SIGTERM), log
        assert "Application shutdown complete." in log, log
        # A pool or client that failed to close would show up here.
        assert "Traceback" not in log, log
        assert "shutdown failed" not in log, log


def test_prestop_endpoint_drains_and_the_pool_closes_in_a_hook(
    postgres_dsn: str, redis_url: str
) -> None:
    token = "orders-prestop-test-token"
    env = {**orders_env(postgres_dsn, redis_url), "ORDERS_PRESTOP_TOKEN": token}
    with run_uvicorn(
        "app:app",
        app_dir=APP_DIR,
        env=env,
        ready_path="/health/ready",
        start_timeout=START_TIMEOUT,
        launcher="gracekit",  # as the Dockerfile runs it; it also prints gracekit's log lines
    ) as server:
        refused = httpx.post(server.url + "/health/prestop", timeout=5)
        assert refused.status_code == 401
        assert httpx.get(server.url + "/health/ready", timeout=5).status_code == 200
        # The hook returns once the shutdown delay (5 s) is over; readiness fails meanwhile.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            response = http.get("/health/prestop", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.text == "draining\n"
        returncode = server.process.wait(timeout=30)
        log = server.log()
        assert returncode == 0, log  # gracekit run: a clean shutdown
        assert "shutdown started by preStop" in log, log
        assert "shutdown hook close-pool done" in log, log
        assert "Traceback" not in log, log
