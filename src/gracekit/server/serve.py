"""Running an app under uvicorn with gracekit's termination sequence, and its exit status."""

from __future__ import annotations

import logging
from typing import Any

from .._optional import require
from .signals import lifecycle_of

__all__ = ["serve"]

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
    """
    uvicorn = require("uvicorn", extra="uvicorn", feature="gracekit.serve")
    if uvicorn_options.get("reload") or (uvicorn_options.get("workers") or 1) > 1:
        if not isinstance(app, str):
            raise ValueError("reload and workers need the app as an import string, 'module:app'")
        uvicorn.run(app, **uvicorn_options)
        return 0
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
