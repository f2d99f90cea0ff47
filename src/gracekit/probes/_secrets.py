"""Keeping the secrets a check knows out of everything that leaves the process.

A check's error text reaches the probes' ``?verbose`` answers, the log, the lifecycle events and
their spans. When a check connects with a URL or DSN whose password holds an unencoded reserved
character, the driver's parse error can repeat part of it: asyncpg says ``invalid literal for
int() with base 10: 'Hunter2'`` for ``postgresql://app:Hunter2/x@db/orders``, redis-py ``Port
could not be cast to integer value as 'Hunter2'``. So each check carries the secrets it knows
(:class:`Secrets`), and the runner redacts the error text once, before anything stores, logs or
emits it.

A secret is hidden whole, and so is every piece of it that a parser could cut out: any part that
starts and ends at a reserved character (or at the secret's ends) and holds at least
:data:`MIN_FRAGMENT` other characters. Shorter pieces are left alone, since they would match
everywhere; so is a URL's host, port, path and user name, which make the error readable.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

__all__ = ["MASK", "MIN_FRAGMENT", "Secrets", "url_secrets"]

#: What a secret is replaced with.
MASK = "***"
#: Pieces of a secret with fewer characters than this (reserved ones not counted) are not hidden.
MIN_FRAGMENT = 3
#: Where URL parsers cut: RFC 3986's delimiters, "%" and whitespace.
_DELIMITERS = frozenset("/#?@:%[]!$&'()*+,;= \t\r\n\\\"")
#: Query parameters whose values are credentials (``?password=...``, ``?access_token=...``).
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|credential|sig", re.IGNORECASE)
#: Beyond this many cut points, only the pieces between neighbouring ones are hidden.
_MAX_CUTS = 48


def url_secrets(url: str) -> tuple[list[str], list[str]]:
    """The secret parts of a URL or DSN, as ``(whole, cuttable)``: its userinfo
    (``user:password``) is hidden whole; its password (or the user name when there is no
    password: a token), and the values of query parameters that carry credentials, are hidden
    with their pieces. The user name alone is not a secret, and stays readable in errors.

    The URL is read leniently: the userinfo ends at the last ``@``, so a password with
    unencoded ``/ # ? @ :`` (which standard parsers cut in the wrong place) is found whole.
    """
    _, separator, rest = url.partition("://")
    if not separator:
        return [], []
    whole, cuttable = [], []
    userinfo, at, location = rest.rpartition("@")
    if not at:
        location = rest
    elif userinfo:
        user, colon, password = userinfo.partition(":")
        if colon and password:
            whole.append(userinfo)
            cuttable.append(password)
        else:
            cuttable.append(user)
    query = location.partition("?")[2].partition("#")[0]
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and _SECRET_PARAMETER.search(unquote(name)):
            cuttable.append(value)
    return whole, cuttable


def _forms(secret: str) -> set[str]:
    """How a secret may be written in an error: as given, percent-decoded (drivers unquote a
    URL's password), percent-encoded, or escaped by ``repr``."""
    forms = {secret, unquote(secret), quote(secret, safe="")}
    forms.add(repr(secret)[1:-1])
    return forms


def _fragments(text: str) -> set[str]:
    """*text* and every part of it that starts and ends at a cut point, long enough to hide."""
    cuts = {0, len(text)}
    for index, char in enumerate(text):
        if char in _DELIMITERS:
            cuts.update((index, index + 1))
    points = sorted(cuts)
    if len(points) > _MAX_CUTS:
        pairs: Iterable[tuple[int, int]] = [(0, len(text)), *itertools.pairwise(points)]
    else:
        pairs = ((a, b) for i, a in enumerate(points) for b in points[i + 1 :])
    found = set()
    for start, end in pairs:
        piece = text[start:end]
        if sum(char not in _DELIMITERS for char in piece) >= MIN_FRAGMENT:
            found.add(piece)
    return found


class Secrets:
    """The secrets one check knows, and the redaction of its error texts.

    Parameters:
        values: secrets (passwords, tokens), or URLs and DSNs: a value with ``://`` in it is
            read as a URL, and only its secret parts are kept (see :func:`url_secrets`).

    A check learns more while it runs (a pool created after the check was, say) through
    :meth:`add`. The values are never shown, not even by ``repr``.
    """

    __slots__ = ("_fragments", "_pattern")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._fragments: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        if isinstance(values, str):
            raise TypeError("secrets must be an iterable of str, not a single str")
        self.add(*values)

    def add(self, *values: str | None) -> None:
        """Hide these too (None is skipped, for a setting that may be unset)."""
        fresh = set()
        for value in values:
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(f"a secret must be a str, not {type(value).__name__}")
            whole, cuttable = url_secrets(value) if "://" in value else ([], [value])
            for secret in whole:
                fresh |= _forms(secret)
            for secret in cuttable:
                for form in _forms(secret):
                    fresh |= _fragments(form)
        fresh -= self._fragments
        if fresh:
            self._fragments |= fresh
            # Longest first: the regex takes the first alternative that matches at a position.
            ordered = sorted(self._fragments, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def redact(self, text: str) -> str:
        """*text* with every secret, and every piece of one long enough to matter, masked."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:
        return f"<Secrets: {len(self._fragments)} patterns hidden>"
