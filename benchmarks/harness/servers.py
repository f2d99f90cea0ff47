"""uvicorn processes of a benchmark app, each on a free port of 127.0.0.1.

A server runs in a session of its own, so a Ctrl-C reaches the benchmark only, and the context
manager that started it stops it (SIGINT, then SIGKILL) on every way out: a normal end, an
exception, a KeyboardInterrupt, or the ``SystemExit`` that :func:`harness.exit_on_sigterm`
turns SIGTERM into.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
QUIET = ("--log-level", "warning", "--no-access-log")


@dataclass(frozen=True)
class UvicornApp:
    """What to serve: uvicorn's import string, where to import it from, and its environment.

    With ``factory=True`` uvicorn calls *target* to build the app (``--factory``), so an app can
    read *env* when it is built rather than at import. *options* are further uvicorn arguments;
    the default keeps the logs quiet. ``launcher="gracekit"`` runs it under ``gracekit run``
    instead of ``uvicorn`` (whose options differ: it has no ``--no-access-log``). Use
    :func:`dataclasses.replace` for variants of one app.
    """

    target: str
    app_dir: Path | None = None
    factory: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = QUIET
    launcher: Literal["uvicorn", "gracekit"] = "uvicorn"

    def command(self, port: int) -> list[str]:
        program = ["gracekit", "run"] if self.launcher == "gracekit" else ["uvicorn"]
        return [
            sys.executable, "-m", *program, self.target,
            *(["--factory"] if self.factory else []),
            *(["--app-dir", str(self.app_dir)] if self.app_dir is not None else []),
            "--host", "127.0.0.1", "--port", str(port), *self.options,
        ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(port: int, path: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    """``GET path`` on 127.0.0.1:*port* over a fresh connection: the status and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Server:
    """A running uvicorn process, as :func:`run_server` yields it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, bytes]:
        """``GET path`` on this server: the status and the body."""
        return fetch(self.port, path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) uvicorn has used so far; NaN where there is no /proc.

        Per request, it moves far less than req/s when other processes compete for the cores.
        """
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_until(
        self, condition: Callable[[], bool], *, what: str, timeout: float = START_TIMEOUT
    ) -> None:
        """Poll *condition* until it holds; fail at once if uvicorn exits, or after *timeout*.

        Connection errors, HTTP errors and ValueError (a body that does not parse yet) count as
        "not yet". Raises RuntimeError, with the server's log, when it does not come.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} uvicorn exited with {self.process.returncode}:\n{self.log()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if condition():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} server: no {what} within {timeout:g} s:\n{self.log()}"
                )
            time.sleep(0.05)

    def wait_for_status(self, path: str, status: int = 200) -> None:
        """Wait until ``GET path`` answers *status*."""
        self.wait_until(lambda: self.get(path)[0] == status, what=f"{status} from {path}")


@contextlib.contextmanager
def run_server(name: str, app: UvicornApp, *, log_dir: Path) -> Iterator[Server]:
    """A uvicorn process serving *app* on a free port; SIGINT, then SIGKILL, on the way out.

    Its output goes to ``log_dir/uvicorn-<name>.log``. It is started, not waited for: call
    :meth:`Server.wait_until` or :meth:`Server.wait_for_status` before loading it.
    """
    port = free_port()
    log_path = log_dir / f"uvicorn-{name}.log"
    env = {**os.environ, **app.env, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        # A session of its own: a Ctrl-C reaches the benchmark only, whose cleanup stops uvicorn.
        process = subprocess.Popen(
            app.command(port), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield Server(name, port, process, log_path)
    finally:
        if process.poll() is None:
            # SIGINT: a gracekit app stops without its shutdown delay (SIGTERM would wait it out).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def run_servers(apps: Mapping[str, UvicornApp], *, log_dir: Path) -> Iterator[dict[str, Server]]:
    """:func:`run_server` for each of *apps* (name: app), started in order, stopped in reverse."""
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(run_server(name, app, log_dir=log_dir))
            for name, app in apps.items()
        }
