"""Request deadlines in process: the drain middleware cancels handlers at their deadline and
answers 504, honours callers' budgets, exempts the probes, and yields to the drain deadline."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming, deadline
from gracekit.deadlines import BUDGET_HEADERS, current, remaining, timeout
from gracekit.drain.middleware import RequestDone
from tests.support.asgi import Answer, call, client, eventually, lifespan

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:  # pragma: no cover - anyio's dependency on 3.10
    from exceptiongroup import ExceptionGroup

pytestmark = pytest.mark.anyio


class Service:
    """A Starlette app with routes of every kind of deadline, and what its handlers saw."""

    def __init__(self, **middleware: Any) -> None:
        self.events: list[str] = []
        self.thread_done = threading.Event()
        self.lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0, drain_timeout=0.6))
        events = self.events

        @deadline(0.2)
        async def slow(request: Request) -> PlainTextResponse:
            try:
                await anyio.sleep(1)
            finally:
                events.append("slow finally")
            return PlainTextResponse("late")

        async def sleep(request: Request) -> PlainTextResponse:
            seconds = float(request.query_params.get("s", "0.5"))
            await anyio.sleep(seconds)
            return PlainTextResponse(f"slept {seconds}")

        async def budget(request: Request) -> JSONResponse:
            deadline_ = current()
            return JSONResponse(
                {
                    "remaining": remaining(),
                    "source": None if deadline_ is None else deadline_.source,
                    "route": None if deadline_ is None else deadline_.route.template,
                }
            )

        @deadline(0.2)
        def blocking(request: Request) -> PlainTextResponse:  # a sync endpoint: a thread
            time.sleep(0.8)
            self.thread_done.set()
            return PlainTextResponse("done")

        @deadline(0.3)
        async def stream(request: Request) -> StreamingResponse:
            async def chunks() -> Any:
                for i in range(20):
                    yield f"chunk {i}\n".encode()
                    await anyio.sleep(0.05)

            return StreamingResponse(chunks(), media_type="text/plain")

        @deadline(0.1)
        async def overrun(request: Request) -> PlainTextResponse:
            time.sleep(0.25)  # blocks the loop: the timer cannot fire before the error
            if request.query_params.get("helper"):
                timeout()  # spent: raises DeadlineExceeded
            raise RuntimeError("a downstream timeout")

        @deadline(None)  # a function of its own: @deadline marks the function it is given
        async def unbounded(request: Request) -> PlainTextResponse:
            await anyio.sleep(float(request.query_params.get("s", "0.5")))
            return PlainTextResponse("unbounded")

        @deadline(0.1)
        async def converts(request: Request) -> PlainTextResponse:
            try:
                await anyio.sleep(1)
            except asyncio.CancelledError:  # a library that wraps the cancellation
                raise RuntimeError("query interrupted") from None
            return PlainTextResponse("late")

        async def early_error(request: Request) -> PlainTextResponse:
            raise RuntimeError("a bug")

        async def watch(request: Request) -> JSONResponse:
            seen = []
            for _ in range(40):
                seen.append(remaining())
                await anyio.sleep(0.05)
            return JSONResponse(seen)

        self.app = Starlette(
            routes=[
                Route("/slow", slow),
                Route("/sleep", sleep),
                Route("/budget", budget),
                Route("/limited", budget),
                Route("/blocking", blocking),
                Route("/stream", stream),
                Route("/overrun", overrun),
                Route("/early-error", early_error),
                Route("/converts", converts),
                Route("/watch", watch),
                Route("/unbounded", unbounded),
                Mount("/health", app=ProbeApp(self.lifecycle, prestop=True, prestop_token="t")),
            ],
            lifespan=self.lifecycle.lifespan(),
        )
        self.app.add_middleware(DrainMiddleware, lifecycle=self.lifecycle, **middleware)


async def timed(app: Any, path: str, **kwargs: Any) -> tuple[Answer, float]:
    started = time.monotonic()
    answer = await call(app, path, **kwargs)
    return answer, time.monotonic() - started


async def test_a_deadline_cancels_the_handler_with_a_504_and_nothing_else() -> None:
    service = Service()
    async with lifespan(service.app):
        results: dict[str, tuple[Answer, float]] = {}

        async def run(path: str) -> None:
            results[path] = await timed(service.app, path)

        async with anyio.create_task_group() as tg:
            for path in ("/slow", "/sleep?s=0.5", "/unbounded?s=0.4"):
                tg.start_soon(run, path)

    answer, elapsed = results["/slow"]
    assert answer.status == 504
    assert answer.headers[b"content-type"] == b"application/problem+json"
    problem = answer.json()
    assert problem["title"] == "Gateway Timeout"
    assert problem["status"] == 504
    assert problem["route"] == "/slow"
    assert problem["budget_s"] == 0.2
    assert "GET /slow" in problem["detail"]
    assert "0.2 s" in problem["detail"]
    assert 0.2 <= elapsed < 0.8, "cut at its deadline, not after the handler's 1 s"
    assert service.events == ["slow finally"], "the handler was cancelled: its finally ran"
    assert results["/sleep?s=0.5"][0].body == b"slept 0.5", "a route without a deadline"
    assert results["/unbounded?s=0.4"][0].status == 200
    assert service.lifecycle.inflight.expired == 1


async def test_the_default_applies_where_no_route_sets_one() -> None:
    service = Service(deadline=0.3)
    async with lifespan(service.app):
        short, elapsed = await timed(service.app, "/sleep?s=2")
        exempt = await call(service.app, "/unbounded?s=0.5")
        own = await call(service.app, "/slow")
    assert short.status == 504
    assert 0.3 <= elapsed < 1.5
    assert short.json()["budget_s"] == 0.3
    assert exempt.status == 200, "@deadline(None) opts out of the default"
    assert own.json()["budget_s"] == 0.2, "the route's own deadline wins, even when shorter"


async def test_a_route_deadline_longer_than_the_default_holds() -> None:
    service = Service(deadline=0.2, route_deadlines={"/sleep": 2.0})
    async with lifespan(service.app):
        answer = await call(service.app, "/sleep?s=0.5")
    assert answer.status == 200


@pytest.mark.parametrize(
    ("header", "value", "budget"),
    [
        (b"x-envoy-expected-rq-timeout-ms", b"150", 0.15),
        (b"grpc-timeout", b"150m", 0.15),
        (b"x-gracekit-budget-ms", b"150", 0.15),
    ],
)
async def test_a_callers_budget_lowers_the_deadline(
    header: bytes, value: bytes, budget: float
) -> None:
    service = Service(route_deadlines={"/sleep": 5.0})
    async with lifespan(service.app):
        answer, elapsed = await timed(service.app, "/sleep?s=2", headers=[(header, value)])
    assert answer.status == 504
    assert answer.json()["budget_s"] == pytest.approx(budget)
    assert "budget its caller sent" in answer.json()["detail"]
    assert budget <= elapsed < 1.5


async def test_a_callers_budget_cannot_raise_the_deadline() -> None:
    service = Service(route_deadlines={"/limited": 1.0, "/sleep": 0.3})
    async with lifespan(service.app):
        seen = (
            await call(service.app, "/limited", headers=[(b"x-gracekit-budget-ms", b"60000")])
        ).json()
        cut, elapsed = await timed(
            service.app, "/sleep?s=2", headers=[(b"x-gracekit-budget-ms", b"60000")]
        )
    assert 0.5 < seen["remaining"] <= 1.0
    assert seen["source"] == "route"
    assert cut.status == 504
    assert cut.json()["budget_s"] == 0.3
    assert elapsed < 1.5


async def test_budget_headers_can_be_ignored() -> None:
    service = Service(budget_headers=False)
    async with lifespan(service.app):
        answer = await call(service.app, "/sleep?s=0.3", headers=[(b"grpc-timeout", b"10m")])
    assert answer.status == 200


async def test_remaining_is_read_through_the_context() -> None:
    service = Service(route_deadlines={"/limited": 2.0})
    async with lifespan(service.app):
        limited = (await call(service.app, "/limited")).json()
        free = (await call(service.app, "/budget")).json()
    assert limited["route"] == "/limited"
    assert 1.5 < limited["remaining"] <= 2.0
    assert free == {"remaining": None, "source": None, "route": "/budget"}
    assert remaining() is None, "outside a request there is no budget"


_BUDGET_VALUES = st.one_of(
    st.binary(max_size=30),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(-(10**20), 10**20).map(lambda n: str(n).encode()),
    st.sampled_from([b"", b" ", b"nan", b"inf", b"-0", b"1e3", b"0x10", b"1S", b"99999999H"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.lists(st.tuples(st.sampled_from(BUDGET_HEADERS), _BUDGET_VALUES), max_size=5))
def test_no_budget_header_can_cause_an_error(headers: list[tuple[bytes, bytes]]) -> None:
    async def one() -> Answer:
        service = Service(route_deadlines={"/limited": 5.0})
        return await call(service.app, "/limited", headers=headers)

    answer = asyncio.run(one())
    # A tiny budget may expire before the handler answers: that is the intended 504.
    assert answer.status in (200, 504), answer.body
    assert answer.complete
    if answer.status == 200:
        left = answer.json()["remaining"]
        assert left is not None
        assert 0 <= left <= 5.0, "a header never raises the route's deadline"


async def test_a_sync_endpoint_gets_its_504_on_time_while_its_thread_runs_on() -> None:
    service = Service()
    async with lifespan(service.app):
        started = time.monotonic()
        answer = await call(service.app, "/blocking")
        assert answer.status == 504
        assert answer.sent_at is not None
        assert answer.sent_at - started < 0.7, "the answer does not wait for the thread"
        # The request itself ends with its thread, which holds its slot until then.
        assert service.thread_done.is_set(), "the thread cannot be interrupted"
        assert answer.body.count(b"Gateway Timeout") == 1, "answered once"


async def test_a_started_stream_is_cut_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    service = Service()
    caplog.set_level(logging.WARNING, logger="gracekit")
    async with lifespan(service.app):
        answer = await call(service.app, "/stream")
    assert answer.status == 200
    assert 0 < len(answer.chunks) < 20
    assert not answer.complete, "the stream ends without its last chunk: the client sees it"
    assert service.lifecycle.inflight.expired_responses == 1
    assert any(
        "GET /stream" in r.getMessage() and "after the response started" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("query", ["", "?helper=1"])
async def test_an_error_once_the_budget_is_spent_is_the_deadlines_504(query: str) -> None:
    service = Service()
    async with lifespan(service.app):
        answer = await call(service.app, "/overrun" + query)
    assert answer.status == 504
    assert answer.json()["route"] == "/overrun"


async def test_a_cancellation_turned_into_an_error_still_gets_its_504() -> None:
    service = Service()
    async with lifespan(service.app):
        answer = await call(service.app, "/converts")
    assert answer.status == 504
    assert answer.json()["route"] == "/converts"


async def test_an_error_before_the_deadline_is_left_alone() -> None:
    service = Service(deadline=10)
    async with lifespan(service.app):
        with pytest.raises(RuntimeError, match="a bug"):
            await call(service.app, "/early-error")


async def test_probe_endpoints_are_exempt() -> None:
    # The preStop endpoint answers only once the delay is over: far beyond the deadline.
    service = Service(deadline=0.05)
    service.lifecycle.termination.use_timing(ShutdownTiming(delay=0.5, drain_timeout=0.5))
    async with lifespan(service.app):
        answer, elapsed = await timed(
            service.app,
            "/health/prestop",
            headers=[(b"x-gracekit-budget-ms", b"1"), (b"authorization", b"Bearer t")],
        )
    assert answer.status == 200
    assert answer.body == b"draining\n"
    assert elapsed >= 0.5


class Cuts:
    """A request observer that keeps why each request was cut."""

    def __init__(self) -> None:
        self.cuts: dict[str | None, str | None] = {}

    def request_done(self, done: RequestDone) -> None:
        self.cuts[done.route] = done.cut


async def test_the_drain_deadline_caps_every_deadline() -> None:
    service = Service(deadline=30)
    lifecycle = service.lifecycle
    cuts = lifecycle.request_observer = Cuts()
    async with lifespan(service.app):
        results: dict[str, Answer] = {}

        async def run(name: str, path: str) -> None:
            results[name] = await call(service.app, path)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "long", "/sleep?s=5")
            tg.start_soon(run, "watch", "/watch")
            tg.start_soon(run, "own", "/slow")  # 0.2 s: earlier than the drain's
            await eventually(lambda: len(lifecycle.inflight) == 3)
            lifecycle.shutdown()  # no delay in this service: the drain starts at once
    long, watch, own = results["long"], results["watch"], results["own"]
    assert long.status == 503
    assert long.headers[b"retry-after"] == b"1"
    assert own.status == 504, "a deadline before the drain's is still the request's own"
    assert watch.status == 503
    report = lifecycle.shutdown_report
    assert report.drain_timed_out
    assert report.cut_requests == 2
    assert report.exit_status == 3
    # Cut by their own timers at the capped deadline ("drain"), not by the sequence's last
    # sweep ("drain deadline"); the early one by its own deadline.
    assert cuts.cuts == {"/sleep": "drain", "/watch": "drain", "/slow": "deadline"}


async def test_handlers_see_the_drain_deadline_in_their_budget() -> None:
    service = Service(deadline=30)
    lifecycle = service.lifecycle
    seen: list[float | None] = []
    gate = anyio.Event()

    async def observe(request: Request) -> PlainTextResponse:
        seen.append(remaining())
        await gate.wait()
        seen.append(remaining())
        return PlainTextResponse("ok")

    service.app.router.routes.append(Route("/observe", observe))
    async with lifespan(service.app), anyio.create_task_group() as tg:
        tg.start_soon(call, service.app, "/observe")
        await eventually(lambda: len(seen) == 1)
        lifecycle.shutdown()
        await lifecycle.termination.wait_drain_started()
        gate.set()
    first, second = seen
    assert first is not None
    assert first > 29
    assert second is not None
    assert second <= 0.6, "after the drain starts the budget is the drain's"


async def test_many_requests_on_a_short_route_are_all_cut() -> None:
    service = Service()
    async with lifespan(service.app):
        answers: list[Answer] = []

        async def run() -> None:
            answers.append(await call(service.app, "/slow"))

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(run)
    assert [a.status for a in answers] == [504] * 200
    assert service.lifecycle.inflight.expired == 200
    assert service.events.count("slow finally") == 200
    assert not service.lifecycle.inflight.requests


async def test_an_unknown_route_fails_the_startup() -> None:
    service = Service(route_deadlines={"/nope": 1.0})
    with pytest.raises(ExceptionGroup) as failed:
        async with lifespan(service.app):
            pass
    assert failed.group_contains(
        RuntimeError, match=r"startup.failed.*gracekit: route_deadlines names '/nope'"
    )


async def test_the_failed_startup_is_sent_and_raised() -> None:
    # Sent, for servers (uvicorn exits, even under lifespan="auto"); raised too, as Starlette
    # does, for test clients that wait on the lifespan task.
    service = Service(route_deadlines={"/nope": 1.0})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(ValueError, match="route_deadlines names '/nope'"):
        await service.app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"deadline": -1}, ValueError),
        ({"deadline": "5"}, TypeError),
        ({"deadline": float("nan")}, ValueError),
        ({"route_deadlines": {"/slow": 0}}, ValueError),
        ({"route_deadlines": {"slow": 1}}, ValueError),
        ({"route_deadlines": [("/slow", 1)]}, TypeError),
    ],
)
def test_bad_settings_are_refused_at_construction(settings: dict[str, Any], error: type) -> None:
    with pytest.raises(error, match="deadline"):
        DrainMiddleware(Starlette(), lifecycle=Lifecycle(), **settings)


async def test_fastapi_path_operations_take_deadlines_both_ways() -> None:
    lifecycle = Lifecycle()
    app = FastAPI(lifespan=lifecycle.lifespan())

    @app.get("/below")
    @deadline(0.2)
    async def below() -> dict[str, str]:
        await anyio.sleep(1)
        return {}

    @deadline(0.2)
    @app.get("/above")
    async def above() -> dict[str, str]:
        await anyio.sleep(1)
        return {}

    @app.get("/mapped/{item_id}")
    async def mapped(item_id: int) -> dict[str, float | None]:
        await anyio.sleep(float(item_id) / 10)
        return {"remaining": remaining()}

    app.add_middleware(
        DrainMiddleware, lifecycle=lifecycle, route_deadlines={"/mapped/{item_id}": 0.5}
    )
    async with client(app) as http:
        for path in ("/below", "/above"):
            response = await http.get(path)
            assert response.status_code == 504, path
            assert response.json()["route"] == path
        cut = await http.get("/mapped/20")
        ok = await http.get("/mapped/1")
    assert cut.status_code == 504
    assert cut.json()["route"] == "/mapped/{item_id}", "the template, not the raw path"
    assert ok.status_code == 200
    assert 0 < ok.json()["remaining"] <= 0.5
