"""Processes: the pods' containers and Envoy, each tracked by PID so that every way out of a
simulation (the end, an error, Ctrl-C) stops all of them.

Each process runs in a session of its own: a Ctrl-C in the terminal reaches the simulator only,
and a SIGKILL reaches the whole process group, as a container runtime kills a whole container.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from .errors import RolloutError

__all__ = [
    "RUN_VARIABLE",
    "SERVERS",
    "Pod",
    "PodCommand",
    "Processes",
    "free_port",
    "until",
    "wait_exit",
]

logger = logging.getLogger("gracekit")

#: Set in the environment of every process a simulation starts, to the run's id: what is left
#: of a run can be found from outside (the cleanup tests look for it in ``/proc/*/environ``).
RUN_VARIABLE = "GRACEKIT_ROLLOUT_RUN"

#: What ``--app`` can be served with: ``gracekit run``, or plain uvicorn.
SERVERS = ("gracekit", "uvicorn")

_POLL = 0.01  # seconds between two looks at a process that may have exited


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Every process started for one run, by PID.

    Parameters:
        run_id: the value of :data:`RUN_VARIABLE` in the processes' environment.
    """

    def __init__(self, *, run_id: str) -> None:
        self.run_id = run_id
        self._started: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path
    ) -> subprocess.Popen[bytes]:
        """Start *argv* in a new session, its output appended to *log_path*."""
        environ = {**env, RUN_VARIABLE: self.run_id}
        with log_path.open("ab") as log:
            try:
                process = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environ,
                    start_new_session=True,
                )
            except OSError as exc:
                raise RolloutError(f"cannot start {shlex.join(argv)}: {exc}") from exc
        self._started.append(process)
        return process

    @property
    def pids(self) -> list[int]:
        """The PIDs of every process started, alive or not."""
        return [process.pid for process in self._started]

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL *process*'s whole process group, and reap it."""
        # ProcessLookupError: the group is gone, the process and any children have exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("process %d survived SIGKILL for 5 s", process.pid)

    def kill_all(self) -> None:
        """SIGKILL every process group started and reap the processes: idempotent."""
        for process in self._started:
            self.kill(process)


async def until(condition: Callable[[], object], *, interval: float = _POLL) -> None:
    """Return once *condition()* is true, looking every *interval* seconds: for states of
    other processes (an exit, Envoy's membership), which no event of ours can signal."""
    while not condition():  # noqa: ASYNC110 - the state is another process's
        await anyio.sleep(interval)


async def wait_exit(process: subprocess.Popen[bytes]) -> None:
    """Return once *process* has exited (the caller bounds the wait with a cancel scope)."""
    await until(lambda: process.poll() is not None)


@dataclass(frozen=True)
class PodCommand:
    """How to start a pod's container: *argv* with ``{port}`` in place of its port, and the
    environment added to the simulator's own."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("the pod command is empty")
        if not any("{port}" in arg for arg in self.argv):
            raise ValueError(f"the pod command must contain {{port}}: {shlex.join(self.argv)}")

    @classmethod
    def parse(cls, text: str, *, env: Mapping[str, str] | None = None) -> PodCommand:
        """A command from a shell-like string (``"python -m myapp --port {port}"``)."""
        return cls(tuple(shlex.split(text)), dict(env or {}))

    @classmethod
    def for_app(
        cls,
        app: str,
        *,
        server: str = "gracekit",
        factory: bool = False,
        app_dir: str = "",
        env: Mapping[str, str] | None = None,
    ) -> PodCommand:
        """The command serving the ASGI *app* (``MODULE:APP``) on 127.0.0.1 under *server*:
        ``gracekit`` (``gracekit run``) or ``uvicorn`` (plain uvicorn), with this Python.

        Raises:
            ValueError: an unknown *server*, or an *app* that is not ``MODULE:APP``.
        """
        if server not in SERVERS:
            raise ValueError(f"server must be one of {', '.join(SERVERS)}, got {server!r}")
        module, sep, attribute = app.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"the app must be MODULE:APP, got {app!r}")
        launcher = ("-m", "gracekit", "run") if server == "gracekit" else ("-m", "uvicorn")
        argv = [sys.executable, *launcher, app, "--host", "127.0.0.1", "--port", "{port}"]
        if factory:
            argv.append("--factory")
        if app_dir:
            argv += ["--app-dir", app_dir]
        return cls(tuple(argv), dict(env or {}))

    def render(self, port: int) -> list[str]:
        return [arg.replace("{port}", str(port)) for arg in self.argv]

    def __str__(self) -> str:
        return shlex.join(self.argv).replace("'{port}'", "{port}")


@dataclass
class Pod:
    """One replica: a name, a version, a port that stays the pod's across container restarts,
    and its current container process."""

    name: str
    version: str
    port: int
    command: PodCommand
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(
        self, processes: Processes, *, defaults: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a container (again, after a restart), with ``VERSION`` and ``POD_NAME`` set;
        *defaults* are set unless the command's environment sets them."""
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            **(defaults or {}),
            **self.command.env,
            "VERSION": self.version,
            "POD_NAME": self.name,
        }
        self.note(f"starting {self.name}: {self.command}")
        self.process = processes.start(
            self.command.render(self.port), env=env, log_path=self.log_path
        )
        self.pids.append(self.process.pid)
        return self.process

    def note(self, text: str) -> None:
        """Append a line of the simulator's own to the pod's log."""
        with self.log_path.open("a") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {text}\n")

    def signal(self, signum: signal.Signals) -> None:
        """Send *signum* to the container's main process (as the kubelet sends SIGTERM to
        PID 1 of a container)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
