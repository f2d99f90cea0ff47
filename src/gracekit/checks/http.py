"""HTTP dependency check through httpx: a request whose status must be one of a set."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import _validate
from .._optional import require
from ..errors import CheckFailed
from ..probes.check import Check
from ._common import close_bounded

if TYPE_CHECKING:
    import httpx

__all__ = ["http_check"]


def http_check(
    url: str,
    *,
    name: str | None = None,
    expected_status: Collection[int] = range(200, 300),
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    **options: Any,
) -> Check:
    """A check that passes when *url* answers with one of *expected_status*.

    Parameters:
        url: an ``http://`` or ``https://`` URL.
        name: the check's name; default the URL's host name.
        expected_status: the statuses that pass (default 2xx; redirects are not followed).
        method: the request method.
        headers: extra request headers.
        client: an ``httpx.AsyncClient`` to reuse; by default each run uses a new one.
        options: the other settings of :class:`~gracekit.Check`.

    Raises:
        ImportError: httpx is not installed (``pip install 'gracekit[http]'``).
        ValueError: a URL that is not http(s), or an empty status set.
    """
    driver = require("httpx", extra="http", feature="gracekit.checks.http")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"http_check() needs an http:// or https:// URL, got {url!r}")
    statuses = frozenset(expected_status)
    if not statuses or not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
        raise ValueError("expected_status must be a non-empty collection of HTTP status codes")
    check_name = _validate.name(name or parts.hostname, what="check name")
    request_headers = dict(headers or {})

    async def request(http: httpx.AsyncClient) -> dict[str, object]:
        response = await http.request(method, url, headers=request_headers)
        if response.status_code not in statuses:
            raise CheckFailed(f"{method} {url} answered {response.status_code}")
        return {"status": response.status_code}

    if client is not None:
        if not isinstance(client, driver.AsyncClient):
            raise TypeError(f"client must be an httpx.AsyncClient, not {type(client).__name__}")
        existing = client

        async def run() -> dict[str, object]:
            return await request(existing)

    else:

        async def run() -> dict[str, object]:
            http = driver.AsyncClient(follow_redirects=False)
            try:
                return await request(http)
            finally:
                await close_bounded(http.aclose)

    check = Check(check_name, run, **options)
    check.secrets.add(url)  # the URL's credentials, which its error texts may repeat
    return check
