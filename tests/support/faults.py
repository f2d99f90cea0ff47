"""One scenario, run against every dependency and every fault: a dependency misbehaves behind a
fault proxy, and the probes must react in time, keep answering fast, and recover."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import anyio
from starlette.applications import Starlette
from starlette.routing import Mount

from gracekit import Check, Lifecycle, ProbeApp
from gracekit.probes import CheckState, CheckStatus
from gracekit.probes._runner import run_once
from tests.support.asgi import client, eventually
from tests.support.faultproxy import FaultProxy

#: Slack on top of the timing the design promises, for a shared, noisy 2-core machine.
MARGIN = 1.5

FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "refuse": FaultProxy.refuse,
    "hang": FaultProxy.hang,
    "reset": FaultProxy.reset,
    "slow": lambda proxy: proxy.delay(0.6),  # slower than the check's timeout
}


def proxy_to(url: str) -> FaultProxy:
    """A started fault proxy in front of the server that *url* names."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url!r} needs an explicit host and port")
    return FaultProxy(parts.hostname, parts.port).start()


def through(url: str, proxy: FaultProxy) -> str:
    """*url* with the proxy's address in place of the server's (credentials kept)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{proxy.host}:{proxy.port}"))


async def run(state: CheckState) -> CheckStatus:
    """Run a check once and return its status right after."""
    await run_once(state)
    return state.status(time.monotonic())


async def probe_through_fault(check: Check, proxy: FaultProxy, fault: str) -> None:
    """Assert the whole fault story for *check*, whose dependency is reached through *proxy*."""
    lifecycle = Lifecycle()
    lifecycle.add_check(check)
    app = Starlette(
        routes=[Mount("/health", app=ProbeApp(lifecycle))], lifespan=lifecycle.lifespan()
    )
    budget_down = check.interval * (1 + check.jitter) * check.failure_threshold + check.timeout
    budget_up = check.interval * (1 + check.jitter) * check.success_threshold + check.timeout
    async with client(app) as http:
        await eventually(lambda: lifecycle.readiness().ok, timeout=10)
        assert (await http.get("/health/ready")).status_code == 200

        started = time.monotonic()
        FAULTS[fault](proxy)
        await eventually(lambda: not lifecycle.readiness().ok, timeout=budget_down + MARGIN)
        took = time.monotonic() - started
        assert took <= budget_down + MARGIN, f"readiness failed only after {took:.2f} s"

        slowest = 0.0
        for _ in range(20):
            before = time.perf_counter()
            ready = await http.get("/health/ready")
            live = await http.get("/health/live")
            slowest = max(slowest, time.perf_counter() - before)
            assert ready.status_code == 503
            assert live.status_code == 200, "liveness must not depend on a dependency"
        # A probe that waited on the dependency would take at least the slow fault's 0.6 s or
        # the check's timeout; the rest is the margin a shared machine needs (a probe pair in
        # process takes about 2 ms here, and once took 0.12 s in a busy full run).
        assert slowest < 0.25, f"probes took {slowest:.3f} s during the fault"
        error = lifecycle.checks[check.name].error
        assert error is not None

        started = time.monotonic()
        proxy.pass_through()
        await eventually(lambda: lifecycle.readiness().ok, timeout=budget_up + MARGIN + 5)
        took = time.monotonic() - started
        assert took <= budget_up + MARGIN, f"readiness recovered only after {took:.2f} s"
        assert (await http.get("/health/ready")).status_code == 200


#: Added to each round trip by a slow dependency: 250 ms each way.
SLOW_ROUND_TRIP = 0.5


async def ready_while_slow(check: Check, proxy: FaultProxy, *, seconds: float) -> None:
    """Assert that *check* (timeout 1 s) keeps readiness at 200 for *seconds* while every round
    trip to its dependency takes :data:`SLOW_ROUND_TRIP` longer, and that a hang still fails
    it within its timeout and interval."""
    lifecycle = Lifecycle()
    lifecycle.add_check(check)
    app = Starlette(
        routes=[Mount("/health", app=ProbeApp(lifecycle))], lifespan=lifecycle.lifespan()
    )
    state = lifecycle.checks[check.name]
    async with client(app) as http:
        await eventually(lambda: lifecycle.readiness().ok, timeout=10)
        proxy.delay(SLOW_ROUND_TRIP / 2)
        runs = state.runs
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            answer = await http.get("/health/ready")
            assert answer.status_code == 200, f"not ready while slow: {state.error}"
            await anyio.sleep(0.1)
        assert state.runs > runs, "the check ran while the server was slow"
        assert state.consecutive_failures == 0, state.error
        assert state.last_duration is not None
        assert state.last_duration >= SLOW_ROUND_TRIP, "each run did wait for the slow server"

        proxy.hang()
        budget = check.interval * (1 + check.jitter) + check.run_bound + MARGIN
        await eventually(lambda: not lifecycle.readiness().ok, timeout=budget)
        assert (await http.get("/health/ready")).status_code == 503
