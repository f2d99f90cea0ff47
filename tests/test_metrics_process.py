"""Metrics in real processes: ``gracekit run --workers 2`` shares them between its workers."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import TEST_APPS, run_uvicorn


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
