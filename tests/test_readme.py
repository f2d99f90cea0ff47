"""The README's quickstart, whole, as a real process under ``gracekit run``, against the real
PostgreSQL behind a fault proxy: it starts while the database refuses connections, answers
readiness 503, turns ready within one check interval of the database coming back, serves its
route, counts it in /metrics, and shuts down cleanly. (tests/test_docs.py runs and type-checks
it, with every other block of the docs.)"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.docblocks import quickstart
from tests.support.faults import MARGIN, proxy_to, through
from tests.support.server import run_uvicorn, wait_until

pytestmark = pytest.mark.postgres

#: The quickstart's check: every 5 s (10 % jitter), a 1 s timeout.
CHECK_WAIT = 5.0 * 1.1 + 1.0 + MARGIN


def test_the_quickstart_rides_out_its_database_being_down(
    tmp_path: Path, postgres_dsn: str
) -> None:
    (tmp_path / "main.py").write_text(quickstart())
    with proxy_to(postgres_dsn) as proxy:
        proxy.refuse()
        with run_uvicorn(
            "main:app", app_dir=tmp_path, env={"DATABASE_URL": through(postgres_dsn, proxy)},
            launcher="gracekit",
            ready_path="/health/startup", start_timeout=40,
        ) as server, httpx.Client(base_url=server.url, timeout=5) as http:  # fmt: skip

            def postgres() -> str:
                report = http.get("/health/ready?verbose").json()
                return str(report["checks"]["postgres"]["status"])

            # Up and alive, but not ready, and saying why.
            assert wait_until(lambda: postgres() == "fail", timeout=CHECK_WAIT), server.log()
            ready = http.get("/health/ready?verbose")
            assert ready.status_code == 503
            # (and, for up to 2 s after startup, the ready jitter)
            reasons = [r for r in ready.json()["reasons"] if not r.startswith("ready jitter: ")]
            assert reasons == ["check postgres: fail"]
            assert http.get("/health/live").status_code == 200

            started = time.monotonic()
            proxy.pass_through()
            assert wait_until(
                lambda: http.get("/health/ready").status_code == 200, timeout=CHECK_WAIT + 5
            ), server.log()
            assert time.monotonic() - started <= CHECK_WAIT

            answer = http.get("/")
            assert answer.status_code == 200, answer.text
            assert set(answer.json()) == {"time"}
            report = http.get("/health/ready?verbose").json()
            assert report["gates"] == {"cache-warm": "open"}
            assert report["checks"]["postgres"]["status"] == "pass"
            scrape = http.get("/metrics").text
            assert 'http_requests_total{method="GET",route="/",status="200"} 1.0' in scrape

            server.process.send_signal(signal.SIGINT)  # SIGTERM's sequence, without the delay
            assert server.process.wait(timeout=30) == 0, server.log()
            log = server.log()
            assert "shutdown hook say_goodbye done" in log, log
            assert "Traceback" not in log, log
