"""Reading the time budget a caller sends with a request.

Three headers carry one: Envoy's ``x-envoy-expected-rq-timeout-ms`` (whole milliseconds), gRPC's
``grpc-timeout`` (1 to 8 digits and a unit: ``H M S m u n``), and gracekit's own
``x-gracekit-budget-ms`` (whole milliseconds, what gracekit sends downstream). A header that is
malformed, negative, absurdly large or present more than once is ignored: a budget can only
shorten a route's own deadline, so ignoring a bad one is always safe, and it never turns into
an error response.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["BUDGET_HEADERS", "MAX_BUDGET", "inbound_budget", "parse_grpc_timeout", "parse_ms"]

ENVOY = b"x-envoy-expected-rq-timeout-ms"
GRPC = b"grpc-timeout"
GRACEKIT = b"x-gracekit-budget-ms"
BUDGET_HEADERS = (ENVOY, GRPC, GRACEKIT)

#: Budgets longer than this (seconds) are nonsense, not intent: they are ignored.
MAX_BUDGET = 24 * 3600.0

_GRPC_UNITS = {
    ord("H"): 3600.0,
    ord("M"): 60.0,
    ord("S"): 1.0,
    ord("m"): 1e-3,
    ord("u"): 1e-6,
    ord("n"): 1e-9,
}


def _digits(value: bytes, most: int) -> int | None:
    # bytes.isdigit() is ASCII-only, unlike str.isdigit(), which also accepts "²" or "٣".
    if not value or len(value) > most or not value.isdigit():
        return None
    return int(value)


def parse_ms(value: bytes) -> float | None:
    """Seconds from a whole number of milliseconds (``"1500"``), or None if it is not one."""
    number = _digits(value.strip(), 12)
    if number is None:
        return None
    seconds = number / 1000
    return seconds if seconds <= MAX_BUDGET else None


def parse_grpc_timeout(value: bytes) -> float | None:
    """Seconds from a gRPC ``grpc-timeout`` value (``"250m"``, ``"1S"``), or None."""
    value = value.strip()
    if len(value) < 2:
        return None
    unit = _GRPC_UNITS.get(value[-1])
    number = _digits(value[:-1], 8)
    if unit is None or number is None:
        return None
    seconds = number * unit
    return seconds if seconds <= MAX_BUDGET else None


_PARSERS = {ENVOY: parse_ms, GRPC: parse_grpc_timeout, GRACEKIT: parse_ms}


def inbound_budget(headers: Iterable[tuple[bytes, bytes]]) -> float | None:
    """The shortest valid budget (seconds) among an ASGI scope's headers, or None.

    A header that appears more than once is ignored altogether: which copy to believe is not
    ours to guess.
    """
    found = None  # allocated only for a request that carries a budget header
    for header in headers:
        if header[0] in _PARSERS:
            if found is None:
                found = [header]
            else:
                found.append(header)
    if found is None:
        return None
    seen: dict[bytes, float | None] = {}
    duplicated: set[bytes] = set()
    for name, value in found:
        if name in seen:
            duplicated.add(name)
        seen[name] = _PARSERS[name](value)
    budgets = [b for name, b in seen.items() if b is not None and name not in duplicated]
    return min(budgets) if budgets else None
