"""Deadlines cut requests whether or not sniffio is installed.

anyio asks sniffio, when it is installed (openai and older httpx bring it), which library runs
the current task; outside a task (in a timer's callback, where gracekit cuts requests) there is
none, and anyio raises. Every other test runs with sniffio (the dev extra installs it); this one
runs the same service under uvicorn both ways."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import TEST_APPS, Server, run_uvicorn

HIDE_SNIFFIO = TEST_APPS / "without_sniffio"


@pytest.fixture(scope="module", params=["with sniffio", "without sniffio"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[Server, bool]]:
    with_sniffio = request.param == "with sniffio"
    path = [str(HIDE_SNIFFIO)] if not with_sniffio else []
    env = {"PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")])}
    with run_uvicorn("cuts:app", app_dir=TEST_APPS, ready_path="/ping", env=env) as running:
        yield running, with_sniffio


def test_the_service_runs_as_the_case_says(server: tuple[Server, bool]) -> None:
    running, with_sniffio = server
    assert httpx.get(running.url + "/threads").json()["sniffio"] is with_sniffio


@pytest.mark.parametrize("path", ["/work?s=1.5", "/nap?s=1.5"], ids=["sync", "async"])
def test_a_callers_budget_cuts_the_request_at_its_deadline(
    server: tuple[Server, bool], path: str
) -> None:
    running, _ = server
    started = time.monotonic()
    answer = httpx.get(running.url + path, headers={"x-gracekit-budget-ms": "200"}, timeout=10)
    took = time.monotonic() - started
    assert answer.status_code == 504, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert took < 1.2, f"answered after {took:.2f} s: the endpoint ran to its end"
