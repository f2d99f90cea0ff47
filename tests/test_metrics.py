"""Prometheus metrics in process: exact values after a scripted sequence, the error-rate query
from two scrapes, bounded cardinality, and the endpoint itself."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming, deadline
from gracekit.metrics import Metrics, MetricsApp
from tests.support.asgi import Answer, call, eventually, lifespan
from tests.support.metrics import Samples, label_values, samples, value

pytestmark = pytest.mark.anyio


class Service:
    def __init__(self) -> None:
        self.healthy = True
        self.lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0.3, drain_timeout=0.3))
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.lifecycle, registry=self.registry)

        @self.lifecycle.check(interval=0.05, timeout=0.05)
        async def upstream() -> None:
            if not self.healthy:
                raise RuntimeError("upstream down")

        async def item(request: Request) -> PlainTextResponse:
            return PlainTextResponse(request.path_params["item_id"])

        async def fail(request: Request) -> PlainTextResponse:
            return PlainTextResponse("no", status_code=500)

        @deadline(0.05)
        async def slow(request: Request) -> PlainTextResponse:
            await anyio.sleep(1)
            return PlainTextResponse("late")

        async def hang(request: Request) -> PlainTextResponse:
            await anyio.sleep(30)
            return PlainTextResponse("never")

        self.app = Starlette(
            routes=[
                Route("/items/{item_id}", item),
                Route("/fail", fail),
                Route("/slow", slow),
                Route("/hang", hang),
                Route("/metrics", MetricsApp(self.metrics)),
                Mount("/health", app=ProbeApp(self.lifecycle)),
            ],
            lifespan=self.lifecycle.lifespan(),
        )
        self.app.add_middleware(DrainMiddleware, lifecycle=self.lifecycle)

    async def scrape(self) -> Samples:
        answer = await call(self.app, "/metrics")
        assert answer.status == 200
        assert answer.headers[b"content-type"].startswith(b"text/plain; version=")
        assert answer.headers[b"cache-control"] == b"no-store"
        return samples(answer.body.decode())

    def final(self) -> Samples:
        return samples(generate_latest(self.registry).decode())


@pytest.fixture
def service() -> Service:
    return Service()


async def test_a_scripted_sequence_gives_exact_values(service: Service) -> None:
    lifecycle = service.lifecycle
    async with lifespan(service.app):
        await eventually(lambda: lifecycle.readiness().ok)
        for item_id in ("1", "2", "3"):
            assert (await call(service.app, f"/items/{item_id}")).status == 200
        for _ in range(2):
            assert (await call(service.app, "/fail")).status == 500
        assert (await call(service.app, "/slow")).status == 504
        for i in range(4):
            assert (await call(service.app, f"/nowhere/{i}")).status == 404
        await call(service.app, "/health/ready")  # probes are not counted
        during = await service.scrape()
        assert value(during, "gracekit_ready") == 1
        assert value(during, "gracekit_check_up", check="upstream") == 1
        assert value(during, "gracekit_requests_in_flight") == 0, "the scrape does not count"

        service.healthy = False  # a check failing: readiness falls
        await eventually(lambda: not lifecycle.readiness().ok)
        failing = await service.scrape()
        assert value(failing, "gracekit_check_up", check="upstream") == 0
        assert value(failing, "gracekit_ready") == 0
        assert value(failing, "gracekit_check_duration_seconds", check="upstream") > 0
        service.healthy = True
        await eventually(lambda: lifecycle.readiness().ok)

        async with anyio.create_task_group() as tg:
            answers: list[Answer] = []

            async def hang() -> None:
                answers.append(await call(service.app, "/hang"))

            tg.start_soon(hang)
            await eventually(lambda: len(lifecycle.inflight) == 1)
            lifecycle.shutdown()  # a drain: 0.3 s delay, 0.3 s drain, /hang is cut
            assert (await call(service.app, "/items/9")).status == 200  # during the delay
            scrape = await service.scrape()
            assert value(scrape, "gracekit_phase", phase="draining") == 1
            assert value(scrape, "gracekit_requests_in_flight") == 1
    assert [a.status for a in answers] == [503]

    final = service.final()
    requests = "http_requests_total"
    assert value(final, requests, method="GET", route="/items/{item_id}", status="200") == 4
    assert value(final, requests, method="GET", route="/fail", status="500") == 2
    assert value(final, requests, method="GET", route="/slow", status="504") == 1
    assert value(final, requests, method="GET", route="/hang", status="503") == 1
    assert value(final, requests, method="GET", route="unmatched", status="404") == 4
    assert label_values(final, requests, "route") == {
        "/items/{item_id}",
        "/fail",
        "/slow",
        "/hang",
        "unmatched",
    }, "no series for the probes or the scrapes"
    count = "http_request_duration_seconds_count"
    assert value(final, count, method="GET", route="/items/{item_id}") == 4
    assert value(final, "gracekit_deadline_expired_total", route="/slow") == 1
    assert value(final, "gracekit_requests_cut_total", reason="drain") == 1
    assert value(final, "gracekit_requests_after_shutdown_total") == 1
    # ready at startup, not ready (check), ready again, not ready (the shutdown)
    assert value(final, "gracekit_ready_transitions_total", to="ready") == 2
    assert value(final, "gracekit_ready_transitions_total", to="not_ready") == 2
    assert 0.25 < value(final, "gracekit_drain_duration_seconds") < 1.5
    assert value(final, "gracekit_phase", phase="stopped") == 1
    assert value(final, "gracekit_phase", phase="started") == 0


def error_rate(before: Samples, after: Samples) -> float:
    """``sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))``
    over the two scrapes: the rates' common factor (the window) cancels out."""

    def increase(errors_only: bool) -> float:
        total = 0.0
        for (name, labels), current in after.items():
            status = dict(labels).get("status", "")
            if name == "http_requests_total" and (not errors_only or status.startswith("5")):
                total += current - before.get((name, labels), 0.0)
        return total

    return increase(True) / increase(False)


def quantile(q: float, before: Samples, after: Samples) -> float:
    """``histogram_quantile(q, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))``:
    linear interpolation within the bucket, as Prometheus does."""
    buckets: dict[float, float] = {}
    for (name, labels), current in after.items():
        if name == "http_request_duration_seconds_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + current - before.get((name, labels), 0.0)
    bounds = sorted(buckets)
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            return lower + (bound - lower) * (rank - below) / (buckets[bound] - below)
        lower, below = bound, buckets[bound]
    return bounds[-2]


async def test_the_error_rate_and_p99_queries_work_on_two_scrapes(service: Service) -> None:
    async with lifespan(service.app):
        await call(service.app, "/fail")  # before the window: must not count
        before = await service.scrape()
        for i in range(30):
            await call(service.app, f"/items/{i}")
        for _ in range(10):
            await call(service.app, "/fail")
        after = await service.scrape()
    assert error_rate(before, after) == 0.25
    p99 = quantile(0.99, before, after)
    assert 0 < p99 <= 0.005, "in-process requests take well under the first bucket"


async def test_ten_thousand_raw_paths_make_one_label_value(service: Service) -> None:
    async with lifespan(service.app):
        for i in range(10_000):
            await call(service.app, f"/unknown/{i}/x")
        for i in range(1_000):
            await call(service.app, f"/items/{i}")
        for method in ("BREW", "PROPFIND", "get"):
            await call(service.app, "/items/1", method=method)
        scrape = await service.scrape()
    requests = "http_requests_total"
    assert value(scrape, requests, method="GET", route="unmatched", status="404") == 10_000
    assert label_values(scrape, requests, "route") == {"unmatched", "/items/{item_id}"}
    assert label_values(scrape, requests, "method") == {"GET", "other"}
    series = [key for key in scrape if key[0] == requests]
    assert len(series) <= 4, series


async def test_the_endpoint_answers_get_only() -> None:
    service = Service()
    async with lifespan(service.app):
        post = await call(service.app, "/metrics", method="POST")
        head = await call(service.app, "/metrics", method="HEAD")
    assert post.status == 405
    assert head.status == 200
    assert head.body == b""


def test_one_lifecycle_has_one_set_of_metrics() -> None:
    lifecycle = Lifecycle()
    Metrics(lifecycle, registry=CollectorRegistry())
    with pytest.raises(ValueError, match="has its metrics already"):
        Metrics(lifecycle, registry=CollectorRegistry())


@pytest.mark.parametrize(
    ("buckets", "error"),
    [((), ValueError), ((0.1, 0.05), ValueError), ((0, 1), ValueError), ("abc", TypeError)],
)
def test_bad_buckets_are_refused(buckets: Any, error: type) -> None:
    with pytest.raises(error, match="buckets"):
        Metrics(Lifecycle(), registry=CollectorRegistry(), buckets=buckets)
