"""gracekit's log lines under each server, as real processes: printed once per event, the way
the server prints its own when the app configures nothing, and through the app's own
configuration when it has one (src/gracekit/server/_logs.py)."""

from __future__ import annotations

import re
import signal

import pytest

from tests.support.server import TEST_APPS, run_uvicorn

GUNICORN = r"\[[^]]+\] \[\d+\] \[INFO\] "  # gunicorn's "[time] [pid] [INFO] message"
#: (server, the app's logging, how gracekit's lines look there)
CASES = [
    ("gracekit", "none", r"INFO: +"),  # uvicorn's format, as gracekit run prints uvicorn's lines
    ("gracekit", "basic", r"INFO gracekit: "),
    ("gracekit", "handler", r"INFO gracekit: "),
    ("uvicorn", "none", r"INFO: +"),
    ("uvicorn", "basic", r"INFO gracekit: "),
    ("gunicorn", "none", GUNICORN),
    ("gunicorn", "basic", r"INFO gracekit: "),
]
EVENTS = ("started in ", "shutdown started by SIGTERM", "stopped")


@pytest.mark.parametrize(("launcher", "logging", "prefix"), CASES)
def test_each_event_is_printed_once(launcher: str, logging: str, prefix: str) -> None:
    with run_uvicorn(
        "logged:app", app_dir=TEST_APPS, launcher=launcher, env={"LOGGING": logging}
    ) as server:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=20)
        log = server.log()
    for event in EVENTS:
        lines = [line for line in log.splitlines() if event in line]
        assert len(lines) == 1, f"{event!r} printed {len(lines)} times:\n{log}"
        assert re.match(prefix + re.escape(event), lines[0]), log
