"""Running one check: every way a check can misbehave becomes a recorded failure."""

from __future__ import annotations

import itertools
import random
import time

import anyio
import anyio.lowlevel
import pytest

from gracekit import Check
from gracekit.probes import CheckState, CheckStatus
from gracekit.probes._runner import describe_error, jittered, run_check, run_once

pytestmark = pytest.mark.anyio


def state_of(func: object, **options: object) -> CheckState:
    return CheckState(Check("dep", func, **options))  # type: ignore[arg-type]


async def test_success_with_details_is_cleaned() -> None:
    async def check() -> dict[object, object]:
        return {"version": "15", 3: object(), **{f"k{i}": i for i in range(30)}}

    state = state_of(check)
    await run_once(state)
    assert state.status(time.monotonic()) is CheckStatus.PASS
    assert state.detail is not None
    assert state.detail["version"] == "15"
    assert isinstance(state.detail["3"], str)
    assert state.detail["3"].startswith("<object")
    assert len(state.detail) == 16
    assert state.last_success_wall is not None
    assert state.error is None


async def test_raising_check_fails_with_type_and_message() -> None:
    async def check() -> None:
        raise ConnectionRefusedError("connect to db:5432 refused")

    state = state_of(check)
    await run_once(state)
    assert state.status(time.monotonic()) is CheckStatus.FAIL
    assert state.error == "ConnectionRefusedError: connect to db:5432 refused"
    assert state.consecutive_failures == 1


async def test_hanging_check_fails_after_its_timeout() -> None:
    finished = False

    async def check() -> None:
        nonlocal finished
        try:
            await anyio.sleep_forever()
        finally:
            finished = True

    state = state_of(check, timeout=0.1, interval=1)
    started = time.monotonic()
    await run_once(state)
    elapsed = time.monotonic() - started
    assert state.error == "TimeoutError: no answer within 0.1 s"
    assert finished, "the hanging check must be cancelled, not abandoned"
    assert 0.1 <= elapsed < 1.0


async def test_housekeeping_is_bounded_apart_from_the_measured_round_trip() -> None:
    async def measures_its_round_trip(housekeeping: float, round_trip: float) -> None:
        await anyio.sleep(housekeeping)  # taking a connection: not the dependency's answer
        with anyio.fail_after(0.1):
            await anyio.sleep(round_trip)

    slow_setup = state_of(
        lambda: measures_its_round_trip(0.15, 0), timeout=0.1, housekeeping_timeout=0.3
    )
    await run_once(slow_setup)
    assert slow_setup.error is None, "0.15 s of housekeeping fit in its own 0.3 s"
    slow_answer = state_of(
        lambda: measures_its_round_trip(0, 0.2), timeout=0.1, housekeeping_timeout=0.3
    )
    await run_once(slow_answer)
    assert slow_answer.error == "TimeoutError: no answer within 0.1 s"
    stuck = state_of(lambda: measures_its_round_trip(5, 0), timeout=0.1, housekeeping_timeout=0.2)
    started = time.monotonic()
    await run_once(stuck)
    assert time.monotonic() - started < 1.0, "housekeeping never holds the runner"
    assert stuck.error == (
        "TimeoutError: no answer within 0.3 s (0.1 s for the check's query, 0.2 s for its "
        "connection's housekeeping)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "TypeError: check returned int, expected None or a mapping"),
        ("ok", "TypeError: check returned str, expected None or a mapping"),
        ([1], "TypeError: check returned list, expected None or a mapping"),
    ],
)
async def test_garbage_result_fails(value: object, message: str) -> None:
    async def check() -> object:
        return value

    state = state_of(check)
    await run_once(state)
    assert state.error == message
    assert not state.passing


async def test_sync_function_fails_clearly() -> None:
    state = state_of(lambda: None)
    await run_once(state)
    assert state.error is not None
    assert state.error.startswith("TypeError: check function returned NoneType, not an awaitable")


async def test_check_cancelled_on_its_own_is_a_failure_not_our_cancellation() -> None:
    async def check() -> None:
        raise anyio.get_cancelled_exc_class()()

    state = state_of(check)
    await run_once(state)  # must return normally: the caller was not cancelled
    assert state.error == "CancelledError: the check was cancelled"
    await anyio.lowlevel.checkpoint()  # and the caller can still await


async def test_cancelling_the_caller_propagates_and_records_nothing() -> None:
    started = anyio.Event()

    async def check() -> None:
        started.set()
        await anyio.sleep_forever()

    state = state_of(check, timeout=5, interval=10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_once, state)
        await started.wait()
        tg.cancel_scope.cancel()
    assert state.runs == 0


async def test_failure_threshold_damps_flapping() -> None:
    outcomes = iter([True, False, False, True, False, False, False])

    async def check() -> None:
        if not next(outcomes):
            raise RuntimeError("down")

    state = state_of(check, failure_threshold=3)
    passing = []
    for _ in range(7):
        await run_once(state)
        passing.append(state.passing)
    assert passing == [True, True, True, True, True, True, False]


async def test_success_threshold_delays_recovery() -> None:
    outcomes = iter([False, True, True, False, True, True, True])

    async def check() -> None:
        if not next(outcomes):
            raise RuntimeError("down")

    state = state_of(check, success_threshold=3)
    passing = []
    for _ in range(7):
        await run_once(state)
        passing.append(state.passing)
    assert passing == [False, False, False, False, False, False, True]
    assert state.ever_passed


async def test_stale_result_counts_as_failing() -> None:
    async def check() -> None:
        return None

    state = state_of(check, interval=1, timeout=0.5, stale_after=2)
    assert state.status(time.monotonic()) is CheckStatus.PENDING
    await run_once(state)
    assert state.last_finished is not None
    assert state.status(state.last_finished + 1.9) is CheckStatus.PASS
    assert state.status(state.last_finished + 2.1) is CheckStatus.STALE


def test_jittered_stays_within_its_fraction() -> None:
    rng = random.Random(7)
    values = [jittered(10.0, 0.2, rng) for _ in range(2000)]
    assert min(values) >= 8.0
    assert max(values) <= 12.0
    assert max(values) - min(values) > 3.0, "jitter must actually spread the values"
    assert jittered(10.0, 0.0, rng) == 10.0
    assert jittered(0.0, 0.5, rng) == 0.0


def test_describe_error_is_bounded() -> None:
    assert describe_error(ValueError()) == "ValueError"
    long = describe_error(RuntimeError("x" * 5000))
    assert len(long) == 300
    assert long.endswith("...")


async def test_run_check_polls_on_its_interval_until_cancelled() -> None:
    calls: list[float] = []

    async def check() -> None:
        calls.append(anyio.current_time())

    state = state_of(check, interval=0.05, timeout=0.05, jitter=0.0)
    with anyio.move_on_after(0.5):
        await run_check(state, random.Random(1), lambda state: None)
    assert 5 <= len(calls) <= 12
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.045
    count = len(calls)
    await anyio.sleep(0.1)
    assert len(calls) == count, "a cancelled runner must not run the check again"


@pytest.mark.parametrize(
    ("outcomes", "flips"),
    [
        # A first run that fails is reported (with its error), even though nothing flipped.
        ([False, False, True, True], [(False, "RuntimeError: down"), (True, None)]),
        # A first run that succeeds, below the success threshold, is not a failure to report.
        ([True, True, True], [(True, None)]),
        ([True, False, True, True], [(False, "RuntimeError: down"), (True, None)]),
    ],
)
async def test_run_check_reports_flips_and_a_failed_first_run_only(
    outcomes: list[bool], flips: list[tuple[bool, str | None]]
) -> None:
    results = iter(outcomes)
    done = anyio.Event()

    async def check() -> None:
        ok = next(results, None)
        if ok is None:
            done.set()
            await anyio.sleep_forever()
        if not ok:
            raise RuntimeError("down")

    seen: list[tuple[bool, str | None]] = []

    def record(flipped: CheckState) -> None:
        seen.append((flipped.passing, flipped.error))

    state = state_of(check, interval=0.01, timeout=0.01, jitter=0.0, success_threshold=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_check, state, random.Random(1), record)
        with anyio.fail_after(5):
            await done.wait()
        tg.cancel_scope.cancel()
    assert seen == flips
