"""Lifecycle events: each transition logged once with its fields and handed to listeners, checks
logged once per flip, a shutdown's readiness 503s not logged as errors, OpenTelemetry spans."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming
from gracekit.events import EVENT_KINDS, LifecycleEvent
from gracekit.events.otel import trace_events
from tests.support.asgi import call, eventually, lifespan

pytestmark = pytest.mark.anyio


def service(*, healthy: list[bool] | None = None) -> tuple[Lifecycle, Starlette]:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0.1, drain_timeout=0.5, hook_timeout=1))
    state = healthy if healthy is not None else [True]

    @lifecycle.check(interval=0.02, timeout=0.02)
    async def upstream() -> None:
        if not state[0]:
            raise RuntimeError("upstream down")

    @lifecycle.on_shutdown
    async def close_pool() -> None:
        pass

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[Route("/", hello), Mount("/health", app=ProbeApp(lifecycle))],
        lifespan=lifecycle.lifespan(),
    )
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    return lifecycle, app


async def test_a_run_emits_each_transition_once_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gracekit")
    healthy = [True]
    lifecycle, app = service(healthy=healthy)
    seen: list[LifecycleEvent] = []
    lifecycle.on_event(seen.append)
    async with lifespan(app):
        await eventually(lambda: lifecycle.readiness().ok)
        await eventually(lambda: any(e.kind == "ready" for e in seen))
        healthy[0] = False
        await eventually(lambda: any(e.kind == "not_ready" for e in seen))
        await anyio.sleep(0.2)  # ten more failing runs of the check: no more events
        healthy[0] = True
        await eventually(lambda: [e.kind for e in seen].count("ready") == 2)
        lifecycle.shutdown()
        await lifecycle.termination.wait_drain_started()
    kinds = [e.kind for e in seen]
    assert kinds == [
        "check",  # upstream passing
        "started",
        "ready",
        "check",  # upstream failing
        "not_ready",
        "check",  # upstream passing again
        "ready",
        "draining",
        "not_ready",
        "drain",
        "drained",
        "hook",
        "stopped",
    ], kinds
    assert set(kinds) <= set(EVENT_KINDS)
    by_kind = {e.kind: e for e in seen}
    assert by_kind["draining"].fields["source"] == "shutdown()"
    assert by_kind["draining"].phase == "draining"
    assert by_kind["drained"].fields["timed_out"] is False
    assert by_kind["hook"].fields["hook"] == "close_pool"
    assert by_kind["hook"].fields["ok"] is True
    assert by_kind["stopped"].fields["exit_status"] == 0
    failing = next(e for e in seen if e.kind == "not_ready")
    assert failing.fields["reasons"] == ["check upstream: fail"]

    # Logged once each, with the event's fields on the record.
    records = [r for r in caplog.records if hasattr(r, "gracekit")]
    assert [r.gracekit["event"] for r in records] == kinds
    assert sum(1 for r in caplog.records if "check upstream failing" in r.getMessage()) == 1
    stopped = records[-1]
    assert stopped.getMessage() == "stopped (exit status 0)"
    assert stopped.gracekit["phase"] == "stopped"
    assert "uptime_s" in stopped.gracekit


async def test_a_shutdowns_failing_readiness_is_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gracekit")
    lifecycle, app = service()
    seen: list[str] = []
    lifecycle.on_event(lambda event: seen.append(event.kind))
    async with lifespan(app):
        await eventually(lambda: "ready" in seen)
        lifecycle.shutdown()
        await lifecycle.termination.wait_drain_started()
        assert (await call(app, "/health/ready")).status == 503
    not_ready = [r for r in caplog.records if r.getMessage().startswith("not ready")]
    assert [r.levelno for r in not_ready] == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_listeners_that_fail_or_are_async(caplog: pytest.LogCaptureFixture) -> None:
    lifecycle, app = service()
    handled: list[str] = []

    @lifecycle.on_event
    def broken(event: LifecycleEvent) -> None:
        raise RuntimeError("listener bug")

    @lifecycle.on_event
    async def notify_registry(event: LifecycleEvent) -> None:
        await anyio.sleep(0.01)
        handled.append(event.kind)

    async with lifespan(app):
        await eventually(lambda: "ready" in handled)
    assert handled[-1] == "stopped", "the last event's async listener ran before the end"
    assert "started" in handled
    assert any("event listener" in r.getMessage() for r in caplog.records)


def test_listeners_must_be_callable() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        Lifecycle().on_event(42)  # type: ignore[arg-type]


async def test_events_become_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lifecycle, app = service()
    stop = trace_events(lifecycle, tracer_provider=provider)
    assert lifecycle.traced, "in place of the lifecycle's own subscription"
    seen: list[str] = []
    lifecycle.on_event(lambda event: seen.append(event.kind))
    async with lifespan(app):
        await eventually(lambda: "ready" in seen)
        lifecycle.shutdown()
    stop()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert {"gracekit.started", "gracekit.ready", "gracekit.draining", "gracekit.stopped"} <= set(
        spans
    )
    draining: Any = spans["gracekit.draining"].attributes
    assert draining["gracekit.source"] == "shutdown()"
    assert draining["gracekit.phase"] == "draining"
    stopped: Any = spans["gracekit.stopped"].attributes
    assert stopped["gracekit.exit_status"] == 0
    assert spans["gracekit.draining"].events[0].name.startswith("shutdown started by")


def test_a_lifecycle_traces_its_events_by_itself_when_opentelemetry_is_there() -> None:
    # The global tracer provider can be set once per process: in a process of its own.
    code = """
import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from gracekit import Lifecycle

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
lifecycle = Lifecycle(handle_signals=False)

async def main():
    async with lifecycle.run():
        await anyio.sleep(0.05)

anyio.run(main)
print(sorted({span.name for span in exporter.get_finished_spans()}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = out.stdout.strip()
    for name in ("gracekit.started", "gracekit.ready", "gracekit.draining", "gracekit.stopped"):
        assert f"'{name}'" in names, names
