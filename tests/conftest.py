"""Shared fixtures: the anyio backend, and the real PostgreSQL and Redis servers.

A test that needs a service skips with a loud reason when the service is unreachable on a
developer's machine, and fails when CI=true: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"

POSTGRES_DSN = os.environ.get(
    "GRACEKIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GRACEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_service(what: str, url: str) -> tuple[str, int]:
    """Return (host, port) of *url*, or skip (fail under CI) when nothing answers there."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 0
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = (
            f"{what} is not reachable at {host}:{port} ({exc}); start it or point "
            f"GRACEKIT_TEST_{what.upper()}_{'DSN' if what == 'postgres' else 'URL'} at one"
        )
        if IN_CI:
            pytest.fail(f"CI=true and {message}")
        pytest.skip(f"SKIPPED FOR A MISSING SERVICE: {message}")
    return host, port


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    require_service("postgres", POSTGRES_DSN)
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("redis", REDIS_URL)
    return REDIS_URL
