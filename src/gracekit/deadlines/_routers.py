"""What the routers of Starlette and FastAPI look like to the route table: the routes behind an
app's middleware, the leaves below mounts, hosts and included routers, which of them are
gracekit's own endpoints, and the paths a route template matches."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "find_routes",
    "is_container",
    "is_management_app",
    "leads_on",
    "pattern",
    "strip_convertors",
    "walk",
]


def find_routes(app: Any) -> Sequence[Any] | None:
    """The routes of *app*, found through the ``.app`` chain of its middleware, or None."""
    for _ in range(32):
        routes = getattr(app, "routes", None)
        if isinstance(routes, Sequence) and not isinstance(routes, (str, bytes)):
            return routes
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def is_management_app(app: Any) -> bool:
    """True for gracekit's own endpoints (probes, metrics), through a few wrappers."""
    for _ in range(8):
        if getattr(app, "gracekit_management", False) is True:
            return True
        app = getattr(app, "app", None)
        if app is None:
            return False
    return False


def _contexts(routes: Sequence[Any]) -> Iterator[tuple[Any, str | None]]:
    """Each route of a router with its path, FastAPI's included routers expanded."""
    fastapi_routing = sys.modules.get("fastapi.routing")
    expand = getattr(fastapi_routing, "iter_route_contexts", None)
    if expand is not None:
        # FastAPI >= 0.16x keeps included routers as such; a route included under two
        # prefixes is one object with two paths.
        for context in expand(routes):
            yield context.original_route, context.path
        return
    for route in routes:
        yield route, getattr(route, "path", None)


def is_container(route: Any) -> bool:
    """True for a route that only leads to others (a Mount with routes, a Host): the router
    below it sets ``scope["route"]`` again once it has matched the leaf."""
    if is_management_app(getattr(route, "app", None)):
        return False
    inner = getattr(route, "routes", None)
    return bool(inner) and not hasattr(route, "endpoint")


def leads_on(app: Any) -> bool:
    """True for a mounted app with a router of its own (the leaf is still to come)."""
    return not is_management_app(app) and bool(find_routes(app))


def walk(
    routes: Sequence[Any], prefix: str, containers: set[int]
) -> Iterator[tuple[Any, str, Any, bool]]:
    """(route, full template, endpoint, mounted) for every leaf route below *routes*; the ids
    of the routes that contain others, and of the apps they lead to, go into *containers*."""
    for route, path in _contexts(routes):
        if type(route).__name__ == "Host":
            containers.update((id(route), id(getattr(route, "app", None))))
            yield from walk(getattr(route, "routes", ()), prefix, containers)
            continue
        if path is None:
            continue
        full = prefix + path
        if is_container(route):
            containers.update((id(route), id(getattr(route, "app", None))))
            yield from walk(route.routes, full, containers)
        elif type(route).__name__ == "Mount" or hasattr(route, "routes"):
            # A mounted ASGI app without routes is one route; gracekit's are exempt.
            yield route, full, getattr(route, "app", None), True
        else:
            yield route, full, getattr(route, "endpoint", None), False


def strip_convertors(template: str) -> str:
    return re.sub(r"{([^}:]+)(:[^}]*)?}", r"{\1}", template)


def pattern(template: str, *, mounted: bool) -> re.Pattern[str]:
    """A regex matching the paths of *template* (``{name}`` and ``{name:path}`` segments);
    *mounted*: and the paths below it."""
    out, last = [], 0
    for match in re.finditer(r"{([^}:]+)(?::([^}]*))?}", template):
        out.append(re.escape(template[last : match.start()]))
        out.append(".*" if match.group(2) == "path" else "[^/]+")
        last = match.end()
    out.append(re.escape(template[last:]))
    return re.compile("".join(out) + ("(?:/.*)?$" if mounted else "$"))
