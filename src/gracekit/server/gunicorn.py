"""gunicorn with uvicorn workers: ``gunicorn -k gracekit.server.gunicorn.Worker MODULE:APP``.

The plain ``uvicorn_worker.UvicornWorker`` already runs gracekit's termination sequence: the
master forwards SIGTERM to the worker, whose uvicorn server the lifecycle takes over. This worker
adds what only gunicorn knows:

- the master's ``graceful_timeout`` (after which it SIGKILLs the worker) as the grace period,
  so startup warns when delay + drain + hooks do not fit in it;
- idle keep-alive connections stay open at least as long as uvicorn keeps them (5 s), where
  gunicorn's default is 2 s: the server's keep-alive must outlast the proxy's idle timeout;
- the address gunicorn binds, which the management port follows (uvicorn's own config does not
  show it under gunicorn);
- one management socket for all the workers: with ``GRACEKIT_MANAGEMENT_PORT`` set, the master
  binds it before it forks them, and each worker serves it on its own event loop (without the
  variable, each worker binds the code's port itself, and a second worker fails to start).
"""

from __future__ import annotations

import os
from typing import Any

from .._optional import require
from .._settings import GRACE_PERIOD_VARIABLE, Settings
from . import _management_socket as management_socket
from .management import Management

require("uvicorn_worker", extra="gunicorn", feature="gracekit.server.gunicorn")

from uvicorn_worker import UvicornWorker  # noqa: E402 - after the check that names the extra

__all__ = ["MIN_KEEP_ALIVE", "Worker"]

#: The shortest keep-alive timeout the worker uses, in seconds: uvicorn's default.
MIN_KEEP_ALIVE = 5


def _bind_host(addresses: Any) -> str | None:
    """The host of gunicorn's first TCP address (``cfg.address``, or listeners' ``cfg_addr``)."""
    for address in addresses or ():
        address = getattr(address, "cfg_addr", address)
        if isinstance(address, tuple) and address:
            return str(address[0]) or "0.0.0.0"
    return None


class Worker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker has no type information
    """A uvicorn worker that tells gracekit what gunicorn knows (see the module), and keeps
    idle keep-alive connections open for ``--keep-alive`` seconds, at least 5."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A proxy that reuses a connection the server is closing gets a reset: the server's
        # keep-alive must outlast the proxy's idle timeout, and gunicorn's 2 s rarely does.
        self.config.timeout_keep_alive = max(self.cfg.keepalive, MIN_KEEP_ALIVE)

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Called in the master before it forks: bind the management port once for all."""
        config = Management.from_env(os.environ)
        if config is None or not config.port:
            return
        host = Settings().management_host() or _bind_host(cfg.address)
        sock = management_socket.bind(host or management_socket.LOOPBACK, config.port)
        management_socket.share(sock)
        log.info("gracekit: management port %s:%d, shared by the workers", host, config.port)

    def init_process(self) -> None:
        os.environ.setdefault(GRACE_PERIOD_VARIABLE, str(self.cfg.graceful_timeout))
        management_socket.set_server_host(_bind_host(self.sockets))
        super().init_process()
