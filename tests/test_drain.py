"""The drain middleware and the termination sequence, in process."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, Phase, ProbeApp, ShutdownTiming
from tests.support.asgi import client, eventually

pytestmark = pytest.mark.anyio


class FakeServer:
    """Stands in for uvicorn in process: records when the sequence stops it."""

    def __init__(self) -> None:
        self.stopped_at: float | None = None
        self.forced = False

    def stop_accepting(self) -> None:
        self.stopped_at = time.monotonic()

    def force_exit(self) -> None:
        self.forced = True


class Service:
    def __init__(self, **timing: float) -> None:
        self.lifecycle = Lifecycle(shutdown=ShutdownTiming(**timing), handle_signals=False)
        self.server = FakeServer()
        self.events: list[str] = []
        self.finished: list[str] = []

        async def slow(request: Request) -> PlainTextResponse:
            ms = int(request.query_params["ms"])
            try:
                await anyio.sleep(ms / 1000)
            finally:
                self.finished.append(f"slow {ms}")
            return PlainTextResponse(f"slept {ms}")

        async def hello(request: Request) -> PlainTextResponse:
            return PlainTextResponse("hello")

        app = Starlette(
            routes=[
                Route("/", hello),
                Route("/slow", slow),
                Mount("/health", app=ProbeApp(self.lifecycle, prestop=True, prestop_token="tok")),
            ],
            lifespan=self.lifecycle.lifespan(),
        )
        app.add_middleware(DrainMiddleware, lifecycle=self.lifecycle)
        self.app = app


@pytest.fixture
def service() -> Service:
    return Service(delay=0.3, drain_timeout=0.6, hook_timeout=0.3)


async def started(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with client(service.app) as http:
        service.lifecycle.attach_server(service.server)
        await eventually(lambda: service.lifecycle.readiness().ok)
        yield http


async def test_counts_in_flight_and_closes_connections_only_once_shutting_down(
    service: Service,
) -> None:
    async for http in started(service):
        response = await http.get("/")
        assert "connection" not in response.headers
        results: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(_append, results, http.get("/slow?ms=200"))
            await eventually(lambda: len(service.lifecycle.inflight) == 3)
        assert len(service.lifecycle.inflight) == 0
        assert [r.status_code for r in results] == [200, 200, 200]
        assert service.lifecycle.shutdown() is True
        response = await http.get("/")
        assert response.status_code == 200, "the delay keeps serving"
        assert response.headers["connection"] == "close"
        assert (await http.get("/health/ready")).status_code == 503
        assert (await http.get("/health/live")).status_code == 200


async def _append(results: list[httpx.Response], request: Any) -> None:
    results.append(await request)


async def test_sequence_timing_and_clean_drain(service: Service) -> None:
    lifecycle = service.lifecycle
    async for http in started(service):
        results: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_append, results, http.get("/slow?ms=500"))
            await eventually(lambda: len(lifecycle.inflight) == 1)
            began = time.monotonic()
            lifecycle.shutdown()
            assert lifecycle.phase is Phase.DRAINING
            assert lifecycle.shutdown(source="again") is False
            await eventually(lambda: service.server.stopped_at is not None)
            assert service.server.stopped_at is not None
            assert 0.3 <= service.server.stopped_at - began < 0.3 + 0.5
        assert results[0].status_code == 200, "in-flight work finishes inside the drain timeout"
        assert results[0].text == "slept 500"
    report = lifecycle.shutdown_report
    assert report.source == "shutdown()"
    assert (report.drain_timed_out, report.cut_requests, report.exit_status) == (False, 0, 0)
    assert lifecycle.phase is Phase.STOPPED


async def test_drain_deadline_answers_503_and_reports_it(service: Service) -> None:
    lifecycle = service.lifecycle
    async for http in started(service):
        results: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_append, results, http.get("/slow?ms=5000"))
            await eventually(lambda: len(lifecycle.inflight) == 1)
            began = time.monotonic()
            lifecycle.shutdown()
        elapsed = time.monotonic() - began
        assert elapsed < 0.3 + 0.6 + 1.0, f"cut only after {elapsed:.2f} s"
        cut = results[0]
        assert cut.status_code == 503
        assert cut.headers["retry-after"] == "1"
        assert cut.headers["content-type"] == "application/problem+json"
        assert cut.json()["status"] == 503
        assert "slow 5000" in service.finished, "the handler was cancelled, its finally ran"
    report = lifecycle.shutdown_report
    assert report.drain_timed_out
    assert (report.cut_requests, report.broken_responses) == (1, 0)
    assert report.exit_status == 3


async def test_hooks_run_once_in_reverse_order_and_are_bounded() -> None:
    service = Service(delay=0, drain_timeout=0.5, hook_timeout=0.2)
    lifecycle = service.lifecycle
    ran: list[str] = []

    @lifecycle.on_shutdown
    async def close_pool() -> None:
        ran.append("close_pool")

    @lifecycle.on_shutdown(timeout=0.1)
    async def flush_hanging() -> None:
        ran.append("flush_hanging")
        await anyio.sleep_forever()

    @lifecycle.on_shutdown(name="close-redis")
    async def close_redis() -> None:
        ran.append("close-redis")
        raise ConnectionError("already gone")

    began = time.monotonic()
    async for _ in started(service):
        lifecycle.handle_signal(signal.SIGTERM)
        lifecycle.handle_signal(signal.SIGTERM)  # duplicates from a process-group kill
        began = time.monotonic()
    assert time.monotonic() - began < 0.5 + 0.1 + 1.0
    assert ran == ["close-redis", "flush_hanging", "close_pool"]
    report = lifecycle.shutdown_report
    assert report.source == "SIGTERM"
    assert report.failed_hooks == ["close-redis", "flush_hanging"]
    assert report.exit_status == 4
    with pytest.raises(ValueError, match="already registered"):
        lifecycle.on_shutdown(close_pool)


async def test_tracked_background_work_and_consumer_loops(service: Service) -> None:
    lifecycle = service.lifecycle
    done: list[str] = []
    taken: list[int] = []
    hooks_saw: list[list[str]] = []

    @lifecycle.on_shutdown
    async def check_order() -> None:
        hooks_saw.append(list(done))

    async def send_email() -> None:
        await anyio.sleep(0.4)
        done.append("email")

    async def export() -> None:
        try:
            await anyio.sleep(30)
        finally:
            done.append("export cancelled")

    async def consumer() -> None:
        n = 0
        while not lifecycle.draining:
            n += 1
            taken.append(n)
            with anyio.move_on_after(0.02):
                await lifecycle.wait_draining()
        done.append("consumer stopped")

    async for _ in started(service):
        lifecycle.spawn(send_email)
        lifecycle.spawn(export, name="export")
        lifecycle.spawn(consumer)
        await eventually(lambda: len(taken) >= 3)
        lifecycle.shutdown()
        count = len(taken)
        await eventually(lambda: "consumer stopped" in done)
        assert len(taken) <= count + 1, "the consumer stops taking work when draining starts"
    assert done.index("email") < len(done)
    assert hooks_saw == [done], "hooks run after the background work ended"
    assert "export cancelled" in done
    report = lifecycle.shutdown_report
    assert report.cancelled_tasks == 1
    assert report.exit_status == 3


async def test_sigint_during_the_delay_forces_a_fast_exit() -> None:
    service = Service(delay=5, drain_timeout=10, hook_timeout=5)
    lifecycle = service.lifecycle
    hook_ran = anyio.Event()

    @lifecycle.on_shutdown
    async def slow_hook() -> None:
        hook_ran.set()
        await anyio.sleep(3)

    async for http in started(service):
        results: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_append, results, http.get("/slow?ms=20000"))
            await eventually(lambda: len(lifecycle.inflight) == 1)
            began = time.monotonic()
            lifecycle.handle_signal(signal.SIGTERM)
            lifecycle.handle_signal(signal.SIGINT)
        assert results[0].status_code == 503
        assert time.monotonic() - began < 1.0
        began = time.monotonic()
    assert hook_ran.is_set()
    assert time.monotonic() - began < 1.0 + 1.0, "hooks are bounded tightly once forced"
    assert lifecycle.shutdown_report.forced
    assert service.server.stopped_at is not None
    assert not service.server.forced
    lifecycle.handle_signal(signal.SIGINT)  # after the run: nothing to do, nothing raised


async def test_a_second_sigint_forces_the_server_too() -> None:
    service = Service(delay=5, drain_timeout=5)
    lifecycle = service.lifecycle
    async for _ in started(service):
        lifecycle.handle_signal(signal.SIGINT)  # the first: shut down without the delay
        assert not lifecycle.shutdown_report.forced
        lifecycle.handle_signal(signal.SIGINT)
        assert lifecycle.shutdown_report.forced
        lifecycle.handle_signal(signal.SIGINT)
        assert service.server.forced


async def test_http2_responses_get_no_connection_header(service: Service) -> None:
    lifecycle = service.lifecycle
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    inner = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    app = DrainMiddleware(inner, lifecycle=lifecycle)
    lifecycle.inflight.closing = True
    for version in ("2", "1.1"):
        scope = {"type": "http", "http_version": version, "method": "GET", "path": "/",
                 "raw_path": b"/", "root_path": "", "query_string": b"", "headers": [],
                 "scheme": "http", "server": ("x", 80), "client": ("y", 1)}  # fmt: skip
        sent.clear()
        await app(scope, receive, send)
        headers = dict(sent[0]["headers"])
        assert (b"connection" in headers) is (version == "1.1")


def test_middleware_validates_retry_after() -> None:
    with pytest.raises(ValueError, match="retry_after"):
        DrainMiddleware(Starlette(), lifecycle=Lifecycle(), retry_after=-1)


def test_timing_validation_and_grace_period() -> None:
    timing = ShutdownTiming()
    assert (timing.delay, timing.drain_timeout, timing.hook_timeout) == (5.0, 20.0, 5.0)
    assert timing.grace_period() == 32
    assert timing.grace_period(prestop=5, hooks=12.5) == 45
    assert "delay=5" in repr(timing)
    with pytest.raises(ValueError, match="drain timeout must be > 0"):
        ShutdownTiming(drain_timeout=0)
    with pytest.raises(ValueError, match="shutdown delay must be >= 0"):
        ShutdownTiming(delay=-1)
    env = {"GRACEKIT_SHUTDOWN_DELAY": "2.5", "GRACEKIT_DRAIN_TIMEOUT": "30"}
    assert ShutdownTiming.from_env(env) == ShutdownTiming(delay=2.5, drain_timeout=30)
    auto = {"GRACEKIT_SHUTDOWN_DELAY": "auto"}
    assert ShutdownTiming.from_env(auto, base=ShutdownTiming(delay=7)).delay == 0
    in_cluster = {**auto, "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert ShutdownTiming.from_env(in_cluster, base=ShutdownTiming(delay=7)).delay == 7
    assert timing.shortfall(40) is None
    problem = timing.shortfall(30)
    assert problem is not None
    assert problem.startswith("the grace period of 30 s is shorter than the 32 s")
    with pytest.raises(ValueError, match="GRACEKIT_DRAIN_TIMEOUT must be a number"):
        ShutdownTiming.from_env({"GRACEKIT_DRAIN_TIMEOUT": "soon"})
    with pytest.raises(TypeError, match="must be a ShutdownTiming"):
        Lifecycle(shutdown=20)  # type: ignore[arg-type]


async def test_prestop_endpoint(service: Service) -> None:
    lifecycle = service.lifecycle
    async for http in started(service):
        assert (await http.get("/health/prestop")).status_code == 401
        none = await http.get("/health/prestop")
        assert none.headers["www-authenticate"].startswith("Bearer")
        wrong = await http.get("/health/prestop", headers={"authorization": "Bearer tokk"})
        assert wrong.status_code == 403, "a token was presented, and it is wrong"
        assert (await http.put("/health/prestop")).status_code == 405
        assert (await http.head("/health/prestop")).status_code == 405
        assert lifecycle.phase is Phase.STARTED, "refused calls change nothing"
        began = time.monotonic()
        response = await http.get("/health/prestop", headers={"authorization": "Bearer tok"})
        assert (response.status_code, response.text) == (200, "draining\n")
        assert time.monotonic() - began >= 0.3, "it answers once the delay is over"
        assert service.server.stopped_at is not None
        lifecycle.handle_signal(signal.SIGTERM)
        assert lifecycle.shutdown_report.source == "preStop"


def test_prestop_options_are_validated() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(ValueError, match="only used with prestop=True"):
        ProbeApp(lifecycle, prestop_token="x")
    with pytest.raises(ValueError, match="non-empty"):
        ProbeApp(lifecycle, prestop=True, prestop_token=" ")


async def test_prestop_is_not_served_unless_enabled() -> None:
    lifecycle = Lifecycle(handle_signals=False)
    app = Starlette(
        routes=[Mount("/health", app=ProbeApp(lifecycle))], lifespan=lifecycle.lifespan()
    )
    async with client(app) as http:
        assert (await http.get("/health/prestop")).status_code == 404
        assert not lifecycle.draining
