"""The public API is small and deliberate: this pins it."""

from __future__ import annotations

import gracekit
import gracekit.checks
import gracekit.deadlines
import gracekit.probes


def test_top_level_api_is_pinned() -> None:
    assert gracekit.__all__ == [
        "Check",
        "CheckFailed",
        "CheckState",
        "CheckStatus",
        "DeadlineExceeded",
        "DrainMiddleware",
        "Gate",
        "GracekitError",
        "Lifecycle",
        "LifecycleError",
        "Management",
        "Phase",
        "ProbeApp",
        "ProbeResult",
        "ShutdownReport",
        "ShutdownTiming",
        "StartupTask",
        "deadline",
        "install",
        "serve",
    ]


def test_all_lists_are_sorted_and_resolve() -> None:
    for module in (gracekit, gracekit.checks, gracekit.deadlines, gracekit.probes):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_deadlines_api_is_pinned() -> None:
    assert gracekit.deadlines.__all__ == [
        "BUDGET_HEADERS",
        "DeadlineExceeded",
        "RequestDeadline",
        "RouteInfo",
        "current",
        "deadline",
        "deadline_at",
        "inbound_budget",
        "remaining",
        "timeout",
    ]


def test_checks_api_is_pinned() -> None:
    assert gracekit.checks.__all__ == ["http_check", "postgres_check", "redis_check", "tcp_check"]


def test_importing_gracekit_imports_no_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gracekit, gracekit.checks; "
        "print(sorted(m for m in ('asyncpg', 'redis', 'httpx', 'uvicorn', 'prometheus_client')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_driver_names_the_extra() -> None:
    import subprocess
    import sys

    code = """
import sys
for driver in ("asyncpg", "redis", "redis.asyncio", "httpx"):
    sys.modules[driver] = None  # makes "import driver" raise ImportError
from gracekit.checks import http_check, postgres_check, redis_check
for call, extra in (
    (lambda: postgres_check(dsn="postgresql://x"), "postgres"),
    (lambda: redis_check(url="redis://x"), "redis"),
    (lambda: http_check("http://x/"), "http"),
):
    try:
        call()
    except ImportError as exc:
        assert f"pip install 'gracekit[{extra}]'" in str(exc), exc
    else:
        raise SystemExit(f"no ImportError for {extra}")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
