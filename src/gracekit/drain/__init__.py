"""Graceful termination: the drain middleware, what is in flight, the sequence and its timings."""

from __future__ import annotations

from ._report import ShutdownReport as ShutdownReport
from .middleware import DrainMiddleware as DrainMiddleware
from .timing import ShutdownTiming as ShutdownTiming

__all__ = ["DrainMiddleware", "ShutdownReport", "ShutdownTiming"]
