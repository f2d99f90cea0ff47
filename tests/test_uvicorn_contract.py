"""What gracekit relies on in uvicorn (see gracekit/server/uvicorn.py): if a release removes or
changes one of these, this file fails before users find out."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from gracekit.server.uvicorn import UvicornControl, find_server

ROOT = Path(__file__).resolve().parents[1]


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_installed_uvicorn_is_in_the_pinned_range() -> None:
    pin = re.search(
        r'uvicorn = \["uvicorn>=([\d.]+),<([\d.]+)"\]', (ROOT / "pyproject.toml").read_text()
    )
    assert pin is not None, "the uvicorn extra must pin a range: >=LOW,<HIGH"
    assert version(pin.group(1)) <= version(uvicorn.__version__) < version(pin.group(2))


def test_capture_signals_registers_the_servers_bound_handle_exit() -> None:
    server = uvicorn.Server(uvicorn.Config(Starlette()))
    before = signal.getsignal(signal.SIGTERM)
    with server.capture_signals():
        for signum in (signal.SIGTERM, signal.SIGINT):
            handler = signal.getsignal(signum)
            assert getattr(handler, "__self__", None) is server
            assert getattr(handler, "__name__", None) == "handle_exit"
        assert find_server(signal.getsignal(signal.SIGTERM)) is server
    assert signal.getsignal(signal.SIGTERM) == before


def test_find_server_ignores_other_handlers() -> None:
    assert find_server(signal.SIG_DFL) is None
    assert find_server(print) is None

    class NotUvicorn:
        def handle_exit(self, signum: int, frame: object) -> None: ...

    assert find_server(NotUvicorn().handle_exit) is None


def test_the_flags_and_settings_gracekit_sets_exist() -> None:
    server = uvicorn.Server(uvicorn.Config(Starlette()))
    assert server.should_exit is False
    assert server.force_exit is False
    assert server.config.reload is False
    assert server.config.timeout_graceful_shutdown is None
    control = UvicornControl(server)
    control.bound_graceful_wait(7.5)
    assert server.config.timeout_graceful_shutdown == 7.5
    control.bound_graceful_wait(99)
    assert server.config.timeout_graceful_shutdown == 7.5, "a user's own setting wins"
    control.stop_accepting()
    assert (server.should_exit, server.force_exit) == (True, False)
    control.force_exit()
    assert server.force_exit is True


def test_shutdown_reads_the_graceful_timeout_when_it_runs() -> None:
    # gracekit sets timeout_graceful_shutdown after the server started; uvicorn must read it
    # at shutdown, not copy it at startup.
    source = Path(uvicorn.server.__file__).read_text()
    assert "timeout=self.config.timeout_graceful_shutdown" in source
