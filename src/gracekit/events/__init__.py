"""Lifecycle events: what every pod did, logged once each and offered to listeners.

A :class:`~gracekit.Lifecycle` emits an event at each transition (started, ready, not ready and
why, draining, drain, drained, each shutdown hook, stopped; a check flipping; the process marked
broken). Each is logged once through ``logging.getLogger("gracekit")`` with its fields in the
record's ``gracekit`` attribute, and handed to the listeners registered with
``lifecycle.on_event(...)``, on the event loop (an event emitted from another thread is handed
to the loop). :mod:`gracekit.events.otel` turns them into OpenTelemetry spans.
"""

from __future__ import annotations

from ._bus import EVENT_KINDS as EVENT_KINDS
from ._bus import EventBus as EventBus
from ._bus import LifecycleEvent as LifecycleEvent
from ._bus import Listener as Listener

__all__ = ["EVENT_KINDS", "EventBus", "LifecycleEvent", "Listener"]
