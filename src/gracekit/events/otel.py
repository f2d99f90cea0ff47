"""Lifecycle events as OpenTelemetry spans, when ``opentelemetry-api`` is installed.

Each event becomes a span named ``gracekit.<kind>`` (``gracekit.draining``,
``gracekit.drained``...) that starts and ends when the event happens, with the event's fields
as attributes (``gracekit.phase``, ``gracekit.in_flight``, ``gracekit.reasons``...). A lifecycle
subscribes this by itself when the ``opentelemetry`` package can be imported; without an SDK
configured, the spans cost next to nothing and go nowhere. The log records carry the same
fields, for an OpenTelemetry logging handler on the ``gracekit`` logger.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .._optional import require
from ._bus import EventBus, LifecycleEvent

__all__ = ["available", "trace_events"]

_SCALARS = (str, bool, int, float)


def available() -> bool:
    """True if the OpenTelemetry API can be imported."""
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):
        return False


def attributes(event: LifecycleEvent) -> dict[str, Any]:
    """The event's fields as OpenTelemetry attribute values (scalars, sequences of strings)."""
    values: dict[str, Any] = {
        "gracekit.event": event.kind,
        "gracekit.phase": event.phase,
        "gracekit.in_flight": event.in_flight,
    }
    for key, value in event.fields.items():
        if isinstance(value, _SCALARS):
            values[f"gracekit.{key}"] = value
        elif isinstance(value, Sequence):
            values[f"gracekit.{key}"] = [str(item) for item in value]
        elif value is not None:
            values[f"gracekit.{key}"] = str(value)
    return values


class Traced(Protocol):
    """What has events to trace (a :class:`~gracekit.Lifecycle` is one); *traced* set, it
    does not subscribe its own bridge to the global tracer provider."""

    traced: bool

    @property
    def events(self) -> EventBus: ...


def trace_events(lifecycle: Traced, *, tracer_provider: Any = None) -> Callable[[], None]:
    """Turn each of *lifecycle*'s events into a span; returns the way to stop.

    *tracer_provider* defaults to the global one (``opentelemetry.trace.set_tracer_provider``).
    Called before the lifecycle runs, it replaces the subscription the lifecycle would make by
    itself (to the global provider).

    Raises:
        ImportError: opentelemetry-api is not installed (``pip install 'gracekit[otel]'``).
    """
    trace = require("opentelemetry.trace", extra="otel", feature="gracekit.events.otel")
    tracer = trace.get_tracer("gracekit", tracer_provider=tracer_provider)
    lifecycle.traced = True  # in place of the subscription the lifecycle makes by itself

    def span(event: LifecycleEvent) -> None:
        start = int(event.time * 1e9)
        with tracer.start_as_current_span(
            f"gracekit.{event.kind}", start_time=start, attributes=attributes(event)
        ) as current:
            current.add_event(event.message, timestamp=start)

    return lifecycle.events.subscribe(span)
