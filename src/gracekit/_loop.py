"""The event loop a component runs on, and how to reach it from any thread.

Gates open and close from worker threads, and events are emitted from them: what they set off
must run on the loop. One helper holds the loop and its thread, and hands a call over to it
with ``call_soon_threadsafe`` from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

__all__ = ["LoopBinding"]


class LoopBinding:
    """The loop (and its thread) a component is bound to while it runs."""

    __slots__ = ("loop", "thread")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: int | None = None

    def bind(self) -> None:
        """Bind to the running loop, from its thread."""
        self.loop, self.thread = asyncio.get_running_loop(), threading.get_ident()

    def unbind(self) -> None:
        self.loop = self.thread = None

    def call(self, callback: Callable[[], object], *, soon: bool = False) -> None:
        """Run *callback* on the bound loop: from its own thread now (*soon*: once the current
        step is done); from another thread soon, handed over thread-safely, and not at all
        once the loop has closed. Unbound, it runs now (or, with *soon*, not at all)."""
        loop = self.loop
        if loop is None:
            if not soon:
                callback()
        elif threading.get_ident() == self.thread:
            if soon:
                loop.call_soon(callback)
            else:
                callback()
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing left to tell
                loop.call_soon_threadsafe(callback)
