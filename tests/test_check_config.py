"""Check construction validates every setting and says what is allowed."""

from __future__ import annotations

import math
import re

import pytest

from gracekit import Check, Lifecycle, LifecycleError


async def ok() -> None:
    return None


def test_defaults() -> None:
    check = Check("db", ok)
    assert (check.timeout, check.interval, check.jitter) == (1.0, 5.0, 0.1)
    assert check.probes == frozenset({"readiness"})
    assert check.stale_after == 3 * 5.0 + 1.0
    assert not check.informational
    assert "db" in repr(check)
    assert "readiness" in repr(check)
    assert check.housekeeping_timeout is None
    assert check.run_bound == 1.0
    kept = Check("db", ok, timeout=1.0, housekeeping_timeout=2.0)
    assert (kept.run_bound, kept.stale_after) == (3.0, 3 * 5.0 + 3.0)


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        ("readiness", {"readiness"}),
        ("startup", {"startup"}),
        ("informational", set()),
        (("startup", "readiness"), {"startup", "readiness"}),
        ([], set()),
        (["informational"], set()),
    ],
)
def test_probes(probes: object, expected: set[str]) -> None:
    check = Check("db", ok, probes=probes)  # type: ignore[arg-type]
    assert check.probes == expected
    assert check.informational is (not expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout of check 'db' must be > 0"),
        ({"timeout": -1}, "timeout of check 'db' must be > 0"),
        ({"timeout": math.nan}, "must be a finite number"),
        ({"interval": math.inf}, "must be a finite number"),
        ({"interval": 0.5, "timeout": 1.0}, "shorter than its timeout"),
        ({"probes": "liveness"}, "liveness never runs dependency checks"),
        ({"probes": "readyness"}, "unknown probe kind 'readyness'"),
        ({"probes": ["startup", "nope"]}, "unknown probe kind 'nope'"),
        ({"failure_threshold": 0}, "failure_threshold of check 'db' must be >= 1"),
        ({"success_threshold": -2}, "success_threshold of check 'db' must be >= 1"),
        ({"initial_delay": -0.1}, "initial_delay of check 'db' must be >= 0"),
        ({"jitter": 1.0}, "jitter of check 'db' must be in [0, 1)"),
        ({"jitter": math.nan}, "jitter of check 'db' must be in [0, 1)"),
        ({"probes": ["informational", "readiness"]}, "cannot be 'informational' and gate"),
        ({"stale_after": 1.0, "interval": 5.0}, "stale_after of check 'db'"),
        ({"housekeeping_timeout": 0}, "housekeeping_timeout of check 'db' must be > 0"),
    ],
)
def test_invalid_values_raise_value_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Check("db", ok, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": "1"},
        {"interval": None},
        {"timeout": True},
        {"failure_threshold": 1.5},
        {"jitter": "0.1"},
    ],
)
def test_wrong_types_raise_type_error(options: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="must be"):
        Check("db", ok, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", " db", "a/b", "has space", 3])
def test_bad_names(name: object) -> None:
    with pytest.raises((ValueError, TypeError), match="check name"):
        Check(name, ok)  # type: ignore[arg-type]


def test_func_must_be_callable() -> None:
    with pytest.raises(TypeError, match="async callable"):
        Check("db", "SELECT 1")  # type: ignore[arg-type]


def test_duplicate_names_across_checks_and_gates() -> None:
    lifecycle = Lifecycle()
    lifecycle.add_check(Check("db", ok))
    with pytest.raises(ValueError, match="a check named 'db' is already registered"):
        lifecycle.add_check(Check("db", ok))
    with pytest.raises(ValueError, match="a check named 'db' is already registered"):
        lifecycle.gate("db")
    lifecycle.gate("warm")
    with pytest.raises(ValueError, match="a gate named 'warm' is already registered"):
        lifecycle.add_check(Check("warm", ok))

    @lifecycle.startup_task
    async def load() -> None: ...

    with pytest.raises(ValueError, match="startup task named 'load'"):
        lifecycle.startup_task(load)


def test_decorator_registers_under_function_name() -> None:
    lifecycle = Lifecycle()

    @lifecycle.check(timeout=0.5, interval=1, probes="informational")
    async def cache() -> None: ...

    assert lifecycle.checks["cache"].check.informational
    assert lifecycle.checks["cache"].check.timeout == 0.5


def test_bare_decorators_register_too() -> None:
    lifecycle = Lifecycle()

    @lifecycle.check
    async def db() -> None: ...

    @lifecycle.startup_task
    async def load() -> None: ...

    assert list(lifecycle.checks) == ["db"]
    assert list(lifecycle.startup_tasks) == ["load"]
    with pytest.raises(TypeError, match=r"give the name as check\(name=...\)"):
        lifecycle.check("db2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"give the name as startup_task\(name=...\)"):
        lifecycle.startup_task("warm")


def test_add_check_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="takes a Check"):
        Lifecycle().add_check(ok)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ready_jitter": -1}, "ready_jitter must be >= 0"),
        ({"loop_lag_threshold": 0}, "loop_lag_threshold must be > 0"),
        ({"loop_lag_threshold": 1, "loop_lag_interval": 2}, "must be shorter than"),
    ],
)
def test_lifecycle_settings(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Lifecycle(**options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_registration_while_running_is_refused() -> None:
    lifecycle = Lifecycle()
    async with lifecycle.run():
        with pytest.raises(LifecycleError, match="while the lifecycle is running"):
            lifecycle.add_check(Check("late", ok))
        with pytest.raises(LifecycleError, match="while the lifecycle is running"):
            lifecycle.gate("late")
