"""Running an app under uvicorn with gracekit's termination sequence, and its exit status."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from .._optional import require
from . import _management_socket as management_socket
from ._signals import lifecycle_of
from .management import Management

__all__ = ["check_workers", "serve"]

logger = logging.getLogger("gracekit")


def serve(app: Any, **uvicorn_options: Any) -> int:
    """Run *app* under uvicorn until it is stopped, and return the exit status.

    *app* is an ASGI app or an import string (``"module:app"``, required with ``reload`` or
    ``workers``); *uvicorn_options* are ``uvicorn.Config``'s. The app's lifecycle takes over
    SIGTERM and SIGINT when its lifespan starts. Returns 0 after a clean shutdown, 3 if the
    drain timed out, 4 if a shutdown hook failed, 5 if both (see
    :attr:`gracekit.ShutdownReport.exit_status`); uvicorn alone would exit 143 by re-raising
    SIGTERM. With ``reload`` or several ``workers``, uvicorn's supervisor runs the servers and
    the status is its own.

    Raises:
        ImportError: uvicorn is not installed (``pip install 'gracekit[uvicorn]'``).
        ValueError: *app* is not an import string with ``reload`` or ``workers``; several
            ``workers`` with a management port set by ``GRACEKIT_MANAGEMENT_PORT`` (see
            :func:`check_workers`).
    """
    uvicorn = require("uvicorn", extra="uvicorn", feature="gracekit.serve")
    # --reload runs one worker process at a time, whatever --workers says.
    workers = 1 if uvicorn_options.get("reload") else (uvicorn_options.get("workers") or 1)
    check_workers(workers)
    if uvicorn_options.get("reload") or workers > 1:
        if not isinstance(app, str):
            raise ValueError("reload and workers need the app as an import string, 'module:app'")
        with _telling_workers(workers):
            uvicorn.run(app, **uvicorn_options)
        return 0
    with _telling_workers(1):
        server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options))
        server.run()
    if not server.started:
        logger.error("the server did not start")
        return 1
    lifecycle = lifecycle_of(server)
    if lifecycle is None:
        logger.warning("no gracekit lifecycle ran in this app: its lifespan is not installed")
        return 0
    return lifecycle.shutdown_report.exit_status


def check_workers(workers: int, environ: Mapping[str, str] = os.environ) -> None:
    """Refuse *workers* uvicorn worker processes (more than one) with a management port set by
    ``GRACEKIT_MANAGEMENT_PORT`` (``gracekit run --management-port``): each worker would bind
    it itself, and the second would fail to start. gunicorn's master binds it once for all.

    Raises:
        ValueError: they cannot share it (the message says what to run instead), or the
            variable is not a port number.
    """
    if workers <= 1:
        return
    config = Management.from_env(environ)
    if config is not None and config.port:
        raise ValueError(management_socket.workers_refusal(config.port, workers))


@contextlib.contextmanager
def _telling_workers(workers: int) -> Iterator[None]:
    """Tell the worker processes how many they are (a port from the code is refused in each
    when they are several), through the environment they inherit; restored afterwards."""
    variable = management_socket.WORKERS_VARIABLE
    before = os.environ.get(variable)
    os.environ[variable] = str(workers)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before
