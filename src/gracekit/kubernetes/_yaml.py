"""Reading and writing YAML, through PyYAML (the ``kubernetes`` extra), imported when used."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._optional import require
from .errors import InputError

__all__ = ["YamlError", "dump_all", "load_all"]


class YamlError(InputError):
    """Text that is not valid YAML; the message says where."""


def _yaml() -> Any:
    return require("yaml", extra="kubernetes", feature="gracekit's Kubernetes tools")


def load_all(text: str, *, source: str) -> list[Any]:
    """Every document of *text* (empty ones dropped), or :class:`YamlError` naming *source*."""
    yaml = _yaml()
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(f"{source}: not valid YAML{where}: {problem}") from None


def dump_all(documents: Iterable[Any]) -> str:
    """The documents as YAML, in the order given, keys in the order built."""
    yaml = _yaml()
    text: str = yaml.safe_dump_all(
        list(documents), sort_keys=False, default_flow_style=False, explicit_start=True
    )
    return text
