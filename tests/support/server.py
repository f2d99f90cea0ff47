"""Real uvicorn processes for tests: free ports, readiness by polling, clean termination."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TEST_APPS = ROOT / "tests" / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until(condition: Callable[[], object], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll *condition* (a callable returning truthy) until it holds or *timeout* passes."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _command(launcher: str, app: str, app_dir: Path, port: int) -> list[str]:
    if launcher == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--app-dir", str(app_dir),
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if launcher == "gracekit":
        return [sys.executable, "-m", "gracekit", "run", app, "--app-dir", str(app_dir),
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if launcher == "gunicorn":
        return [sys.executable, "-m", "gunicorn", app, "--chdir", str(app_dir),
                "--worker-class", "gracekit.server.gunicorn.Worker", "--workers", "1",
                "--bind", f"127.0.0.1:{port}", "--no-control-socket"]  # fmt: skip
    raise ValueError(f"unknown launcher {launcher!r}")


@contextmanager
def run_uvicorn(
    app: str,
    *,
    app_dir: Path = EXAMPLES,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    ready_path: str = "/health/live",
    ready_statuses: Collection[int] = (200,),
    start_timeout: float = 20.0,
    launcher: str = "uvicorn",
    ready_port: int | None = None,
) -> Iterator[Server]:
    """Start ``APP`` under *launcher* ("uvicorn", "gracekit" for ``gracekit run``, or
    "gunicorn" with uvicorn workers) on a free port, and yield once *ready_path* answers with
    one of *ready_statuses* (on *ready_port*, a management port, if given). Leaving stops it
    with SIGINT if it still runs."""
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    command = [*_command(launcher, app, app_dir, port), *args]
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=ROOT,
        )
    server = Server(process, port, log_path)
    ready_url = f"http://127.0.0.1:{ready_port or port}{ready_path}"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{server.log()}")
        try:
            return httpx.get(ready_url, timeout=1).status_code in ready_statuses
        except httpx.TransportError:
            return False

    try:
        if not wait_until(answers, timeout=start_timeout):
            raise RuntimeError(f"uvicorn did not answer in {start_timeout} s:\n{server.log()}")
        yield server
    finally:
        stop(process)
        log_path.unlink(missing_ok=True)


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop *process* if it still runs: SIGINT (a gracekit app then skips its delay; the
    rollout simulator cleans up after itself), SIGKILL after *timeout* seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
