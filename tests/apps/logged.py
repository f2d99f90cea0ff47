"""A small app that configures logging as LOGGING says, to count gracekit's lines under each
server: "none" (the app configures nothing), "basic" (``logging.basicConfig``, the docs' recipe),
"handler" (a handler of its own on the ``gracekit`` logger). No shutdown delay."""

from __future__ import annotations

import logging
import os

from starlette.applications import Starlette
from starlette.routing import Mount

from gracekit import Lifecycle, ProbeApp, ShutdownTiming

FORMAT = "%(levelname)s %(name)s: %(message)s"

how = os.environ.get("LOGGING", "none")
if how == "basic":
    logging.basicConfig(level=logging.INFO, format=FORMAT)
elif how == "handler":
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger("gracekit").addHandler(handler)
    logging.getLogger("gracekit").setLevel(logging.INFO)

lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0, drain_timeout=1, hook_timeout=1))
app = Starlette(routes=[Mount("/health", app=ProbeApp(lifecycle))], lifespan=lifecycle.lifespan())
