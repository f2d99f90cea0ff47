"""Route deadlines: the ``@deadline`` decorator, and the table that gives each route its own.

The table is built once, at startup, by walking the application's routes (Starlette's
``Route``, ``Mount`` and ``Host``, FastAPI's path operations and included routers). A request
is matched to its route by the router itself, which the table reads after routing: Starlette
sets ``scope["route"]`` to the matched route object, and ``scope["endpoint"]`` to its endpoint
(a mount's: the mounted app). FastAPI's router sets only ``scope["endpoint"]`` for a mount, as
older Starlette does for every route; the table maps both to the route's template and its
deadline. Nothing is matched twice, and nothing in the application is changed.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import _validate
from ._routers import (
    find_routes,
    is_container,
    is_management_app,
    leads_on,
    pattern,
    strip_convertors,
    walk,
)

__all__ = [
    "ATTRIBUTE",
    "RouteInfo",
    "RouteTable",
    "checked_route_deadlines",
    "deadline",
    "find_routes",
]

#: Where ``@deadline`` keeps an endpoint's deadline.
ATTRIBUTE = "__gracekit_deadline__"

_T = TypeVar("_T")
_NO_OVERRIDE = object()


def deadline(seconds: float | None) -> Callable[[_T], _T]:
    """Give an endpoint its own deadline (``None``: no deadline), overriding the default.

    Works on Starlette endpoints (functions and ``HTTPEndpoint`` classes) and on FastAPI path
    operations, above or below ``@app.get(...)``: it marks the function and returns it
    unchanged::

        @app.get("/export")
        @deadline(300)
        async def export() -> dict[str, str]: ...

    Raises:
        TypeError, ValueError: *seconds* is not None or a finite number of seconds > 0.
    """
    budget = _validate.optional_seconds(seconds, what="deadline")

    def mark(endpoint: _T) -> _T:
        if not callable(endpoint):
            raise TypeError(f"@deadline() marks an endpoint, not {type(endpoint).__name__}")
        setattr(endpoint, ATTRIBUTE, budget)
        return endpoint

    return mark


@dataclass(frozen=True)
class RouteInfo:
    """A route as the deadlines see it.

    Attributes:
        template: the route's full path template (``/orders/{order_id}``), or None when no
            route matched (yet).
        budget: its deadline in seconds, or None for no deadline.
        exempt: True for gracekit's own endpoints (probes, metrics, the preStop hook), which
            never get a deadline (not even a caller's), are not counted in the request metrics
            and are not the application's requests in flight.
        routed: False while the router has not matched the request to a route (or when
            nothing matched: a 404); the default deadline applies then.
    """

    template: str | None
    budget: float | None
    exempt: bool = False
    routed: bool = True


@dataclass
class _Entry:
    route: Any
    templates: list[str]  # the full templates the route is reachable under, as written
    endpoint: Any  # what the router puts in scope["endpoint"]: a mount's is the mounted app
    exempt: bool
    mounted: bool  # a mounted app: its templates also match the paths below them
    infos: list[RouteInfo] | None = None
    patterns: list[re.Pattern[str]] | None = None  # when reachable under several templates


def _patterns(entry: _Entry) -> list[re.Pattern[str]]:
    return [pattern(t, mounted=entry.mounted) for t in entry.templates]


class RouteTable:
    """Every route of an application with its template and its deadline.

    Parameters:
        routes: the application's routes (see :func:`find_routes`), or None for an app
            without a router (every request then gets the default).
        default: the deadline of routes that set none, in seconds, or None.
        overrides: deadlines by route template (``{"/export": 300, "/stream": None}``);
            a mounted app's template is its mount path.

    Raises:
        ValueError: an override names a route that does not exist, or a route has a deadline
            from both ``@deadline`` and *overrides*.
    """

    def __init__(
        self,
        routes: Sequence[Any] | None,
        *,
        default: float | None,
        overrides: Mapping[str, float | None],
    ) -> None:
        self.default = default
        self._unrouted = RouteInfo(None, default, routed=False)
        self._by_route: dict[int, _Entry] = {}
        self._by_endpoint: dict[int, _Entry] = {}
        self._containers: set[int] = set()
        if overrides and routes is None:
            raise ValueError(
                "route_deadlines needs an application with routes (Starlette or FastAPI); "
                "none was found behind the middleware"
            )
        for route, template, endpoint, mounted in walk(routes or (), "", self._containers):
            entry = self._by_route.get(id(route))
            if entry is None:
                exempt = is_management_app(endpoint)
                entry = self._by_route[id(route)] = _Entry(route, [], endpoint, exempt, mounted)
            entry.templates.append(template)
        unused = self._apply(overrides)
        if unused:
            raise ValueError(self._unknown(unused))
        self._index_endpoints()
        budgets = [
            info.budget
            for entry in self._by_route.values()
            for info in entry.infos or ()
            if info.budget is not None and not info.exempt
        ]
        #: The shortest deadline any request can get from its route (inf if none).
        self.shortest = min([*budgets, math.inf if default is None else default])

    def _apply(self, overrides: Mapping[str, float | None]) -> list[str]:
        keys = {key: key for key in overrides}
        keys.update({strip_convertors(key): key for key in overrides})
        used: set[str] = set()
        for entry in self._by_route.values():
            decorated = getattr(entry.endpoint, ATTRIBUTE, _NO_OVERRIDE)
            entry.infos = []
            for template in entry.templates:
                label = strip_convertors(template)
                key = keys.get(template, keys.get(label))
                budget: Any = self.default
                if key is not None:
                    used.add(key)
                    if decorated is not _NO_OVERRIDE:
                        raise ValueError(
                            f"route {template!r} has a deadline from both @deadline() and "
                            "route_deadlines; keep one"
                        )
                    budget = overrides[key]
                elif decorated is not _NO_OVERRIDE:
                    budget = decorated
                entry.infos.append(RouteInfo(label, None if entry.exempt else budget, entry.exempt))
            if len(entry.templates) > 1:
                entry.patterns = _patterns(entry)
        return [key for key in overrides if key not in used]

    def _index_endpoints(self) -> None:
        """Find each route by its endpoint too; an endpoint of several routes (one app mounted
        twice) gets them all, told apart by the request's path."""
        shared: dict[int, list[_Entry]] = {}
        for entry in self._by_route.values():
            if entry.endpoint is not None:
                shared.setdefault(id(entry.endpoint), []).append(entry)
        for key, entries in shared.items():
            if len(entries) == 1:
                self._by_endpoint[key] = entries[0]
                continue
            first = entries[0]
            self._by_endpoint[key] = _Entry(
                None,
                [t for e in entries for t in e.templates],
                first.endpoint,
                first.exempt,
                first.mounted,
                [i for e in entries for i in e.infos or ()],
                [p for e in entries for p in _patterns(e)],
            )

    def _unknown(self, keys: list[str]) -> str:
        known = sorted({t for e in self._by_route.values() for t in e.templates})
        lines = []
        for key in keys:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"route_deadlines names {key!r}, which is not a route of the app{hint}")
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        return "; ".join(lines) + f" (its routes: {shown or 'none'})"

    @property
    def templates(self) -> list[str]:
        """Every route template, without convertors, sorted."""
        return sorted(
            {
                info.template
                for e in self._by_route.values()
                for info in e.infos or ()
                if info.template
            }
        )

    def resolve(self, scope: Mapping[str, Any]) -> RouteInfo:
        """The route *scope* was matched to; ``routed`` is False before routing or when
        nothing matched, and the default deadline applies."""
        route = scope.get("route")
        if route is None:
            return self._by_endpoint_of(scope)
        entry = self._by_route.get(id(route))
        if entry is not None:
            return self._info(entry, scope)
        if id(route) in self._containers or is_container(route):
            # A Mount or a Host: the leaf is still to come, or a router below it that sets
            # only scope["endpoint"] (FastAPI's, for its mounts) has found it.
            return self._by_endpoint_of(scope)
        # Added after startup, or below an app the walk cannot see.
        return self._unknown_route(route)

    def _by_endpoint_of(self, scope: Mapping[str, Any]) -> RouteInfo:
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return self._unrouted
        entry = self._by_endpoint.get(id(endpoint))
        if entry is not None:
            return self._info(entry, scope)
        if id(endpoint) in self._containers or leads_on(endpoint):
            return self._unrouted  # a mounted app whose router has not matched yet
        exempt = is_management_app(endpoint)
        return RouteInfo(
            None, None if exempt else getattr(endpoint, ATTRIBUTE, self.default), exempt
        )

    def _info(self, entry: _Entry, scope: Mapping[str, Any]) -> RouteInfo:
        infos = entry.infos or [RouteInfo(None, self.default)]
        if entry.patterns is not None:
            path = scope.get("path", "")
            # Mounts extend root_path; app_root_path keeps the application's own.
            root = scope.get("app_root_path", scope.get("root_path", ""))
            if root and path.startswith(root):
                path = path[len(root) :]
            for pattern, info in zip(entry.patterns, infos, strict=True):
                if pattern.match(path):
                    return info
        return infos[0]

    def _unknown_route(self, route: Any) -> RouteInfo:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        endpoint = getattr(route, "endpoint", None) or getattr(route, "app", None)
        budget = getattr(endpoint, ATTRIBUTE, self.default)
        exempt = is_management_app(endpoint)
        return RouteInfo(template, None if exempt else budget, exempt)


def checked_route_deadlines(
    value: Mapping[str, float | None] | None,
) -> dict[str, float | None]:
    """*value* (``route_deadlines=``) checked: route templates to seconds or None."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"route_deadlines must be a mapping, not {type(value).__name__}")
    checked: dict[str, float | None] = {}
    for template, seconds in value.items():
        if not isinstance(template, str) or not template.startswith("/"):
            raise ValueError(
                f"route_deadlines keys are route templates ('/path'), got {template!r}"
            )
        checked[template] = _validate.optional_seconds(
            seconds, what=f"route_deadlines[{template!r}]"
        )
    return checked
