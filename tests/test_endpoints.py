"""The probe endpoints, in process: statuses, headers, methods, verbose reports, details."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from gracekit import Check, Lifecycle, Phase, ProbeApp
from tests.support.asgi import client, eventually

pytestmark = pytest.mark.anyio

FAST = {"interval": 0.05, "timeout": 0.05, "jitter": 0.0}
SECRET = "postgresql://app:hunter2-secret@db.internal:5432/orders"


class Dependency:
    def __init__(self) -> None:
        self.error: BaseException | None = None

    async def __call__(self) -> dict[str, object]:
        if self.error is not None:
            raise self.error
        return {"server": "db.internal"}


def build(**probe_options: Any) -> tuple[Starlette, Lifecycle, Dependency, Dependency]:
    lifecycle = Lifecycle()
    db, cache = Dependency(), Dependency()
    lifecycle.add_check(Check("db", db, **FAST))  # type: ignore[arg-type]
    lifecycle.add_check(Check("cache", cache, probes="informational", **FAST))  # type: ignore[arg-type]
    lifecycle.gate("warm", open=True)
    app = Starlette(
        routes=[Mount("/health", app=ProbeApp(lifecycle, **probe_options))],
        lifespan=lifecycle.lifespan(),
    )
    return app, lifecycle, db, cache


@pytest.fixture
async def probed() -> AsyncIterator[tuple[httpx.AsyncClient, Lifecycle, Dependency, Dependency]]:
    app, lifecycle, db, cache = build()
    async with client(app) as http:
        await eventually(lambda: lifecycle.readiness().status == "pass")
        yield http, lifecycle, db, cache


async def test_plain_answers(probed: Any) -> None:
    http, lifecycle, db, _ = probed
    for path in ("/health/startup", "/health/live", "/health/ready", "/health/ready/db"):
        response = await http.get(path)
        assert response.status_code == 200, path
        assert response.text == "pass\n"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
    db.error = ConnectionRefusedError(SECRET)
    await eventually(lambda: not lifecycle.readiness().ok)
    response = await http.get("/health/ready")
    assert (response.status_code, response.text) == (503, "fail\n")
    assert (await http.get("/health/ready/db")).status_code == 503
    assert (await http.get("/health/live")).status_code == 200


async def test_informational_failure_answers_degraded_200(probed: Any) -> None:
    http, lifecycle, _, cache = probed
    cache.error = TimeoutError()
    await eventually(lambda: lifecycle.readiness().status == "degraded")
    response = await http.get("/health/ready")
    assert (response.status_code, response.text) == (200, "degraded\n")
    assert (await http.get("/health/ready/cache")).status_code == 503


async def test_head_has_headers_and_no_body(probed: Any) -> None:
    http, *_ = probed
    response = await http.head("/health/ready")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "5"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_not_allowed(probed: Any, method: str) -> None:
    http, lifecycle, *_ = probed
    response = await http.request(method, "/health/ready")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert lifecycle.phase is Phase.STARTED


@pytest.mark.parametrize(
    "path", ["/health/", "/health/readyz", "/health/ready/", "/health/ready/nope", "/health/x/y"]
)
async def test_unknown_paths_are_404(probed: Any, path: str) -> None:
    http, *_ = probed
    assert (await http.get(path)).status_code == 404


async def test_verbose_readiness_report(probed: Any) -> None:
    http, lifecycle, _db, cache = probed
    cache.error = OSError("redis down")
    await eventually(lambda: lifecycle.readiness().status == "degraded")
    body = (await http.get("/health/ready?verbose")).json()
    assert body["probe"] == "readiness"
    assert body["status"] == "degraded"
    assert body["phase"] == "started"
    assert body["reasons"] == ["check cache: fail (informational)"]
    assert body["gates"] == {"warm": "open"}
    assert set(body["checks"]) == {"db", "cache"}
    db_report = body["checks"]["db"]
    assert db_report["status"] == "pass"
    assert db_report["probes"] == ["readiness"]
    assert db_report["consecutive_failures"] == 0
    assert db_report["consecutive_successes"] >= 1
    assert db_report["duration_ms"] >= 0
    assert db_report["last_success"].endswith("Z")
    assert body["checks"]["cache"]["status"] == "fail"
    assert body["checks"]["cache"]["probes"] == ["informational"]
    assert "error" not in body["checks"]["cache"], "details are hidden by default"
    assert "detail" not in db_report


async def test_verbose_failing_readiness_says_why(probed: Any) -> None:
    http, lifecycle, db, _ = probed
    db.error = ConnectionRefusedError(SECRET)
    await eventually(lambda: not lifecycle.readiness().ok)
    response = await http.get("/health/ready?verbose=1")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["reasons"] == ["check db: fail"]
    assert body["checks"]["db"]["consecutive_failures"] >= 1
    assert "hunter2" not in response.text
    assert "db.internal" not in response.text


async def test_verbose_false_values_give_plain_answers(probed: Any) -> None:
    http, *_ = probed
    for query in ("verbose=0", "verbose=false", "verbose=no"):
        assert (await http.get(f"/health/ready?{query}")).text == "pass\n"


async def test_exclude_ignores_checks_for_one_request(probed: Any) -> None:
    http, lifecycle, db, _ = probed
    db.error = ConnectionRefusedError("down")
    await eventually(lambda: not lifecycle.readiness().ok)
    assert (await http.get("/health/ready?exclude=db")).status_code == 200
    assert (await http.get("/health/ready?exclude=cache&exclude=db")).status_code == 200
    assert (await http.get("/health/ready?exclude=nope&exclude=")).status_code == 503
    body = (await http.get("/health/ready?verbose&exclude=db")).json()
    assert "db" not in body["checks"]


async def test_one_check_or_gate(probed: Any) -> None:
    http, lifecycle, *_ = probed
    body = (await http.get("/health/ready/db?verbose")).json()
    assert body["name"] == "db"
    assert body["status"] == "pass"
    assert (await http.get("/health/ready/warm")).status_code == 200
    lifecycle.gates["warm"].close()
    response = await http.get("/health/ready/warm?verbose")
    assert response.status_code == 503
    assert response.json() == {"name": "warm", "status": "fail", "gate": "closed"}


async def test_startup_and_liveness_reports(probed: Any) -> None:
    http, *_ = probed
    startup = (await http.get("/health/startup?verbose")).json()
    assert startup["probe"] == "startup"
    assert startup["status"] == "pass"
    assert startup["checks"] == {}, "only startup-gating checks are listed"
    assert startup["tasks"] == {}
    live = (await http.get("/health/live?verbose")).json()
    assert live["probe"] == "liveness"
    assert live["status"] == "pass"
    assert 0 <= live["loop_lag_ms"] < live["loop_lag_threshold_ms"]
    assert "checks" not in live, "liveness never reports dependencies"


@pytest.mark.parametrize(
    ("options", "headers", "shown"),
    [
        ({}, {}, False),
        ({"details": "never"}, {"authorization": "Bearer s3cret"}, False),
        ({"details": "always"}, {}, True),
        ({"details": "token", "token": "s3cret"}, {}, False),
        ({"details": "token", "token": "s3cret"}, {"authorization": "Bearer wrong"}, False),
        ({"details": "token", "token": "s3cret"}, {"authorization": "Bearer s3cre"}, False),
        ({"details": "token", "token": "s3cret"}, {"authorization": "Bearer s3cret2"}, False),
        ({"details": "token", "token": "s3cret"}, {"authorization": "Basic s3cret"}, False),
        ({"details": "token", "token": "s3cret"}, {"authorization": "Bearer s3cret"}, True),
        ({"details": "token", "token": "s3cret"}, {"authorization": "bearer s3cret"}, True),
    ],
)
async def test_details_policy(
    options: dict[str, Any], headers: dict[str, str], shown: bool
) -> None:
    app, lifecycle, db, _ = build(**options)
    async with client(app) as http:
        await eventually(lambda: lifecycle.readiness().ok)
        db.error = ConnectionRefusedError(SECRET)
        await eventually(lambda: not lifecycle.readiness().ok)
        for path in ("/health/ready?verbose", "/health/ready/db?verbose"):
            response = await http.get(path, headers=headers)
            assert response.status_code == 503
            assert ("hunter2-secret" in response.text) is shown, path
            if shown:
                error = response.json().get("error") or response.json()["checks"]["db"]["error"]
                assert error == f"ConnectionRefusedError: {SECRET}"


async def test_probe_answers_at_once_while_a_dependency_hangs() -> None:
    lifecycle = Lifecycle()

    @lifecycle.check(timeout=0.5, interval=0.5, jitter=0.0)
    async def db() -> None:
        await anyio.sleep_forever()

    app = Starlette(
        routes=[Mount("/health", app=ProbeApp(lifecycle))], lifespan=lifecycle.lifespan()
    )
    async with client(app) as http:
        await eventually(lambda: lifecycle.checks["db"].runs >= 1, timeout=3)
        slowest = 0.0
        for _ in range(50):
            started = time.perf_counter()
            response = await http.get("/health/ready")
            slowest = max(slowest, time.perf_counter() - started)
            assert response.status_code == 503
        assert slowest < 0.1, f"a probe took {slowest:.3f} s while the dependency hung"
        assert lifecycle.checks["db"].error == "TimeoutError: no answer within 0.5 s"


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


async def test_check_with_unprintable_error_and_detail_is_reported() -> None:
    lifecycle = Lifecycle()
    raise_it = True

    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    @lifecycle.check(**FAST)
    async def odd() -> dict[str, object]:
        if raise_it:
            raise Unprintable
        return {"weird": Weird(), "nan": float("nan")}

    app = Starlette(
        routes=[Mount("/health", app=ProbeApp(lifecycle, details="always"))],
        lifespan=lifecycle.lifespan(),
    )
    async with client(app) as http:
        await eventually(lambda: lifecycle.checks["odd"].runs >= 2)
        body = (await http.get("/health/ready/odd?verbose")).json()
        assert body["error"] == "Unprintable: <unprintable message>"
        raise_it = False
        await eventually(lambda: lifecycle.readiness().ok)
        body = (await http.get("/health/ready/odd?verbose")).json()
        assert body["detail"] == {"weird": "<unprintable Weird>", "nan": "nan"}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
async def test_any_query_string_is_answered_safely(probed: Any, query: bytes) -> None:
    http, *_ = probed
    app = http._transport.app  # the ASGI app, called directly to send raw bytes
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/health/ready", "raw_path": b"/health/ready",
        "root_path": "", "query_string": query, "headers": [], "server": ("app", 80),
        "client": ("test", 1), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    assert sent[0]["status"] in (200, 503)


def test_constructor_validation() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(ValueError, match="details must be one of"):
        ProbeApp(lifecycle, details="sometimes")
    with pytest.raises(ValueError, match="needs a non-empty token"):
        ProbeApp(lifecycle, details="token")
    with pytest.raises(ValueError, match="only used with details='token'"):
        ProbeApp(lifecycle, token="abc")
    with pytest.raises(TypeError, match="token must be a str"):
        ProbeApp(lifecycle, details="token", token=b"abc")  # type: ignore[arg-type]


async def test_served_standalone_it_answers_lifespan_and_refuses_websockets() -> None:
    lifecycle = Lifecycle()
    probe = ProbeApp(lifecycle)
    async with client(probe) as http:
        response = await http.get("/ready")
        assert response.status_code == 503, "the lifecycle is not running"
        assert (await http.get("/live")).status_code == 200
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await probe({"type": "websocket", "path": "/ready"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_probe_app_says_whether_it_serves_a_protected_prestop() -> None:
    lifecycle = Lifecycle()
    plain_app = ProbeApp(lifecycle)
    protected = ProbeApp(lifecycle, prestop=True, prestop_token="s3cret")
    assert (plain_app.serves_prestop, plain_app.prestop_protected) == (False, False)
    assert (protected.serves_prestop, protected.prestop_protected) == (True, True)
    with pytest.raises(ValueError, match="needs a token on the application's port"):
        ProbeApp(lifecycle, prestop=True)
