"""Requests cut short. A sync endpoint cut by its deadline keeps its slot in anyio's thread
limiter until its thread returns: no budget header can push the worker threads past the
limiter's total, and the client still gets its 504 on time. A stream cut by a caller's budget is
logged as such, once per route and interval, and uvicorn does not log it as an error."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gracekit.drain import _answers as answers
from tests.apps.cuts import build
from tests.support.asgi import Answer, call, eventually, lifespan
from tests.support.server import TEST_APPS, Server, run_uvicorn, wait_until

pytestmark = pytest.mark.anyio

TINY_BUDGET = [(b"x-gracekit-budget-ms", b"5")]


# -- what the design relies on ---------------------------------------------------------------


async def test_a_sync_endpoints_task_borrows_from_the_default_thread_limiter() -> None:
    """gracekit tells a request that waits for a worker thread by its task being a borrower of
    anyio's default thread limiter: Starlette's run_in_threadpool (FastAPI's too) acquires it
    for the task, which holds it until the thread returns. This fails if that changes."""
    seen: list[bool] = []
    release = threading.Event()

    def blocking(request: Request) -> PlainTextResponse:
        release.wait(5)
        return PlainTextResponse("done")

    fastapi = FastAPI()
    fastapi.get("/blocking")(lambda: release.wait(5))
    limiter = anyio.to_thread.current_default_thread_limiter()
    for app in (Starlette(routes=[Route("/blocking", blocking)]), fastapi):
        release.clear()
        request = asyncio.ensure_future(call(app, "/blocking"))
        await eventually(lambda: limiter.statistics().borrowed_tokens == 1)
        (borrower,) = limiter.statistics().borrowers
        seen.append(isinstance(borrower, asyncio.Task) and not borrower.done())
        release.set()
        assert (await request).status == 200
        assert borrower.done(), "the borrower was the request's own task"
    assert seen == [True, True]


# -- in process ----------------------------------------------------------------------------


@pytest.fixture
async def small_limiter() -> Any:
    limiter = anyio.to_thread.current_default_thread_limiter()
    total = limiter.total_tokens
    yield limiter
    limiter.total_tokens = total


async def test_requests_cut_in_their_thread_keep_its_slot(small_limiter: Any) -> None:
    app, lifecycle, threads = build(limit=2)
    answers: list[tuple[Answer, float]] = []

    async def one() -> None:
        started = time.monotonic()
        answer = await call(app, "/work?s=0.6", headers=[(b"x-gracekit-budget-ms", b"100")])
        assert answer.sent_at is not None
        answers.append((answer, answer.sent_at - started))

    async with lifespan(app), anyio.create_task_group() as tg:
        # Staggered: each arrives while the threads of the earlier ones still run.
        for _ in range(8):
            tg.start_soon(one)
            await anyio.sleep(0.05)
    assert [a.status for a, _ in answers] == [504] * 8
    assert max(took for _, took in answers) < 0.5, "each 504 went out at its deadline"
    assert threads.most == 2, "never more threads than the limiter's slots"
    assert threads.background_runs == 0, "a request answered 504 runs no background task"
    assert lifecycle.inflight.expired == 8


async def test_a_held_request_stays_in_flight_until_its_thread_returns(
    small_limiter: Any,
) -> None:
    app, lifecycle, threads = build(limit=2)
    async with lifespan(app):
        budget = [(b"x-gracekit-budget-ms", b"100")]  # cut once the thread runs
        request = asyncio.ensure_future(call(app, "/work?s=0.5", headers=budget))
        await eventually(lambda: lifecycle.inflight.expired == 1)
        assert len(lifecycle.inflight) == 1, "the drain waits for it, as for its thread"
        assert threads.running == 1
        answer = await request
        assert (answer.status, threads.running, len(lifecycle.inflight)) == (504, 0, 0)


async def test_a_cut_stream_is_logged_as_the_callers_budget_once_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answers, "LOG_INTERVAL", 0.5)
    caplog.set_level(logging.WARNING, logger="gracekit")
    app, lifecycle, _ = build()
    budget = [(b"x-gracekit-budget-ms", b"120")]
    async with lifespan(app):
        for _ in range(4):
            answer = await call(app, "/stream", headers=budget)
            assert (answer.status, answer.complete) == (200, False)
        await anyio.sleep(0.5)  # the interval itself is what is tested
        await call(app, "/stream", headers=budget)
    said = "GET /stream: the 0.12 s budget its caller sent ran out after the response started"
    assert [r.getMessage() for r in caplog.records if "cut off" in r.getMessage()] == [
        f"{said}; the response was cut off",
        f"{said}; the response was cut off (3 more since the last such line)",
    ]
    assert lifecycle.inflight.expired_responses == 5


# -- a real process --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_uvicorn("cuts:app", app_dir=TEST_APPS, ready_path="/ping") as running:
        yield running


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
async def test_budget_headers_cannot_multiply_threads_in_a_real_process(server: Server) -> None:
    pid = server.process.pid
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await http.get("/threads")  # the limiter is set and the loop's threads exist
        baseline = thread_count(pid)
        most = baseline
        sampling = True

        def sample() -> None:
            nonlocal most
            while sampling:
                most = max(most, thread_count(pid))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        statuses: dict[int, int] = {}

        async def caller() -> None:
            for _ in range(10):
                answer = await http.get("/work?s=0.4", headers=dict(TINY_BUDGET))
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(caller)
        finally:
            sampling = False
            sampler.join()
        counts = (await http.get("/threads")).json()
    assert statuses == {504: 400}
    assert counts["limit"] == 4
    assert most <= baseline + counts["limit"] + 2, (most, baseline)


def test_streams_cut_by_a_callers_budget_log_one_line_and_no_error(server: Server) -> None:
    # The sync stream needs a thread slot: the other tests' threads have returned.
    assert wait_until(lambda: httpx.get(server.url + "/threads").json()["running"] == 0, timeout=5)
    before = len(server.log())
    for path in ["/stream"] * 8 + ["/stream?sync=true"] * 2:
        with httpx.stream(
            "GET", server.url + path, headers={"x-gracekit-budget-ms": "300"}, timeout=10
        ) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                response.read()
    said = "GET /stream: the 0.3 s budget its caller sent ran out after the response started"
    assert wait_until(lambda: said in server.log()[before:], timeout=5)
    assert wait_until(lambda: server.log()[before:].count('"GET /stream') == 10, timeout=5)
    log = server.log()[before:]
    assert log.count("cut off") == 1, log
    assert "ERROR" not in log, log
    assert "deadline" not in log, "the caller's budget, not the route's deadline"
