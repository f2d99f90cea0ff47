"""Taking over SIGTERM and SIGINT from the server, so they start gracekit's sequence.

Servers stop accepting the moment SIGTERM arrives; Kubernetes keeps sending traffic for a few
seconds after it. The lifespan of a lifecycle calls :func:`attach`, which replaces the server's
handlers with ones that run the termination sequence and stop the server when the delay is
over. It does so only for a server it knows (uvicorn, also inside gunicorn's uvicorn worker),
and logs a warning, leaving the signals alone, otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Protocol

from ..drain._sequence import ServerControl, ShutdownReport
from ..drain.timing import GRACE_MARGIN, ShutdownTiming
from ._uvicorn import UvicornControl, find_server

__all__ = ["SignalTakeover", "SignalTarget", "attach", "lifecycle_of"]

logger = logging.getLogger("gracekit")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds a SIGINT may wait for the event loop before the loop counts as blocked: another
#: SIGINT then raises KeyboardInterrupt, Python's own Ctrl-C, as the only way out.
BLOCKED_LOOP = 1.0


class SignalTarget(Protocol):
    """What the signals are handed to (a :class:`~gracekit.Lifecycle` is one)."""

    @property
    def timing(self) -> ShutdownTiming: ...

    @property
    def shutdown_report(self) -> ShutdownReport: ...

    def attach_server(
        self, control: ServerControl, *, reload: bool = False, timing: ShutdownTiming | None = None
    ) -> None:
        """Let the termination sequence stop *control*'s server."""
        ...

    def handle_signal(self, signum: signal.Signals) -> None:
        """Start (or force) the termination sequence for *signum*."""
        ...


# Which lifecycle took over which server, so ``serve()`` can read the exit status afterwards.
_ATTACHED: weakref.WeakKeyDictionary[Any, SignalTarget] = weakref.WeakKeyDictionary()


def lifecycle_of(server: object) -> SignalTarget | None:
    """The lifecycle that took over *server*'s signals, if one did."""
    return _ATTACHED.get(server)


def attach(lifecycle: SignalTarget) -> Callable[[], None] | None:
    """Route SIGTERM and SIGINT to *lifecycle* if the server is one gracekit knows.

    Returns a function that puts the previous handlers back, or None when nothing was done.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.warning("not in the main thread: SIGTERM handling is left to the server")
        return None
    handler = signal.getsignal(signal.SIGTERM)
    server = find_server(handler)
    if server is None:
        if handler in (signal.SIG_DFL, signal.SIG_IGN, None):
            logger.info("no server handles SIGTERM here (a test client?): signals left alone")
        else:
            logger.warning(
                "SIGTERM is handled by %r, which gracekit does not know: the server will stop "
                "accepting at SIGTERM without a shutdown delay; run it with `gracekit run` or "
                "uvicorn, or start the shutdown from the preStop endpoint",
                handler,
            )
        return None
    control = UvicornControl(server)
    # The server's environment may tune the timings without a release (``gracekit run
    # --shutdown-delay`` sets these variables for its worker processes).
    timing = ShutdownTiming.from_env(os.environ, base=lifecycle.timing)
    lifecycle.attach_server(control, reload=control.reload, timing=timing)
    control.bound_graceful_wait(timing.drain_timeout + GRACE_MARGIN)
    _ATTACHED[server] = lifecycle
    loop = asyncio.get_running_loop()
    waiting: list[float] = []  # when each SIGINT the loop has not handled yet arrived

    def handle(signum: signal.Signals) -> None:
        if signum == signal.SIGINT and waiting:
            waiting.pop(0)
        lifecycle.handle_signal(signum)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of whatever the loop was doing: hand the
        # signal to the loop instead of acting here.
        if signum == signal.SIGINT:
            now = time.monotonic()
            if waiting and now - waiting[0] > BLOCKED_LOOP:
                # The loop has not handled an earlier Ctrl-C for a while: blocking code holds
                # it (a hook or a handler that sleeps). Only Python's own Ctrl-C can end that.
                raise KeyboardInterrupt
            waiting.append(now)
        with contextlib.suppress(RuntimeError):  # a closed loop has nothing left to shut down
            loop.call_soon_threadsafe(handle, signal.Signals(signum))

    previous = {signum: signal.signal(signum, on_signal) for signum in _SIGNALS}

    def detach() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return detach


class SignalTakeover:
    """Takes over SIGTERM and SIGINT for *target* in a block, unless they are its already (the
    lifespan takes them first; the run inside it then leaves them be)."""

    def __init__(self, target: SignalTarget) -> None:
        self._target = target
        self._taken = False

    @contextlib.contextmanager
    def __call__(self, enabled: bool = True) -> Iterator[None]:
        if not enabled or self._taken:
            yield
            return
        detach = attach(self._target)
        self._taken = True
        try:
            yield
        finally:
            self._taken = False
            if detach is not None:
                detach()
