"""The lifecycle's state gauges are read when scraped: no lag after a change, no I/O and no check
run while collecting, one set of metrics per registry."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gracekit import DrainMiddleware, Lifecycle, ShutdownTiming
from gracekit.metrics import Metrics, MetricsApp
from tests.support.asgi import call, eventually, lifespan
from tests.support.metrics import Samples, samples, value

pytestmark = pytest.mark.anyio


class Service:
    def __init__(self) -> None:
        self.lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0.05, drain_timeout=1))
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.lifecycle, registry=self.registry)
        self.gate = self.lifecycle.gate("warm", open=True)
        self.check_runs = 0
        self.check_delay = 0.0
        self.release = anyio.Event()

        @self.lifecycle.check(interval=0.3, timeout=0.3)
        async def upstream() -> None:
            self.check_runs += 1
            await anyio.sleep(self.check_delay)

        async def hang(request: Request) -> PlainTextResponse:
            await self.release.wait()
            return PlainTextResponse("done")

        self.app = Starlette(
            routes=[Route("/hang", hang), Route("/metrics", MetricsApp(self.metrics))],
            lifespan=self.lifecycle.lifespan(),
        )
        self.app.add_middleware(DrainMiddleware, lifecycle=self.lifecycle)

    def collected(self) -> Samples:
        """The registry as prometheus_client's own HTTP server serves it (no endpoint code)."""
        return samples(generate_latest(self.registry).decode())

    async def scraped(self) -> Samples:
        answer = await call(self.app, "/metrics")
        assert answer.status == 200
        return samples(answer.body.decode())


async def test_a_scrape_right_after_a_change_shows_it() -> None:
    service = Service()
    lifecycle = service.lifecycle
    async with lifespan(service.app), anyio.create_task_group() as tg:
        await eventually(lambda: lifecycle.readiness().ok)
        assert value(service.collected(), "gracekit_ready") == 1

        # Every assertion below follows its change with no await in between: nothing else on
        # the event loop (an event, a refresh) can have run.
        service.gate.close()
        assert value(service.collected(), "gracekit_ready") == 0
        service.gate.open()
        assert value(service.collected(), "gracekit_ready") == 1

        state = lifecycle.checks["upstream"]
        service.check_delay = 0.25
        await eventually(lambda: (state.last_duration or 0) >= 0.25)  # no flip, no event
        duration = state.last_duration
        scrape = service.collected()
        assert value(scrape, "gracekit_check_duration_seconds", check="upstream") == duration
        assert value(scrape, "gracekit_check_up", check="upstream") == 1

        tg.start_soon(call, service.app, "/hang")
        await eventually(lambda: len(lifecycle.inflight) == 1)
        assert value(service.collected(), "gracekit_requests_in_flight") == 1
        assert value(await service.scraped(), "gracekit_requests_in_flight") == 1

        lifecycle.begin_draining()
        scrape = service.collected()
        assert value(scrape, "gracekit_phase", phase="draining") == 1
        assert value(scrape, "gracekit_phase", phase="started") == 0
        assert value(scrape, "gracekit_ready") == 0
        service.release.set()
        await eventually(lambda: len(lifecycle.inflight) == 0)
        assert value(service.collected(), "gracekit_requests_in_flight") == 0
    assert value(service.collected(), "gracekit_phase", phase="stopped") == 1


def test_the_state_gauges_keep_their_names_types_and_labels() -> None:
    # The docs' tables, the canary queries and the dashboards depend on these.
    service = Service()
    families = {
        family.name: (
            family.type,
            family.documentation,
            {tuple(sorted(s.labels)) for s in family.samples},
        )
        for family in text_string_to_metric_families(generate_latest(service.registry).decode())
        if family.name.startswith("gracekit_")
        and family.type == "gauge"
        and not family.name.endswith("_created")  # the text format's counter creation times
    }
    assert families == {
        "gracekit_requests_in_flight": ("gauge", "HTTP requests and websockets in flight.", {()}),
        "gracekit_phase": ("gauge", "The lifecycle's phase: 1 for the current one.", {("phase",)}),
        "gracekit_ready": ("gauge", "1 while readiness passes.", {()}),
        "gracekit_check_up": ("gauge", "1 while the check passes.", {("check",)}),
        # No sample until the check has run once.
        "gracekit_check_duration_seconds": (
            "gauge",
            "How long the check's latest run took.",
            set(),
        ),
        "gracekit_drain_duration_seconds": (
            "gauge",
            "How long the latest drain took, from the end of the shutdown delay.",
            {()},
        ),
    }
    phases = {
        s.labels["phase"]: s.value
        for f in service.registry.collect()
        for s in f.samples
        if f.name == "gracekit_phase"
    }
    assert phases == {"starting": 1, "started": 0, "draining": 0, "stopped": 0}


_IO_EVENTS = ("open", "os.", "socket.", "subprocess.", "shutil.", "glob.", "mmap.", "time.sleep")


@contextmanager
def audited() -> Iterator[list[str]]:
    """The I/O audit events (PEP 578) raised in this thread inside the block."""
    seen: list[str] = []
    thread = threading.get_ident()
    active = True

    def hook(event: str, args: tuple[object, ...]) -> None:
        if active and threading.get_ident() == thread and event.startswith(_IO_EVENTS):
            seen.append(event)

    sys.addaudithook(hook)  # hooks cannot be removed: this one goes quiet after the block
    try:
        yield seen
    finally:
        active = False


async def test_collecting_does_no_io_and_runs_no_check() -> None:
    service = Service()
    lifecycle = service.lifecycle
    async with lifespan(service.app), anyio.create_task_group() as tg:
        await eventually(lambda: lifecycle.readiness().ok)
        service.check_delay = 30  # a check hanging on its dependency: collecting does not wait
        hung = service.check_runs + 1
        await eventually(lambda: service.check_runs > hung)  # this run started after the change
        tg.start_soon(call, service.app, "/hang")
        await eventually(lambda: len(lifecycle.inflight) == 1)
        runs = service.check_runs
        with audited() as seen:
            started = time.monotonic()
            families = list(service.metrics.collector.collect())
            took = time.monotonic() - started
        assert seen == [], "collecting the state did I/O"
        assert took < 0.1, "collecting waited (for the check in progress?)"
        assert service.check_runs == runs, "collecting ran a check"
        assert {f.name for f in families} == {
            "gracekit_requests_in_flight",
            "gracekit_phase",
            "gracekit_ready",
            "gracekit_check_up",
            "gracekit_check_duration_seconds",
        }
        with audited() as probe:  # the audit hook does see I/O in this thread
            open(__file__).close()  # noqa: ASYNC230
        assert probe == ["open"]
        service.release.set()


def test_a_registry_holds_one_set_of_metrics_and_refuses_a_second_whole() -> None:
    registry = CollectorRegistry()
    first = Metrics(Lifecycle(), registry=registry)
    other = Lifecycle()
    with pytest.raises(ValueError, match=r"has gracekit's metrics already \(Duplicated timeseries"):
        Metrics(other, registry=registry)
    assert other.request_observer is None, "the refused metrics did not attach themselves"
    text = generate_latest(registry).decode()
    assert text.count("# TYPE gracekit_ready gauge") == 1
    assert text.count("# TYPE http_requests_total counter") == 1
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(first.collector)


def test_a_refused_registration_leaves_nothing_behind() -> None:
    # An app's own metric clashes with the collector's: nothing of gracekit's is registered,
    # not the counters before it either, and the registry takes the metrics once it is gone.
    registry = CollectorRegistry()
    own = Gauge("gracekit_ready", "the app's own", registry=registry)
    lifecycle = Lifecycle()
    with pytest.raises(ValueError, match="has gracekit's metrics already"):
        Metrics(lifecycle, registry=registry)
    names = {family.name for family in registry.collect()}
    assert names == {"gracekit_ready"}
    registry.unregister(own)
    Metrics(lifecycle, registry=registry)
    assert "http_requests" in {family.name for family in registry.collect()}


async def test_collecting_from_another_thread_while_requests_come_and_go() -> None:
    # prometheus_client's own HTTP server collects in its thread while the event loop adds and
    # removes requests in flight: counting them there must not fail a scrape.
    service = Service()
    service.release.set()  # /hang answers at once
    errors: list[BaseException] = []
    scrapes = 0
    stop = threading.Event()

    def scrape_often() -> None:
        nonlocal scrapes
        while not stop.is_set():
            try:
                generate_latest(service.registry)
            except Exception as exc:
                errors.append(exc)
            scrapes += 1

    async def client() -> None:
        for _ in range(50):
            assert (await call(service.app, "/hang")).status == 200

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # thread switches mid-count, as a busy server gets them
    try:
        async with lifespan(service.app):
            scraper = threading.Thread(target=scrape_often)
            scraper.start()
            try:
                async with anyio.create_task_group() as tg:
                    for _ in range(100):
                        tg.start_soon(client)
            finally:
                stop.set()
                await anyio.to_thread.run_sync(scraper.join)
    finally:
        sys.setswitchinterval(interval)
    assert scrapes > 100, "the scrapes ran alongside the requests"
    assert errors == []
