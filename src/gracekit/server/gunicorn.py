"""gunicorn with uvicorn workers: ``gunicorn -k gracekit.server.gunicorn.Worker MODULE:APP``.

The plain ``uvicorn_worker.UvicornWorker`` already runs gracekit's termination sequence: the
master forwards SIGTERM to the worker, whose uvicorn server the lifecycle takes over. This worker
adds one thing: it tells the lifecycle the master's ``graceful_timeout`` (after which the master
SIGKILLs the worker), so startup warns when delay + drain + hooks do not fit in it.
"""

from __future__ import annotations

import os

from .._optional import require
from ..drain.timing import GRACE_PERIOD_VARIABLE

require("uvicorn_worker", extra="gunicorn", feature="gracekit.server.gunicorn")

from uvicorn_worker import UvicornWorker  # noqa: E402 - after the check that names the extra

__all__ = ["Worker"]


class Worker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker has no type information
    """A uvicorn worker that announces gunicorn's ``graceful_timeout`` as the grace period."""

    def init_process(self) -> None:
        os.environ.setdefault(GRACE_PERIOD_VARIABLE, str(self.cfg.graceful_timeout))
        super().init_process()
