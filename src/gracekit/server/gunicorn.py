"""gunicorn with uvicorn workers: ``gunicorn -k gracekit.server.gunicorn.Worker MODULE:APP``.

The plain ``uvicorn_worker.UvicornWorker`` already runs gracekit's termination sequence: the
master forwards SIGTERM to the worker, whose uvicorn server the lifecycle takes over. This worker
adds two things. It tells the lifecycle the master's ``graceful_timeout`` (after which the master
SIGKILLs the worker), so startup warns when delay + drain + hooks do not fit in it. And it keeps
idle connections open at least as long as uvicorn does (5 s), where gunicorn's default is 2 s.
"""

from __future__ import annotations

import os
from typing import Any

from .._optional import require
from ..drain.timing import GRACE_PERIOD_VARIABLE

require("uvicorn_worker", extra="gunicorn", feature="gracekit.server.gunicorn")

from uvicorn_worker import UvicornWorker  # noqa: E402 - after the check that names the extra

__all__ = ["MIN_KEEP_ALIVE", "Worker"]

#: The shortest keep-alive timeout the worker uses, in seconds: uvicorn's default.
MIN_KEEP_ALIVE = 5


class Worker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker has no type information
    """A uvicorn worker that announces gunicorn's ``graceful_timeout`` as the grace period, and
    keeps idle keep-alive connections open for ``--keep-alive`` seconds, at least 5."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A proxy that reuses a connection the server is closing gets a reset: the server's
        # keep-alive must outlast the proxy's idle timeout, and gunicorn's 2 s rarely does.
        self.config.timeout_keep_alive = max(self.cfg.keepalive, MIN_KEEP_ALIVE)

    def init_process(self) -> None:
        os.environ.setdefault(GRACE_PERIOD_VARIABLE, str(self.cfg.graceful_timeout))
        super().init_process()
