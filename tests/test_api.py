"""The public API is small and deliberate: this pins it."""

from __future__ import annotations

import importlib
import pkgutil

import gracekit
import gracekit.checks
import gracekit.deadlines
import gracekit.probes
import gracekit.server


def _public_packages() -> list[str]:
    """gracekit and every package under it whose name does not start with an underscore."""
    found = ["gracekit"]
    for info in pkgutil.walk_packages(gracekit.__path__, "gracekit."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return found


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_top_level_api_is_pinned() -> None:
    assert gracekit.__all__ == [
        "Check",
        "CheckFailed",
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
        "deadline",
        "install",
        "serve",
    ]


def test_internals_left_the_top_level_for_gracekit_probes() -> None:
    # What a Lifecycle holds (lifecycle.checks, lifecycle.startup_tasks) is described in
    # gracekit.probes; the top level keeps what an application writes.
    for name in ("CheckState", "CheckStatus", "StartupTask"):
        assert name not in gracekit.__all__
        assert not hasattr(gracekit, name), name
        assert name in gracekit.probes.__all__


def test_every_public_package_has_an_explicit_all() -> None:
    packages = _public_packages()
    assert {"gracekit.checks", "gracekit.probes", "gracekit.server"} <= set(packages)
    for name in packages:
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"


def test_all_lists_are_sorted_and_resolve() -> None:
    for name in _public_packages():
        module = importlib.import_module(name)
        assert module.__all__ == sorted(module.__all__, key=_isort_key), name
        assert len(set(module.__all__)) == len(module.__all__), name
        for exported in module.__all__:
            assert getattr(module, exported) is not None, f"{name}.{exported}"


def test_a_re_export_is_the_object_it_names() -> None:
    # The same name in two places is one object, not a copy.
    for name in gracekit.__all__:
        for package in (gracekit.probes, gracekit.server, gracekit.deadlines):
            if name in package.__all__:
                assert getattr(package, name) is getattr(gracekit, name), name


def test_server_api_is_pinned() -> None:
    # serve stays at the top level only: here the name is its module's (gracekit.server.serve).
    assert gracekit.server.__all__ == ["Management"]


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
