"""Running checks in the background and keeping their latest, damped results.

Probe requests never run a check: they read the :class:`CheckState` this module keeps up to date.
"""

from __future__ import annotations

import enum
import inspect
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.lowlevel

from ..errors import describe
from ._secrets import Secrets
from .check import STARTUP_ONLY, Check

__all__ = ["CheckState", "CheckStatus", "describe_error", "jittered", "run_check"]


_MAX_DETAIL_ITEMS = 16
_SCALARS = (str, int, float, bool, type(None))


class CheckStatus(str, enum.Enum):
    """A check's status as a probe reports it."""

    PENDING = "pending"  # no result yet
    PASS = "pass"
    FAIL = "fail"
    STALE = "stale"  # the latest result is too old to trust: counts as failing


def describe_error(exc: BaseException, secrets: Secrets | None = None) -> str:
    """``"TypeName: message"``, with *secrets* masked, shortened to a size fit for a probe
    response."""
    return describe(exc, redact=secrets.redact if secrets else None)


def jittered(seconds: float, fraction: float, rng: random.Random) -> float:
    """*seconds* moved by a uniformly random amount of at most ``fraction * seconds``."""
    if not fraction or not seconds:
        return seconds
    return rng.uniform(seconds * (1 - fraction), seconds * (1 + fraction))


def _safe_str(value: object, convert: Callable[[object], str]) -> str:
    try:
        return convert(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _clean_detail(detail: Mapping[Any, Any], secrets: Secrets) -> dict[str, object]:
    # Details end up in JSON responses: keep them small and serialisable whatever came back.
    cleaned: dict[str, object] = {}
    for key, value in list(detail.items())[:_MAX_DETAIL_ITEMS]:
        keep = isinstance(value, _SCALARS) and not (
            isinstance(value, float) and not math.isfinite(value)  # JSON has no NaN or inf
        )
        if not keep:
            value = _safe_str(value, repr)[:100]
        if isinstance(value, str) and secrets:
            value = secrets.redact(value)
        cleaned[secrets.redact(_safe_str(key, str))] = value
    return cleaned


class CheckState:
    """The latest results of one check, with flap damping and staleness."""

    def __init__(self, check: Check) -> None:
        self.check = check
        self.passing = False  # the damped state; a check starts as not passing
        self.ever_passed = False
        self.consecutive_successes = 0
        self.consecutive_failures = 0
        self.runs = 0
        self.last_finished: float | None = None  # time.monotonic()
        self.last_duration: float | None = None
        self.last_success_wall: float | None = None  # time.time(), for reports
        self.error: str | None = None
        self.detail: dict[str, object] | None = None
        self.passed_once: anyio.Event | None = None  # set by the lifecycle while running

    def status(self, now: float) -> CheckStatus:
        """The status at monotonic time *now*."""
        if self.check.probes == STARTUP_ONLY and self.ever_passed:
            return CheckStatus.PASS  # done: like Kubernetes' startup probe, it runs until it passes
        if self.last_finished is None:
            return CheckStatus.PENDING
        if now - self.last_finished > self.check.stale_after:
            return CheckStatus.STALE
        return CheckStatus.PASS if self.passing else CheckStatus.FAIL

    def record_success(self, detail: dict[str, object] | None, duration: float) -> None:
        self._finish(duration)
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        self.error = None
        self.detail = detail
        self.last_success_wall = time.time()
        if not self.passing and self.consecutive_successes >= self.check.success_threshold:
            self.passing = True
            if not self.ever_passed:
                self.ever_passed = True
                if self.passed_once is not None:
                    self.passed_once.set()

    def record_failure(self, error: str, duration: float) -> None:
        self._finish(duration)
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        self.error = error
        self.detail = None
        if self.passing and self.consecutive_failures >= self.check.failure_threshold:
            self.passing = False

    def _finish(self, duration: float) -> None:
        self.runs += 1
        self.last_duration = duration
        self.last_finished = time.monotonic()


async def _call(state: CheckState) -> dict[str, object] | None:
    result: object = state.check.func()
    if not inspect.isawaitable(result):
        raise TypeError(
            f"check function returned {type(result).__name__}, not an awaitable: "
            "checks must be async"
        )
    value = await result
    if value is None:
        return None
    if isinstance(value, Mapping):
        return _clean_detail(value, state.check.secrets)
    raise TypeError(f"check returned {type(value).__name__}, expected None or a mapping")


async def run_once(state: CheckState) -> None:
    """Run the check once under its timeout and record the outcome; never raises, except the
    cancellation of the caller itself. The error text is redacted here, before anything
    stores, logs or emits it (probe answers, log lines, events, spans)."""
    check = state.check
    started = time.monotonic()
    try:
        with anyio.CancelScope(deadline=anyio.current_time() + check.run_bound) as bound:
            detail = await _call(state)
    except TimeoutError as exc:  # the check's own bound of its round trip, or a driver's
        if exc.args:  # one that says what took too long
            error = describe_error(exc, check.secrets)
        else:
            error = f"TimeoutError: no answer within {check.timeout:g} s"
    except anyio.get_cancelled_exc_class():
        # A cancellation aimed at us is delivered again at the next checkpoint (anyio cancels
        # by level); one that the check raised on its own is not, and is just a failure.
        await anyio.lowlevel.checkpoint()
        error = "CancelledError: the check was cancelled"
    except Exception as exc:
        error = describe_error(exc, check.secrets)
    else:
        if not bound.cancelled_caught:
            state.record_success(detail, time.monotonic() - started)
            return
        error = _overran(check)
    state.record_failure(error, time.monotonic() - started)


def _overran(check: Check) -> str:
    if check.housekeeping_timeout is None:
        return f"TimeoutError: no answer within {check.timeout:g} s"
    return (
        f"TimeoutError: no answer within {check.run_bound:g} s ({check.timeout:g} s for the "
        f"check's query, {check.housekeeping_timeout:g} s for its connection's housekeeping)"
    )


async def run_check(
    state: CheckState,
    rng: random.Random,
    on_flip: Callable[[CheckState], None],
) -> None:
    """Run the check forever on its (jittered) interval; cancel the caller to stop it.

    *on_flip* is called once each time the check starts or stops passing, and at the first
    failed run of a check that has not passed yet: not on every run, and not for a first
    success that the success threshold keeps from counting yet.
    """
    check = state.check
    reported = False  # whether on_flip was called yet
    await anyio.sleep(jittered(check.initial_delay, check.jitter, rng))
    while True:
        started = anyio.current_time()
        was_passing = state.passing
        await run_once(state)
        failed_first = not reported and state.consecutive_failures > 0
        if state.passing != was_passing or failed_first:
            reported = True
            on_flip(state)
        if check.probes == STARTUP_ONLY and state.ever_passed:
            return
        next_start = started + jittered(check.interval, check.jitter, rng)
        await anyio.sleep_until(next_start)
