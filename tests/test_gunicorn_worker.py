"""The gunicorn worker's settings, read from gunicorn's configuration (its shutdown runs in the
real-process tests: tests/test_matrix.py, tests/test_termination.py)."""

from __future__ import annotations

import os

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from gracekit.server.gunicorn import Worker


@pytest.mark.parametrize(("keepalive", "expected"), [(None, 5), (2, 5), (4, 5), (5, 5), (75, 75)])
def test_keep_alive_is_at_least_uvicorns(keepalive: int | None, expected: int) -> None:
    # gunicorn's default (2 s) is shorter than most proxies' idle timeout; a longer one, set to
    # outlast a proxy's (75 s behind a 60 s load balancer), is kept.
    cfg = Config()
    if keepalive is not None:
        cfg.set("keepalive", keepalive)
    worker = Worker(0, os.getpid(), [], None, 30, cfg, Logger(cfg))
    try:
        assert worker.config.timeout_keep_alive == expected
    finally:
        worker.tmp.close()
