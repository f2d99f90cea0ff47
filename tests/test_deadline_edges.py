"""Deadlines at their edges: event loops that come and go, work after the response, work spawned
from a request, nested middleware, mounts, threads, swallowed cancellations, forced shutdowns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gracekit import DrainMiddleware, Lifecycle, ShutdownTiming, deadline
from gracekit.deadlines import current, remaining, timeout
from gracekit.drain.middleware import RequestDone
from gracekit.events import LifecycleEvent
from gracekit.metrics import Metrics
from tests.support.asgi import Answer, call, eventually, lifespan

pytestmark = pytest.mark.anyio


class Observed:
    """A request observer that keeps what it is told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def request_done(self, done: RequestDone) -> None:
        self.requests.append(
            {
                "route": done.route,
                "status": done.status,
                "seconds": done.seconds,
                "after_shutdown": done.after_shutdown,
                "cut": done.cut,
            }
        )


async def sleep_route(request: Request) -> PlainTextResponse:
    await anyio.sleep(float(request.query_params.get("s", "1")))
    return PlainTextResponse("slept")


def app_with(*routes: Any, lifecycle: Lifecycle | None = None, **options: Any) -> Starlette:
    lifecycle = lifecycle or Lifecycle(shutdown=ShutdownTiming(delay=0, drain_timeout=0.5))
    app = Starlette(routes=list(routes), lifespan=lifecycle.lifespan())
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle, **options)
    app.state.lifecycle = lifecycle
    return app


def timed_call(app: Any, path: str, **kwargs: Any) -> tuple[Answer, float]:
    async def run() -> tuple[Answer, float]:
        started = time.monotonic()
        answer = await call(app, path, **kwargs)
        return answer, time.monotonic() - started

    return asyncio.run(run())


def test_deadlines_hold_on_every_new_event_loop() -> None:
    # One event loop per request, as Starlette's TestClient (without `with`) gives: a sweep
    # left armed on a finished loop must not switch the deadlines off on the next ones.
    app = app_with(Route("/", sleep_route), Route("/slow", deadline(0.3)(sleep_route)), deadline=30)
    assert timed_call(app, "/?s=0")[0].status == 200  # leaves a sweep armed at +30 s
    for _ in range(2):
        answer, elapsed = timed_call(app, "/slow?s=1.5")
        assert answer.status == 504
        assert elapsed < 1.2


def test_a_lifecycle_run_again_keeps_its_deadlines() -> None:
    app = app_with(Route("/", sleep_route), Route("/slow", deadline(0.3)(sleep_route)), deadline=30)

    async def one_run(path: str) -> Answer:
        async with lifespan(app):
            return await call(app, path)

    assert asyncio.run(one_run("/?s=0")).status == 200
    started = time.monotonic()
    assert asyncio.run(one_run("/slow?s=1.5")).status == 504
    assert time.monotonic() - started < 1.2


async def test_background_tasks_after_the_response_are_not_bound_by_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gracekit")
    done: list[str] = []

    async def send_email() -> None:
        await anyio.sleep(0.4)
        done.append("email sent")
        # Past the request's deadline, and not bound by it: no budget to pass on.
        assert (current(), remaining(), timeout(5.0)) == (None, None, 5.0)

    @deadline(0.2)
    async def signup(request: Request) -> PlainTextResponse:
        return PlainTextResponse("welcome", background=BackgroundTask(send_email))

    app = app_with(Route("/signup", signup))
    observed = Observed()
    app.state.lifecycle.request_observer = observed
    async with lifespan(app):
        answer = await call(app, "/signup")
    assert (answer.status, answer.body, answer.complete) == (200, b"welcome", True)
    assert done == ["email sent"], "the background task ran to its end"
    assert app.state.lifecycle.inflight.expired_responses == 0
    assert not [r for r in caplog.records if "cut off" in r.getMessage()]
    (request,) = observed.requests
    assert request["cut"] is None
    assert request["seconds"] < 0.2, "the latency ends with the response"


async def test_the_drain_waits_for_background_tasks_and_bounds_them() -> None:
    finished: list[str] = []

    async def slow_task() -> None:
        await anyio.sleep(5)
        finished.append("never")

    async def quick(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", background=BackgroundTask(slow_task))

    app = app_with(Route("/", quick))
    lifecycle = app.state.lifecycle
    async with lifespan(app), anyio.create_task_group() as tg:
        tg.start_soon(call, app, "/")
        await eventually(lambda: any(d.completed for d in lifecycle.inflight.requests.values()))
        lifecycle.shutdown()
    assert finished == []
    assert lifecycle.shutdown_report.drain_timed_out, "cut at the drain deadline"


async def test_work_spawned_from_a_request_has_no_request_deadline() -> None:
    seen: dict[str, Any] = {}
    lifecycle = Lifecycle()
    request_over = anyio.Event()

    async def background() -> None:
        seen["spawned"] = (current(), remaining(), timeout(30))

    async def later() -> None:
        await request_over.wait()
        seen["task"] = (current(), remaining())

    @deadline(0.2)
    async def report(request: Request) -> PlainTextResponse:
        lifecycle.spawn(background)
        seen["keep"] = asyncio.ensure_future(later())
        return PlainTextResponse("queued", status_code=202)

    app = app_with(Route("/report", report), lifecycle=lifecycle)
    async with lifespan(app):
        assert (await call(app, "/report")).status == 202
        request_over.set()
        await seen["keep"]
    assert seen["spawned"] == (None, None, 30)
    assert seen["task"] == (None, None)


async def test_a_second_drain_middleware_on_the_same_lifecycle_passes_through() -> None:
    lifecycle = Lifecycle()
    observed = Observed()
    lifecycle.request_observer = observed

    async def inner(request: Request) -> PlainTextResponse:
        return PlainTextResponse("inner")

    sub = DrainMiddleware(Starlette(routes=[Route("/x", inner)]), lifecycle=lifecycle)
    app = app_with(Mount("/sub", app=sub), lifecycle=lifecycle)
    async with lifespan(app):
        answer = await call(app, "/sub/x")
    assert answer.body == b"inner"
    assert not lifecycle.inflight.requests
    assert len(observed.requests) == 1, "counted once"


class ReadsTheBudget:
    """A sub-app's own middleware that looks at the budget before its router runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        remaining()
        await anyio.sleep(0.01)
        await self.app(scope, receive, send)


async def test_a_route_below_a_mount_keeps_its_own_deadline() -> None:
    sub = Starlette(
        routes=[Route("/x", deadline(2.0)(sleep_route))], middleware=[Middleware(ReadsTheBudget)]
    )
    app = app_with(Mount("/v1", app=sub), deadline=0.3)
    registry = CollectorRegistry()
    Metrics(app.state.lifecycle, registry=registry)
    async with lifespan(app):
        answer = await call(app, "/v1/x?s=0.6")
        missing = await call(app, "/v1/nothing")
    assert answer.status == 200, "the leaf's 2 s, not the default's 0.3 s"
    assert missing.status == 404
    scrape = generate_latest(registry).decode()
    assert 'route="unmatched",status="404"' in scrape
    assert "/v1/{path}" not in scrape


async def test_mark_broken_from_a_worker_thread() -> None:
    lifecycle = Lifecycle()
    heard: list[str] = []

    @lifecycle.on_event
    async def listener(event: LifecycleEvent) -> None:
        heard.append(event.kind)

    def give_up(request: Request) -> PlainTextResponse:  # a sync endpoint: a worker thread
        lifecycle.mark_broken("out of file descriptors")
        return PlainTextResponse("gave up")

    app = app_with(Route("/give-up", give_up), lifecycle=lifecycle)
    async with lifespan(app):
        answer = await call(app, "/give-up")
        await eventually(lambda: "broken" in heard)
    assert answer.status == 200
    assert not lifecycle.liveness().ok


async def test_a_swallowed_cancellation_is_balanced_and_escalated_by_the_drain() -> None:
    tasks: list[asyncio.Task[Any]] = []
    swallowed: list[asyncio.Task[Any]] = []
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0, drain_timeout=0.4))

    @deadline(0.1)
    async def stubborn(request: Request) -> PlainTextResponse:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        with contextlib.suppress(asyncio.CancelledError):  # wrong, but it happens
            await anyio.sleep(1)
        swallowed.append(task)
        if request.query_params.get("linger"):
            await anyio.sleep(30)
        return PlainTextResponse("finished anyway")

    app = app_with(Route("/stubborn", stubborn), lifecycle=lifecycle)
    async with lifespan(app):
        answer = await call(app, "/stubborn")
        assert answer.status == 200
        assert tasks[0].cancelling() == 0, "gracekit took its cancellation back"
        async with anyio.create_task_group() as tg:
            answers: list[Answer] = []

            async def linger() -> None:
                answers.append(await call(app, "/stubborn?linger=1"))

            tg.start_soon(linger)
            # Past its deadline, cut, and the cut swallowed:
            await eventually(lambda: len(swallowed) == 2)
            lifecycle.shutdown()
    assert [a.status for a in answers] == [503], "the drain deadline cut it all the same"


async def test_a_stream_that_turns_the_cancellation_into_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gracekit")

    @deadline(0.2)
    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> Any:
            try:
                for i in range(20):
                    yield f"{i}\n".encode()
                    await anyio.sleep(0.05)
            except asyncio.CancelledError:
                raise ConnectionError("upstream went away") from None

        return StreamingResponse(chunks())

    app = app_with(Route("/stream", stream))
    async with lifespan(app):
        answer = await call(app, "/stream")
    assert answer.status == 200
    assert not answer.complete
    assert app.state.lifecycle.inflight.expired_responses == 1
    assert any("after the response started" in r.getMessage() for r in caplog.records)


async def test_a_forced_shutdown_is_counted_as_forced() -> None:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=5, drain_timeout=5))
    registry = CollectorRegistry()
    Metrics(lifecycle, registry=registry)
    app = app_with(Route("/slow", sleep_route), lifecycle=lifecycle)
    async with lifespan(app), anyio.create_task_group() as tg:
        answers: list[Answer] = []

        async def slow() -> None:
            answers.append(await call(app, "/slow?s=30"))

        tg.start_soon(slow)
        await eventually(lambda: len(lifecycle.inflight) == 1)
        lifecycle.handle_signal(signal.SIGINT)
        lifecycle.handle_signal(signal.SIGINT)
    assert [a.status for a in answers] == [503]
    scrape = generate_latest(registry).decode()
    assert 'gracekit_requests_cut_total{reason="forced"} 1.0' in scrape
    assert 'gracekit_requests_cut_total{reason="drain"}' not in scrape


async def test_a_route_added_after_startup_keeps_its_decorator() -> None:
    app = app_with(Route("/", sleep_route), deadline=0.3)
    async with lifespan(app):
        app.router.routes.append(Route("/late", deadline(2.0)(sleep_route)))
        answer = await call(app, "/late?s=0.6")
    assert answer.status == 200


class SlowManagement:
    """One of gracekit's own endpoints (as the preStop hook is), slower than the drain."""

    gracekit_management = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(0.8)
        await PlainTextResponse("mine")(scope, receive, send)


async def test_the_drain_does_not_cut_gracekits_own_endpoints() -> None:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0, drain_timeout=0.2))
    app = app_with(Mount("/own", app=SlowManagement()), lifecycle=lifecycle)
    async with lifespan(app), anyio.create_task_group() as tg:
        answers: list[Answer] = []

        async def own() -> None:
            answers.append(await call(app, "/own/x"))

        tg.start_soon(own)
        await eventually(lambda: len(lifecycle.inflight.requests) == 1)
        assert len(lifecycle.inflight) == 0, "gracekit's own: not the app's request in flight"
        lifecycle.shutdown()
    assert [a.status for a in answers] == [200]
    assert lifecycle.shutdown_report.cut_requests == 0


class LateRouting:
    """An outer middleware that holds the request back before it reaches the router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await anyio.sleep(0.3)
        await self.app(scope, receive, send)


async def test_a_request_routed_late_still_gets_its_routes_short_deadline() -> None:
    lifecycle = Lifecycle()
    app = Starlette(
        routes=[Route("/quick", deadline(0.1)(sleep_route)), Route("/", sleep_route)],
        lifespan=lifecycle.lifespan(),
        middleware=[  # outermost first: the drain middleware sees the request before routing
            Middleware(DrainMiddleware, lifecycle=lifecycle, deadline=10),
            Middleware(LateRouting),
        ],
    )
    async with lifespan(app):
        started = time.monotonic()
        answer = await call(app, "/quick?s=2")
        elapsed = time.monotonic() - started
    assert answer.status == 504
    assert 0.3 <= elapsed < 1.0, "cut once routed, with the route's 0.1 s long gone"
