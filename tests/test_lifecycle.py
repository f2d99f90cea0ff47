"""The lifecycle's phases and what each probe concludes from them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import Check, Lifecycle, LifecycleError, Phase, ProbeApp
from tests.support.asgi import client, eventually

pytestmark = pytest.mark.anyio

FAST = {"interval": 0.05, "timeout": 0.05, "jitter": 0.0}


class Switch:
    """A dependency a test turns on and off."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if not self.up:
            raise ConnectionError("dependency down")


async def test_not_ready_before_running_and_stopped_after() -> None:
    lifecycle = Lifecycle()
    assert lifecycle.phase is Phase.STARTING
    assert lifecycle.readiness().reasons == [
        "phase starting",
        "not running: is the lifecycle's lifespan installed?",
    ]
    assert lifecycle.startup().reasons == ["not running"]
    async with lifecycle.run():
        await eventually(lambda: lifecycle.readiness().ok)
        assert lifecycle.phase is Phase.STARTED
        assert lifecycle.startup().ok
    assert lifecycle.phase is Phase.STOPPED
    assert not lifecycle.readiness().ok
    assert lifecycle.liveness().ok, "a stopped monitor is not a stuck event loop"


async def test_a_stopped_lifecycle_runs_again_from_scratch() -> None:
    # Test suites enter one module-level app's lifespan many times.
    lifecycle = Lifecycle()
    db = Switch()
    lifecycle.check(name="db", **FAST)(db)
    loaded = 0

    @lifecycle.startup_task
    async def load() -> None:
        nonlocal loaded
        loaded += 1

    async with lifecycle.run():
        await eventually(lambda: lifecycle.readiness().ok)
        lifecycle.mark_broken("first run only")
    async with lifecycle.run():
        assert lifecycle.broken is None
        await eventually(lambda: lifecycle.readiness().ok)
        assert loaded == 2
        assert lifecycle.checks["db"].runs >= 1
    with pytest.raises(LifecycleError, match="while the lifecycle is running"):
        async with lifecycle.run(), lifecycle.run():
            pass


async def test_readiness_follows_gating_checks_and_gates() -> None:
    lifecycle = Lifecycle()
    db = Switch()
    lifecycle.check(name="db", **FAST)(db)
    warm = lifecycle.gate("warm")
    async with lifecycle.run():
        await eventually(lambda: db.calls > 0 and lifecycle.phase is Phase.STARTED)
        assert lifecycle.readiness().reasons == ["gate warm: closed"]
        warm.open()
        assert lifecycle.readiness().ok
        db.up = False
        await eventually(lambda: not lifecycle.readiness().ok)
        assert lifecycle.readiness().reasons == ["check db: fail"]
        assert lifecycle.liveness().ok, "liveness never depends on a dependency"
        assert lifecycle.readiness(exclude={"db"}).ok
        db.up = True
        await eventually(lambda: lifecycle.readiness().ok)
        warm.close()
        assert not lifecycle.readiness().ok


async def test_informational_check_degrades_but_keeps_ready() -> None:
    lifecycle = Lifecycle()
    cache = Switch(up=False)
    lifecycle.check(name="cache", probes="informational", **FAST)(cache)
    async with lifecycle.run():
        await eventually(lambda: cache.calls > 0 and lifecycle.phase is Phase.STARTED)
        result = lifecycle.readiness()
        assert (result.ok, result.status) == (True, "degraded")
        assert result.reasons == ["check cache: fail (informational)"]
        cache.up = True
        await eventually(lambda: lifecycle.readiness().status == "pass")


async def test_stale_results_fail_readiness() -> None:
    lifecycle = Lifecycle()
    lifecycle.add_check(Check("db", Switch(), interval=0.1, timeout=0.05, stale_after=0.15))
    async with lifecycle.run():
        await eventually(lambda: lifecycle.readiness().ok)
        time.sleep(0.3)  # block the loop: the runner cannot refresh the result
        assert lifecycle.readiness().reasons == ["check db: stale"]
        await eventually(lambda: lifecycle.readiness().ok)


async def test_draining_fails_readiness_but_not_liveness() -> None:
    lifecycle = Lifecycle()
    async with lifecycle.run():
        await eventually(lambda: lifecycle.readiness().ok)
        lifecycle.begin_draining()
        assert lifecycle.phase is Phase.DRAINING
        assert lifecycle.readiness().reasons == ["phase draining"]
        assert lifecycle.liveness().ok


async def test_broken_fails_liveness_and_readiness() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(ValueError, match="non-empty reason"):
        lifecycle.mark_broken("")
    async with lifecycle.run():
        await eventually(lambda: lifecycle.readiness().ok)
        lifecycle.mark_broken("worker thread died")
        lifecycle.mark_broken("second reason is not kept")
        assert lifecycle.broken == "worker thread died"
        assert lifecycle.liveness().reasons == ["broken"]
        assert "broken" in lifecycle.readiness().reasons


async def test_startup_waits_for_startup_checks_then_latches() -> None:
    lifecycle = Lifecycle()
    migrations = Switch(up=False)
    lifecycle.check(name="migrations", probes="startup", **FAST)(migrations)
    clock = Switch()  # a check on the same schedule, that keeps running: it shows time passing
    lifecycle.check(name="clock", probes="informational", **FAST)(clock)
    async with lifecycle.run():
        await eventually(lambda: migrations.calls >= 3)
        assert lifecycle.phase is Phase.STARTING
        assert lifecycle.startup().reasons == ["check migrations: not passed yet"]
        assert not lifecycle.readiness().ok
        migrations.up = True
        await eventually(lambda: lifecycle.startup().ok)
        assert lifecycle.phase is Phase.STARTED
        runs = lifecycle.checks["migrations"].runs
        migrations.up = False
        ticks = clock.calls
        # Four runs of a check on the same schedule: the startup check would have run again.
        await eventually(lambda: clock.calls >= ticks + 4)
        assert lifecycle.checks["migrations"].runs == runs, "a startup-only check stops once passed"
        assert lifecycle.startup().ok, "startup stays passed once it passed"
        assert lifecycle.readiness().status == "pass", (
            "a startup-only check does not gate readiness"
        )
        assert lifecycle.checks["migrations"].status(time.monotonic() + 60).value == "pass"


async def test_startup_tasks_gate_startup_and_a_failure_is_reported() -> None:
    lifecycle = Lifecycle()
    proceed = anyio.Event()

    @lifecycle.startup_task
    async def load_model() -> None:
        await proceed.wait()

    @lifecycle.startup_task(name="prime", timeout=0.1)
    async def prime_cache() -> None:
        await anyio.sleep_forever()

    async with lifecycle.run():
        await eventually(lambda: lifecycle.startup_tasks["prime"].status.value == "fail")
        proceed.set()
        await eventually(lambda: lifecycle.startup_tasks["load_model"].status.value == "pass")
        assert lifecycle.startup_tasks["prime"].error == "TimeoutError"
        assert lifecycle.startup().reasons == ["startup task prime: fail"]
        assert lifecycle.phase is Phase.STARTING
        # Nothing retries a startup task: the process says it cannot recover.
        await eventually(lambda: lifecycle.broken is not None)
        assert lifecycle.broken == "startup task prime failed"
        assert not lifecycle.liveness().ok


async def test_ready_jitter_holds_back_the_first_ready() -> None:
    lifecycle = Lifecycle(ready_jitter=0.3, rng=random.Random(3))
    expected = random.Random(3).uniform(0, 0.3)
    async with lifecycle.run():
        await eventually(lambda: lifecycle.phase is Phase.STARTED)
        started = time.monotonic()
        first = lifecycle.readiness()
        assert not first.ok
        assert first.reasons[0].startswith("ready jitter")
        await eventually(lambda: lifecycle.readiness().ok)
        waited = time.monotonic() - started
        assert waited <= expected + 0.2
        assert lifecycle.startup().ok


async def test_event_loop_lag_fails_liveness_then_recovers() -> None:
    lifecycle = Lifecycle(loop_lag_threshold=0.2, loop_lag_interval=0.05)
    async with lifecycle.run():
        await eventually(lambda: lifecycle.loop_monitor.last_tick is not None)
        first = lifecycle.loop_monitor.last_tick
        await eventually(lambda: lifecycle.loop_monitor.last_tick != first)  # a measured tick
        assert lifecycle.liveness().ok
        time.sleep(0.4)  # deliberately block the event loop, as a sync call in a handler would
        result = lifecycle.liveness()
        assert not result.ok
        assert result.reasons[0].startswith("event loop lag")
        await eventually(lambda: lifecycle.liveness().ok, timeout=2)


async def test_body_exception_propagates_unwrapped_and_tasks_stop() -> None:
    lifecycle = Lifecycle()
    lifecycle.check(name="db", **FAST)(Switch())
    before = len(asyncio.all_tasks())
    running = 0

    async def fail_inside() -> None:
        nonlocal running
        async with lifecycle.run():
            await eventually(lambda: lifecycle.readiness().ok)
            running = len(asyncio.all_tasks())
            raise KeyError("from the app")

    with pytest.raises(KeyError):
        await fail_inside()
    assert running > before
    assert len(asyncio.all_tasks()) == before


async def test_starlette_lifespan_composes_in_order() -> None:
    events: list[str] = []
    lifecycle = Lifecycle()
    pool: dict[str, bool] = {"open": False}

    @lifecycle.check(**FAST)
    async def db() -> None:
        if not pool["open"]:
            raise RuntimeError("check ran while the pool was closed")
        events.append("check") if "check" not in events else None

    @asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        pool["open"] = True
        events.append("app startup")
        yield {"greeting": "from the app's lifespan"}
        events.append("app shutdown")
        pool["open"] = False

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse(request.state.greeting)

    app = Starlette(
        routes=[Route("/", home), Mount("/health", app=ProbeApp(lifecycle))],
        lifespan=lifecycle.lifespan(app_lifespan),
    )
    async with client(app) as http:
        await eventually(lambda: lifecycle.readiness().ok)
        assert (await http.get("/")).text == "from the app's lifespan"
        assert (await http.get("/health/ready")).status_code == 200
    assert events == ["app startup", "check", "app shutdown"]
    assert lifecycle.checks["db"].error is None


async def test_fastapi_lifespan_composes_and_state_passes_through() -> None:
    lifecycle = Lifecycle()

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"pool": "the pool"}

    app = FastAPI(lifespan=lifecycle.lifespan(app_lifespan))
    app.mount("/health", ProbeApp(lifecycle))

    @app.get("/pool")
    async def read_pool(request: Request) -> dict[str, str]:
        return {"pool": request.state.pool}

    async with client(app) as http:
        await eventually(lambda: lifecycle.readiness().ok)
        assert (await http.get("/pool")).json() == {"pool": "the pool"}
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 200
    assert lifecycle.phase is Phase.STOPPED
