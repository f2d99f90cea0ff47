"""Running one shutdown hook within its bound, even a hook that ignores its cancellation.

A hook past its timeout is cancelled. One that catches the cancellation and goes on would hold
the process forever: the lifespan waits for it, and so would the event loop's close, since
``asyncio.run`` cancels every task left and waits for each. So the hook runs in a task of its
own, driven by hand (:class:`_Droppable`), and a hook still running :data:`ABANDON_GRACE`
seconds after its cancellation is dropped: its coroutine is closed (``GeneratorExit`` at the
``await`` it is stuck in), its task ends, and nothing waits for it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

import anyio

from ..errors import describe
from ..events._bus import EventBus
from ._report import ShutdownHook
from .timing import ShutdownTiming

__all__ = ["ABANDON_GRACE", "FORCED_HOOK_TIMEOUT", "HookAbandoned", "run_hook", "run_hooks"]

#: Seconds a hook cancelled at its timeout gets to finish before it is abandoned.
ABANDON_GRACE = 1.0
#: The most a hook may take once the shutdown is forced (a second SIGINT): one that has not
#: started gets no more, and one that runs has no more left.
FORCED_HOOK_TIMEOUT = 1.0


class HookAbandoned(Exception):
    """The hook ignored its cancellation and was dropped."""


class _Pass:
    """Yields one object up to the task and returns what the task sends back: one step of
    ``await``, so that :class:`_Droppable` can stand between a coroutine and its task."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


class _Droppable:
    """Runs an awaitable as ``await`` would, one step at a time, until it is dropped."""

    def __init__(self, awaitable: Awaitable[object]) -> None:
        self._steps = awaitable.__await__()
        self.dropped = False

    async def run(self) -> bool:
        """Run it to its end (False), or until it is dropped (True); its exception is raised."""
        sent: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = self._steps.throw(error) if error is not None else self._steps.send(sent)
            except StopIteration:
                return False
            try:
                sent, error = await _Pass(step), None
            except BaseException as exc:  # a cancellation, or the awaited future's error
                if self.dropped:
                    close = getattr(self._steps, "close", None)
                    with contextlib.suppress(RuntimeError):  # it swallowed GeneratorExit too
                        if close is not None:
                            close()
                    return True
                sent, error = None, exc


async def run_hook(
    func: Callable[[], Awaitable[object]], *, bound: float, hurry: anyio.Event
) -> None:
    """Run ``func()`` for at most *bound* seconds (at most :data:`FORCED_HOOK_TIMEOUT` more
    once *hurry* is set).

    Raises:
        TimeoutError: it ran out of time, and ended when cancelled.
        HookAbandoned: it ran out of time and ignored its cancellation.
        Exception: the hook's own error.
    """
    droppable = _Droppable(func())
    task = asyncio.get_running_loop().create_task(droppable.run())
    try:
        if not await _wait(task, bound, hurry):
            task.cancel()
            if not await _wait(task, ABANDON_GRACE, hurry):
                droppable.dropped = True
                task.cancel()
                await asyncio.wait({task})
                raise HookAbandoned(
                    f"it ignored its cancellation at its {bound:.3g} s timeout and was abandoned"
                )
    finally:
        if not task.done():  # our own caller is being cancelled: the hook goes first
            droppable.dropped = True
            task.cancel()
    try:
        if task.result():  # pragma: no cover - dropped only on the way above
            raise HookAbandoned("abandoned")
    except asyncio.CancelledError:
        raise TimeoutError(f"it ran past its {bound:.3g} s timeout and was cancelled") from None


async def _wait(task: asyncio.Task[bool], seconds: float, hurry: anyio.Event) -> bool:
    """Wait for *task* at most *seconds*, cut to :data:`FORCED_HOOK_TIMEOUT` once *hurry* is
    set; True if it is done."""
    async with anyio.create_task_group() as tg:
        with anyio.move_on_after(seconds) as scope:

            async def hurried() -> None:
                await hurry.wait()
                scope.deadline = min(scope.deadline, anyio.current_time() + FORCED_HOOK_TIMEOUT)

            tg.start_soon(hurried)
            await asyncio.wait({task})
        tg.cancel_scope.cancel()
    return task.done()


async def run_hooks(
    hooks: Sequence[ShutdownHook],
    timing: ShutdownTiming,
    events: EventBus,
    *,
    forced: bool,
    hurry: anyio.Event,
) -> list[str]:
    """Run the *hooks* not run yet, last registered first, each bounded by its timeout (at
    most :data:`FORCED_HOOK_TIMEOUT` when *forced*), each reported as a ``hook`` event; the
    names of those that failed."""
    failed: list[str] = []
    for hook in reversed(hooks):
        if hook.ran:
            continue
        hook.ran = True
        timeout = timing.hook_timeout if hook.timeout is None else hook.timeout
        if forced:
            timeout = min(timeout, FORCED_HOOK_TIMEOUT)
        began = time.monotonic()
        try:
            await run_hook(hook.func, bound=timeout, hurry=hurry)
        except Exception as exc:
            failed.append(hook.name)
            error = describe(exc)
            events.emit(
                "hook",
                logging.ERROR,
                "shutdown hook %s failed: %s",
                hook.name,
                error,
                hook=hook.name,
                ok=False,
                error=error,
                timed_out=isinstance(exc, (TimeoutError, HookAbandoned)),
                elapsed_s=round(time.monotonic() - began, 3),
            )
        else:
            events.emit(
                "hook",
                logging.INFO,
                "shutdown hook %s done",
                hook.name,
                hook=hook.name,
                ok=True,
                elapsed_s=round(time.monotonic() - began, 3),
            )
    return failed
