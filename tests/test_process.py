"""Real uvicorn processes: the example app, and an app whose dependencies fail for real."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import POSTGRES_DSN, REDIS_URL
from tests.support.faultproxy import FaultProxy
from tests.support.server import TEST_APPS, run_uvicorn, wait_until


def test_minimal_example_serves_probes_and_routes() -> None:
    env = {"GRACEKIT_SHUTDOWN_DELAY": "0.5"}
    with run_uvicorn("minimal:app", env=env, ready_path="/health/ready") as server:
        base = server.url
        assert httpx.get(base + "/").text == "hello"
        assert httpx.get(base + "/slow?ms=20").text == "slept 20 ms"
        assert httpx.get(base + "/slow?ms=x").status_code == 400
        assert httpx.get(base + "/slow?ms=-1").status_code == 400
        for probe in ("startup", "live", "ready"):
            response = httpx.get(f"{base}/health/{probe}")
            assert response.status_code == 200
            assert response.headers["cache-control"] == "no-store"
        report = httpx.get(base + "/health/ready?verbose").json()
        assert report["gates"] == {"warm": "open"}
        assert report["checks"]["event_loop"]["status"] == "pass"
        startup = httpx.get(base + "/health/startup?verbose").json()
        assert startup["tasks"]["warm_up"]["status"] == "pass"
        assert httpx.post(base + "/health/ready").status_code == 405

        server.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: httpx.get(base + "/health/ready").status_code == 503, timeout=2)
        response = httpx.get(base + "/")
        assert response.text == "hello", "still serving during the shutdown delay"
        assert response.headers["connection"] == "close"
        assert server.process.wait(timeout=10) == 0
        assert "Application shutdown complete" in server.log()


def test_minimal_example_is_not_ready_until_warm() -> None:
    with run_uvicorn(
        "minimal:app", env={"WARMUP_SECONDS": "1.5"}, ready_path="/health/live"
    ) as server:
        early = httpx.get(server.url + "/health/ready?verbose")
        startup = httpx.get(server.url + "/health/startup")
        if early.status_code == 503:  # the machine may have been slow enough to miss the window
            assert startup.status_code == 503
            assert "gate warm: closed" in early.json()["reasons"]
        assert wait_until(
            lambda: httpx.get(server.url + "/health/ready").status_code == 200, timeout=10
        )
        assert httpx.get(server.url + "/health/startup").status_code == 200


@pytest.fixture
def proxies(postgres_dsn: str, redis_url: str) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    pg, rd = urlsplit(POSTGRES_DSN), urlsplit(REDIS_URL)
    with (
        FaultProxy(pg.hostname or "127.0.0.1", pg.port or 5432) as pg_proxy,
        FaultProxy(rd.hostname or "127.0.0.1", rd.port or 6379) as redis_proxy,
    ):
        yield pg_proxy, redis_proxy


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("dependency", ["postgres", "redis"])
def test_hanging_dependency_in_a_real_server(
    proxies: tuple[FaultProxy, FaultProxy], dependency: str
) -> None:
    pg_proxy, redis_proxy = proxies
    env = {
        "TEST_POSTGRES_DSN": f"postgresql://postgres@{pg_proxy.host}:{pg_proxy.port}/test"
        "?sslmode=disable",
        "TEST_REDIS_URL": f"redis://{redis_proxy.host}:{redis_proxy.port}/0",
    }
    proxy = pg_proxy if dependency == "postgres" else redis_proxy
    server = run_uvicorn("dependent:app", app_dir=TEST_APPS, env=env, ready_path="/health/ready")
    with server as s, httpx.Client(base_url=s.url, timeout=2) as http:
        started = time.monotonic()
        proxy.hang()
        assert wait_until(lambda: http.get("/health/ready").status_code == 503, timeout=5)
        assert time.monotonic() - started <= 0.4 * 1.1 + 0.25 + 1.5
        slowest = 0.0
        for _ in range(50):
            before = time.perf_counter()
            assert http.get("/health/ready").status_code == 503
            assert http.get("/health/live").status_code == 200
            slowest = max(slowest, time.perf_counter() - before)
        assert slowest < 0.2, f"probes took {slowest:.3f} s over HTTP while {dependency} hung"
        report = http.get("/health/ready?verbose").json()
        assert report["reasons"] == [f"check {dependency}: fail"]
        assert report["checks"][dependency]["error"].startswith("TimeoutError")
        assert http.get("/").text == "hello", "the app keeps serving"
        proxy.pass_through()
        assert wait_until(lambda: http.get("/health/ready").status_code == 200, timeout=5)
