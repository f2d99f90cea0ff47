"""``gracekit run``: an ASGI app under uvicorn with the graceful termination sequence."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from .. import _validate
from ..drain.timing import ENVIRONMENT_VARIABLES
from .management import MANAGEMENT_PORT_VARIABLE

__all__ = ["port", "register", "seconds"]


#: prometheus_client's directory for values shared by worker processes.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _delay(text: str) -> str:
    return "auto" if text == "auto" else repr(seconds(text))


def register(commands: Any) -> None:
    """Add ``run`` to the subcommands."""
    run = commands.add_parser(
        "run",
        help="run an ASGI app under uvicorn with the graceful termination sequence",
        description=(
            "Run MODULE:APP under uvicorn. SIGTERM fails readiness at once, keeps serving for "
            "the shutdown delay, then drains; the exit status is 0 after a clean shutdown, "
            "3 if the drain timed out, 4 if a shutdown hook failed, 5 if both."
        ),
    )
    run.add_argument("app", metavar="MODULE:APP", help="the ASGI app, as an import string")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=None)
    run.add_argument("--app-dir", default="", help="directory added to sys.path first")
    run.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    run.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=True)
    run.add_argument("--root-path", default="")
    run.add_argument(
        "--lifespan",
        default="on",
        choices=["auto", "on", "off"],
        help=(
            "on (default): a failing startup stops the server (uvicorn's auto would serve "
            "without the lifespan, and without gracekit)"
        ),
    )
    run.add_argument("--factory", action="store_true", help="APP is a factory to call")
    run.add_argument("--reload", action="store_true", help="development: restart on changes")
    run.add_argument(
        "--shutdown-delay",
        type=_delay,
        help=(
            "seconds to keep serving after SIGTERM, or 'auto': the app's delay inside "
            "Kubernetes and none elsewhere (env GRACEKIT_SHUTDOWN_DELAY)"
        ),
    )
    run.add_argument(
        "--drain-timeout",
        type=seconds,
        help="seconds to wait for in-flight work once accepting stops (env GRACEKIT_DRAIN_TIMEOUT)",
    )
    run.add_argument(
        "--management-port",
        type=port,
        help=(
            "serve the probes, /metrics and the preStop hook on this port too, apart from the "
            "app (env GRACEKIT_MANAGEMENT_PORT)"
        ),
    )
    run.set_defaults(handler=_run)


def port(text: str) -> int:
    """An argparse type: a port number from 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    try:
        return _validate.port(value, what="port")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, got {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    # The timings travel as environment variables, so worker processes (--workers, --reload)
    # see them too; the app's lifecycle reads them when the server starts.
    if args.shutdown_delay is not None:
        os.environ[ENVIRONMENT_VARIABLES["delay"]] = args.shutdown_delay
    if args.drain_timeout is not None:
        os.environ[ENVIRONMENT_VARIABLES["drain_timeout"]] = repr(args.drain_timeout)
    if args.management_port is not None:
        os.environ[MANAGEMENT_PORT_VARIABLE] = str(args.management_port)
    if args.app_dir:
        sys.path.insert(0, os.path.abspath(args.app_dir))
    elif "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from .serve import check_workers, serve

    try:
        check_workers(1 if args.reload else (args.workers or 1))
    except ValueError as exc:
        print(f"gracekit run: {exc}", file=sys.stderr)
        return 2
    with _shared_metrics((args.workers or 1) > 1):
        return _serve(serve, args)


@contextlib.contextmanager
def _shared_metrics(workers: bool) -> Iterator[None]:
    """With several workers, give prometheus_client a fresh directory to share values through
    (its multiprocess mode), unless one is set already; it is removed when the server stops."""
    if not workers or os.environ.get(MULTIPROCESS_VARIABLE):
        yield
        return
    if importlib.util.find_spec("prometheus_client") is None:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="gracekit-metrics-") as directory:
        os.environ[MULTIPROCESS_VARIABLE] = directory
        print(f"gracekit: {MULTIPROCESS_VARIABLE}={directory} (metrics shared by the workers)")
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_VARIABLE]


def _serve(serve: Any, args: argparse.Namespace) -> int:
    status: int = serve(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=args.proxy_headers,
        root_path=args.root_path,
        lifespan=args.lifespan,
        factory=args.factory,
        reload=args.reload,
    )
    return status
