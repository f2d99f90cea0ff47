"""Server integration: taking over the server's SIGTERM/SIGINT handling, ``serve()`` and the
``gracekit`` command line.

:class:`Management` configures the management port. :func:`gracekit.serve` runs an app under
uvicorn; it is exported from the top level only, since here its name is its module's. Under
gunicorn, the worker class is ``gracekit.server.gunicorn.Worker`` (the ``gunicorn`` extra).
"""

from __future__ import annotations

from .management import Management as Management

__all__ = ["Management"]
