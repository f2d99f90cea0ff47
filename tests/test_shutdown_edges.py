"""The shutdown's edge cases: a SIGTERM or a preStop call while the application's own startup
runs, a shutdown hook that ignores its cancellation, and Ctrl-C pressed again and again."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from gracekit import Lifecycle, ShutdownTiming
from gracekit.drain import _hooks as hooks
from gracekit.drain._hooks import HookAbandoned, run_hook
from gracekit.events import LifecycleEvent
from gracekit.server._signals import BLOCKED_LOOP
from tests.support.asgi import eventually, lifespan
from tests.support.server import TEST_APPS, Server, free_port, run_uvicorn, wait_until

SLACK = 2.0  # seconds of slack on every "exits by" bound, for a noisy shared machine


# -- one hook, in process --------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_hook_within_its_bound_runs_to_its_end() -> None:
    done: list[str] = []

    async def close() -> None:
        await anyio.sleep(0.05)
        done.append("closed")

    await run_hook(close, bound=1, hurry=anyio.Event())
    assert done == ["closed"]

    async def fails() -> None:
        raise OSError("the broker went away")

    with pytest.raises(OSError, match="the broker went away"):
        await run_hook(fails, bound=1, hurry=anyio.Event())


@pytest.mark.anyio
async def test_a_hook_past_its_bound_is_cancelled() -> None:
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await anyio.sleep(10)
        finally:
            cleaned.append("finally")

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"ran past its 0\.1 s timeout and was cancelled"):
        await run_hook(slow, bound=0.1, hurry=anyio.Event())
    assert time.monotonic() - started < 1
    assert cleaned == ["finally"]


@pytest.mark.anyio
async def test_a_hook_that_ignores_its_cancellation_is_abandoned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hooks, "ABANDON_GRACE", 0.2)
    swallowed = 0
    closed = False

    async def stubborn() -> None:
        nonlocal swallowed, closed
        try:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    swallowed += 1
        except GeneratorExit:
            closed = True
            raise

    before = asyncio.all_tasks()
    started = time.monotonic()
    with pytest.raises(HookAbandoned, match=r"ignored its cancellation at its 0\.1 s timeout"):
        await run_hook(stubborn, bound=0.1, hurry=anyio.Event())
    assert 0.3 <= time.monotonic() - started < 1.5
    assert swallowed >= 1
    assert closed, "its coroutine was closed: nothing is left running"
    assert asyncio.all_tasks() == before, "no task is left for the loop's close to wait for"


@pytest.mark.anyio
async def test_a_forced_shutdown_leaves_a_running_hook_one_second() -> None:
    hurry = anyio.Event()

    async def long() -> None:
        await anyio.sleep(30)

    async def force_soon() -> None:
        await anyio.sleep(0.1)
        hurry.set()

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(force_soon)
        with pytest.raises(TimeoutError):
            await run_hook(long, bound=30, hurry=hurry)
    elapsed = time.monotonic() - started
    assert 0.1 + hooks.FORCED_HOOK_TIMEOUT <= elapsed < 0.1 + hooks.FORCED_HOOK_TIMEOUT + 1


@pytest.mark.anyio
async def test_a_shutdown_before_readiness_ever_passed_has_no_delay() -> None:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=30, drain_timeout=1))
    warm = lifecycle.gate("warm")
    seen: list[LifecycleEvent] = []
    lifecycle.on_event(seen.append)
    app = Starlette(lifespan=lifecycle.lifespan())
    async with lifespan(app):  # gracekit's own startup: the gate holds readiness back
        lifecycle.shutdown()
        with anyio.fail_after(2):
            await lifecycle.termination.wait_drain_started()
    draining = [e for e in seen if e.kind == "draining"][-1]
    assert (draining.fields["delay_s"], draining.fields["ever_ready"]) == (0.0, False)

    async with lifespan(app):  # ready once, then not: the delay is needed again
        warm.open()
        await eventually(lambda: lifecycle.readiness().ok)
        warm.close()
        lifecycle.shutdown()
        draining = [e for e in seen if e.kind == "draining"][-1]
        assert (draining.fields["delay_s"], draining.fields["ever_ready"]) == (30, True)
        lifecycle.shutdown(source="test", delay=0)  # ignored: under way already
        lifecycle.termination.force("test")  # no need to wait out the 30 s here


# -- real processes ----------------------------------------------------------------------------


@contextmanager
def stubborn(launcher: str = "gracekit", **env: str) -> Iterator[tuple[Server, int]]:
    """The stubborn app, and its management port; ready once liveness answers there (the
    startup may still run)."""
    management = free_port()
    with run_uvicorn(
        "stubborn:app",
        app_dir=TEST_APPS,
        env={"GRACEKIT_MANAGEMENT_PORT": str(management), **env},
        ready_path="/health/live",
        ready_port=management,
        launcher=launcher,
    ) as server:
        yield server, management


def wait_exit(server: Server, timeout: float) -> int:
    try:
        return server.process.wait(timeout=timeout)
    except Exception as exc:
        raise AssertionError(f"no exit within {timeout} s:\n{server.log()}") from exc


def assert_clean(log: str) -> None:
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log


def test_sigterm_during_the_apps_startup_ends_it_at_once_and_cleanly() -> None:
    with stubborn(STARTUP_SECONDS="60") as (server, _):
        assert wait_until(lambda: "app startup began" in server.log(), timeout=10)
        server.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        status = wait_exit(server, SLACK + 1)
        took = time.monotonic() - sent
        log = server.log()
    assert status == 0, log
    assert took < SLACK, "no delay: the pod was never ready, so nothing routes to it"
    assert "app startup cancelled" in log
    assert "shutdown started by SIGTERM before the pod was ever ready" in log
    assert_clean(log)


def test_a_prestop_call_during_the_apps_startup_answers_and_ends_it() -> None:
    with stubborn("uvicorn", STARTUP_SECONDS="60") as (server, management):
        assert wait_until(lambda: "app startup began" in server.log(), timeout=10)
        started = time.monotonic()
        answer = httpx.get(f"http://127.0.0.1:{management}/health/prestop", timeout=10)
        assert (answer.status_code, answer.text) == (200, "draining\n")
        assert time.monotonic() - started < SLACK, "no delay to wait for"
        status = wait_exit(server, SLACK + 1)  # it stops without waiting for SIGTERM
        log = server.log()
    assert status == 0, log
    assert "app startup cancelled" in log
    assert_clean(log)


def test_a_hook_that_ignores_its_cancellation_is_abandoned_and_fails_the_exit() -> None:
    env = {"STUBBORN_HOOK": "1", "HOOK_TIMEOUT": "1", "GRACEKIT_SHUTDOWN_DELAY": "0.2"}
    with stubborn(**env) as (server, management):
        ready = f"http://127.0.0.1:{management}/health/ready"
        assert wait_until(lambda: httpx.get(ready).status_code == 200, timeout=10)
        server.process.send_signal(signal.SIGTERM)
        status = wait_exit(server, 0.2 + 1 + hooks.ABANDON_GRACE + SLACK)
        log = server.log()
    assert status == 4, log
    assert "stubborn hook swallowed a cancellation" in log
    assert (
        "shutdown hook stubborn failed: HookAbandoned: it ignored its cancellation at its 1 s "
        "timeout and was abandoned" in log
    )


def test_sigint_three_times_ends_a_stubborn_hook_promptly() -> None:
    with stubborn(STUBBORN_HOOK="1") as (server, _):  # the hook may take 30 s
        server.process.send_signal(signal.SIGINT)
        assert wait_until(lambda: "stubborn hook began" in server.log(), timeout=10)
        server.process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        status = wait_exit(server, hooks.FORCED_HOOK_TIMEOUT + hooks.ABANDON_GRACE + SLACK)
        took = time.monotonic() - sent
        log = server.log()
    assert took < hooks.FORCED_HOOK_TIMEOUT + hooks.ABANDON_GRACE + SLACK
    assert status == 4, log
    assert "shutdown forced by SIGINT" in log


def test_sigint_ends_a_hook_that_blocks_the_event_loop() -> None:
    with stubborn(BLOCKING_HOOK="1") as (server, _):
        server.process.send_signal(signal.SIGINT)
        assert wait_until(lambda: "blocking hook began" in server.log(), timeout=10)
        server.process.send_signal(signal.SIGINT)  # the loop cannot handle it: it is blocked
        time.sleep(BLOCKED_LOOP + 0.5)  # the test waits out the time that says "blocked"
        sent = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        status = wait_exit(server, SLACK + 1)
        took = time.monotonic() - sent
    assert took < SLACK, "Python's own Ctrl-C ended the process"
    assert status != 0, "it was not a clean exit, and does not say it was"
