"""Metrics in real processes: ``gracekit run --workers 2`` shares them between its workers."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.support.metrics import Samples, samples, value
from tests.support.server import TEST_APPS, run_uvicorn, wait_until


def requests_to(text: str, route: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("route") == route:
                total += sample.value
    return total


def test_two_workers_report_combined_counts() -> None:
    with run_uvicorn(
        "metered:app",
        app_dir=TEST_APPS,
        launcher="gracekit",
        args=["--workers", "2"],
        ready_path="/health/ready",
        start_timeout=30,
    ) as server:
        assert "PROMETHEUS_MULTIPROC_DIR=" in server.log()
        served: dict[str, int] = {}
        sent = 0
        # Fresh connections, so the kernel spreads them over both workers' accept().
        while len(served) < 2 or sent < 200:
            assert sent < 3000, f"one worker took every connection: {served}"
            pid = httpx.get(server.url + "/pid", headers={"connection": "close"}).text
            served[pid] = served.get(pid, 0) + 1
            sent += 1
        scraped_by: dict[str, float] = {}
        for _ in range(200):
            response = httpx.get(server.url + "/metrics", headers={"connection": "close"})
            scraped_by[response.headers["x-pid"]] = requests_to(response.text, "/pid")
            if len(scraped_by) == 2:
                break
        assert len(scraped_by) == 2, "both workers answered a scrape"
        assert set(scraped_by.values()) == {float(sent)}, (scraped_by, served)


def test_each_worker_keeps_its_state_gauges_in_its_files(tmp_path: Path) -> None:
    # A scrape is answered from every worker's files, and a worker's collector knows only its
    # own state: so each worker writes its state to its files, unscraped too. A request held
    # open in one worker shows in the files (read here, with no scrape that would write them),
    # and then in a scrape that the other worker serves.
    with (
        run_uvicorn(
            "metered:app",
            app_dir=TEST_APPS,
            env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
            launcher="gracekit",
            args=["--workers", "2"],
            ready_path="/health/ready",
            start_timeout=30,
        ) as server,
        httpx.Client() as client,
        client.stream("GET", server.url + "/hold", params={"seconds": "20"}) as held,
    ):
        holder = held.headers["x-pid"]
        files: Samples = {}

        def files_show_the_hold() -> bool:
            nonlocal files
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
            files = samples(generate_latest(registry).decode())
            return value(files, "gracekit_requests_in_flight") == 1

        assert wait_until(files_show_the_hold, timeout=5, interval=0.02), files
        assert value(files, "gracekit_ready") == 1, "both workers ready"

        scrape: Samples = {}

        def served_by_the_other_worker() -> bool:
            nonlocal scrape
            response = httpx.get(server.url + "/metrics", headers={"connection": "close"})
            scrape = samples(response.text)
            return response.headers["x-pid"] != holder

        assert wait_until(served_by_the_other_worker, timeout=10, interval=0.01)
        assert value(scrape, "gracekit_requests_in_flight") == 1
        assert value(scrape, "gracekit_ready") == 1
        assert value(scrape, "gracekit_phase", phase="started") == 1
        assert value(scrape, "gracekit_phase", phase="starting") == 0
