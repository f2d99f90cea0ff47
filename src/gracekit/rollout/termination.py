"""The termination of a container, as the kubelet does it, and the record of how it went:

```text
t = 0           preStop hook (none, a sleep, or an HTTP GET), bounded by the grace period
preStop done    SIGTERM to the container's main process
t = grace       SIGKILL to the whole process group, if it is still there (if the preStop
                hook used the whole grace period, SIGTERM gets 2 s more, as in Kubernetes)
```
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from . import http1
from .config import KubeletSettings
from .errors import BadResponse
from .pods import Pod, Processes, wait_exit
from .timeline import Timeline

__all__ = ["PRESTOP_OVERRUN_EXTENSION", "Termination", "terminate"]

#: Seconds added after SIGTERM when the preStop hook used up the grace period (Kubernetes
#: grants this one-off extension too).
PRESTOP_OVERRUN_EXTENSION = 2.0


@dataclass
class Termination:
    """How one container was stopped; times are the run's (seconds from its start)."""

    reason: str
    started: float
    prestop_done: float | None = None
    sigterm: float | None = None
    sigkill: float | None = None
    exited: float | None = None
    exit_code: int | None = None

    @property
    def killed(self) -> bool:
        return self.sigkill is not None

    @property
    def sigterm_to_exit(self) -> float | None:
        if self.sigterm is None or self.exited is None:
            return None
        return self.exited - self.sigterm


async def terminate(
    process: subprocess.Popen[bytes],
    reason: str,
    *,
    pod: Pod,
    settings: KubeletSettings,
    processes: Processes,
    timeline: Timeline,
) -> Termination:
    """Stop *pod*'s container (*process* is its main process) for *reason*: preStop, SIGTERM,
    SIGKILL at the grace period (counted from the preStop's start); each step is an event of
    *pod* on *timeline*. The container's other processes go too."""

    def event(kind: str, detail: str = "") -> None:
        timeline.add(pod.name, kind, detail)

    stop = Termination(reason, started=timeline.now())
    grace = settings.grace_period
    deadline = time.monotonic() + grace
    prestop = settings.prestop
    if prestop.kind != "none" and process.poll() is None:
        event("prestop", str(prestop))
        with anyio.move_on_after(grace):
            await _prestop(process, pod, settings, event)
        stop.prestop_done = timeline.now()
        event("prestop-done")
    if process.poll() is None:
        pod.signal(signal.SIGTERM)
        stop.sigterm = timeline.now()
        event("sigterm", reason)
        if time.monotonic() >= deadline:
            deadline = time.monotonic() + PRESTOP_OVERRUN_EXTENSION
        with anyio.move_on_after(deadline - time.monotonic()):
            await wait_exit(process)
        if process.poll() is not None:
            stop.exited = timeline.now()
        else:
            stop.sigkill = timeline.now()
            event("sigkill", f"grace period of {grace:g} s over")
    processes.kill(process)
    if stop.exited is None:
        stop.exited = timeline.now()
    stop.exit_code = process.returncode
    event("exited", f"status {process.returncode}")
    return stop


async def _prestop(
    process: subprocess.Popen[bytes],
    pod: Pod,
    settings: KubeletSettings,
    event: Callable[[str, str], None],
) -> None:
    prestop = settings.prestop
    async with anyio.create_task_group() as tg:

        async def hook() -> None:
            if prestop.kind == "sleep":
                await anyio.sleep(prestop.seconds)
            else:
                try:
                    response = await http1.get(
                        "127.0.0.1", pod.port, prestop.path, headers=prestop.headers
                    )
                    event("prestop-answered", f"status {response.status}")
                except (OSError, EOFError, BadResponse, asyncio.TimeoutError) as exc:
                    event("prestop-failed", type(exc).__name__)
            tg.cancel_scope.cancel()

        async def exited() -> None:
            await wait_exit(process)  # a container that exits ends its hook
            tg.cancel_scope.cancel()

        tg.start_soon(hook)
        tg.start_soon(exited)
