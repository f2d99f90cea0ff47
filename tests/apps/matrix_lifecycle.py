"""The lifecycle of the matrix's services (matrix_fastapi.py, matrix_starlette.py), wired as
the README wires its own: a management port, a dependency check, a gate that a startup task
opens, a shutdown hook, and the metrics. The framework-specific wiring is in each app.

Only settings come from the environment: GRACEKIT_MANAGEMENT_PORT and the GRACEKIT_* timings,
read by gracekit itself; DEADLINE (the default request deadline, seconds: the README's 10 unless
set), PRESTOP_TOKEN, and WIRING ("install" for gracekit.install(), otherwise by hand).
"""

from __future__ import annotations

import os

from gracekit import Lifecycle, Management
from gracekit.metrics import Metrics

DEADLINE = float(os.environ.get("DEADLINE", "10"))
PRESTOP_TOKEN = os.environ.get("PRESTOP_TOKEN", "change-me")
WIRING = os.environ.get("WIRING", "hand")

lifecycle = Lifecycle(management=Management(port=9001, host="127.0.0.1"))
metrics = Metrics(lifecycle)


@lifecycle.check(interval=1.0, timeout=0.5)
async def upstream() -> None:
    """A dependency check (the README's is postgres_check): passes."""


cache_warm = lifecycle.gate("cache-warm")


@lifecycle.startup_task(timeout=10)
async def warm_cache() -> None:
    cache_warm.open()


@lifecycle.on_shutdown(timeout=3)
async def say_goodbye() -> None:
    """Runs once, after the drain."""
