"""The public API, pinned in tests/public_api.txt so that a change to it is deliberate.

For each public package (and each optional-integration module a user imports by its path), the
snapshot lists its sorted ``__all__`` and, for each name, its kind and signature; for a class,
its constructor and its public methods, properties and annotated attributes; for an enum, its
members. When the API changes on purpose, regenerate the snapshot and commit it with the change:

    GRACEKIT_UPDATE_API=1 .venv/bin/python -m pytest tests/test_public_api.py

Only names reachable through ``__all__`` are described, and only by their own names (never the
internal module that defines them), so moving code between private modules changes nothing here.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import gracekit
from gracekit._registrar import registrar

SNAPSHOT = Path(__file__).with_name("public_api.txt")
UPDATE_VARIABLE = "GRACEKIT_UPDATE_API"
REGENERATE = f"{UPDATE_VARIABLE}=1 .venv/bin/python -m pytest tests/test_public_api.py"

# What a user imports: the packages, and the modules of the optional integrations (httpx, asyncpg,
# redis, OpenTelemetry, gunicorn), which the docs import by their path and no package re-exports.
PUBLIC_MODULES = (
    "gracekit",
    "gracekit.checks",
    "gracekit.deadlines",
    "gracekit.deadlines.http",
    "gracekit.deadlines.postgres",
    "gracekit.deadlines.redis",
    "gracekit.drain",
    "gracekit.events",
    "gracekit.events.otel",
    "gracekit.kubernetes",
    "gracekit.metrics",
    "gracekit.probes",
    "gracekit.rollout",
    "gracekit.server",
    "gracekit.server.gunicorn",
)

# Dunder methods that are part of what a class offers (an ASGI app is called, a context entered).
PUBLIC_DUNDERS = frozenset(
    {"__aenter__", "__aexit__", "__call__", "__enter__", "__exit__", "__iter__", "__len__"}
)

# "gracekit.events._bus.LifecycleEvent" -> "LifecycleEvent": where a name is defined is not API.
_QUALIFIED = re.compile(r"\bgracekit(?:\.\w+)*\.")


class _Text:
    """Shown as its text by ``inspect.Signature``'s formatting (no quotes, no address)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _annotation(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return _QUALIFIED.sub("", text)


def _value(value: Any) -> str:
    """A default or constant, without anything that changes from run to run."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, range)):
        return repr(value)
    if type(value).__name__ == "_HAS_DEFAULT_FACTORY_CLASS":
        return "<factory>"  # a dataclass field's default_factory, called for each instance
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(
            f"{field.name}={_value(getattr(value, field.name))}"
            for field in dataclasses.fields(value)
            if field.repr
        )
        return f"{type(value).__name__}({fields})"
    if inspect.isroutine(value):
        return f"<function {value.__name__}>"
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, tuple):
        items = ", ".join(_value(item) for item in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, (set, frozenset)):
        # Sorted: a set's order depends on string hashing, which changes from run to run.
        items = ", ".join(sorted(_value(item) for item in value))
        return f"{type(value).__name__}({{{items}}})"
    return f"<{type(value).__name__}>"


def _signature(func: Any, *, bound: bool = False) -> str:
    """*func*'s parameters and return annotation; *bound* drops ``self``/``cls``."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return "(...)"
    parameters = list(signature.parameters.values())
    if bound:
        parameters = parameters[1:]
    shown = [
        parameter.replace(
            annotation=(
                parameter.empty
                if parameter.annotation is parameter.empty
                else _Text(_annotation(parameter.annotation))
            ),
            default=(
                parameter.empty
                if parameter.default is parameter.empty
                else _Text(_value(parameter.default))
            ),
        )
        for parameter in parameters
    ]
    returns = signature.return_annotation
    return str(
        signature.replace(
            parameters=shown,
            return_annotation=(
                signature.empty if returns is signature.empty else _Text(_annotation(returns))
            ),
        )
    )


def _ours(cls: type) -> list[type]:
    """The classes of *cls*'s MRO that gracekit defines, base first."""
    return [klass for klass in reversed(cls.__mro__) if klass.__module__.startswith("gracekit")]


def _member(name: str, value: Any) -> str | None:
    if isinstance(value, property):
        fget = value.fget
        returns = inspect.signature(fget).return_annotation if fget is not None else None
        kind = "property" if value.fset is None else "settable property"
        shown = "" if returns in (None, inspect.Signature.empty) else f": {_annotation(returns)}"
        return f"{kind} {name}{shown}"
    if isinstance(value, functools.cached_property):
        returns = inspect.signature(value.func).return_annotation
        return f"cached property {name}: {_annotation(returns)}"
    if isinstance(value, staticmethod):
        return f"staticmethod {name}{_signature(value.__func__)}"
    if isinstance(value, classmethod):
        return f"classmethod {name}{_signature(value.__func__, bound=True)}"
    if isinstance(value, registrar):  # @x, @x(...) and x(func, ...) alike

        def shown() -> None: ...

        shown.__signature__ = value.__signature__  # type: ignore[attr-defined]
        return f"registrar {name}{_signature(shown)}"
    if inspect.isfunction(value):
        kind = "async method" if inspect.iscoroutinefunction(value) else "method"
        return f"{kind} {name}{_signature(value, bound=True)}"
    if isinstance(value, type):
        return f"class {name}"
    if inspect.ismemberdescriptor(value):
        return f"attribute {name}"  # a slot
    if isinstance(value, enum.Enum):
        return None  # listed with the enum's members
    return f"attribute {name} = {_value(value)}"


def _describe_class(name: str, cls: type) -> list[str]:
    bases = ", ".join(base.__name__ for base in cls.__bases__ if base is not object)
    if issubclass(cls, BaseException):
        kind = "exception"
    elif issubclass(cls, enum.Enum):
        kind = "enum"
    elif getattr(cls, "_is_protocol", False):
        kind = "protocol"
    elif dataclasses.is_dataclass(cls):
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        kind = "frozen dataclass" if params.frozen else "dataclass"
    else:
        kind = "class"
    lines = [f"{kind} {name}" + (f"({bases})" if bases else "")]
    if issubclass(cls, enum.Enum):
        lines += [f"    {member.name} = {member.value!r}" for member in cls]
    ours = _ours(cls)
    constructor = next(
        (klass for klass in cls.__mro__ if "__init__" in vars(klass) or "__new__" in vars(klass)),
        object,
    )
    if constructor in ours and not issubclass(cls, enum.Enum):
        lines.append(f"    __init__{_signature(cls)}")
    members: dict[str, str] = {}
    for klass in ours:
        for attribute, annotation in vars(klass).get("__annotations__", {}).items():
            if not attribute.startswith("_"):
                members[attribute] = f"attribute {attribute}: {_annotation(annotation)}"
        for attribute, value in vars(klass).items():
            public = not attribute.startswith("_") or attribute in PUBLIC_DUNDERS
            if not public or (attribute in members and not callable(value)):
                continue
            shown = _member(attribute, value)
            if shown is not None:
                members[attribute] = shown
    lines += [f"    {members[attribute]}" for attribute in sorted(members)]
    return lines


def describe(name: str, value: Any) -> list[str]:
    """The lines that describe one exported *name*."""
    if isinstance(value, type):
        return _describe_class(name, value)
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        kind = "async function" if inspect.iscoroutinefunction(value) else "function"
        return [f"{kind} {name}{_signature(value)}"]
    if isinstance(value, ModuleType):
        return [f"module {name}"]
    if getattr(value, "__module__", None) in ("typing", "collections.abc") or hasattr(
        value, "__origin__"
    ):
        return [f"type alias {name} = {_annotation(value)}"]
    if callable(value):
        return [f"callable {name}{_signature(value)}"]
    return [f"constant {name}: {type(value).__name__} = {_value(value)}"]


def render() -> str:
    """The public API as text, one block per public module."""
    blocks = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        exported = list(module.__all__)
        lines = [f"== {module_name}", f"__all__ = {sorted(exported)}"]
        for name in sorted(exported):
            lines += describe(name, getattr(module, name))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def test_public_api_matches_the_snapshot() -> None:
    current = render()
    if os.environ.get(UPDATE_VARIABLE):
        SNAPSHOT.write_text(current, encoding="utf-8")
        pytest.skip(f"rewrote {SNAPSHOT.name} ({UPDATE_VARIABLE} is set): review and commit it")
    pinned = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if current != pinned:
        diff = "".join(
            difflib.unified_diff(
                pinned.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=f"tests/{SNAPSHOT.name} (pinned)",
                tofile="the code (now)",
            )
        )
        pytest.fail(
            f"The public API changed:\n\n{diff}\n"
            f"If the change is deliberate, regenerate the snapshot and commit it with the "
            f"change:\n\n    {REGENERATE}\n",
            pytrace=False,
        )


def test_snapshot_is_the_same_in_another_process() -> None:
    # Another interpreter, another string hash seed, other addresses: the text must not move.
    code = "from tests.test_public_api import render; import sys; sys.stdout.write(render())"
    root = Path(__file__).resolve().parents[1]
    environ = {**os.environ, "PYTHONHASHSEED": "12345"}
    environ.pop(UPDATE_VARIABLE, None)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == render()


def test_snapshot_shows_no_address() -> None:
    text = render()
    assert not re.search(r"0x[0-9a-fA-F]{4,}", text)
    assert " object at " not in text


def test_snapshot_names_no_private_module() -> None:
    # Where a public name is defined may change; the snapshot must not say.
    described = [line for line in render().splitlines() if not line.startswith("== ")]
    assert described
    assert not [line for line in described if re.search(r"\bgracekit\.\w", line)]


def test_every_public_package_is_pinned_and_in_the_reference() -> None:
    # A new public package must join the snapshot and docs/reference.md (and vice versa).
    packages = {"gracekit"} | {
        info.name
        for info in pkgutil.walk_packages(gracekit.__path__, "gracekit.")
        if info.ispkg and not any(part.startswith("_") for part in info.name.split("."))
    }
    assert packages <= set(PUBLIC_MODULES)
    reference = (Path(__file__).resolve().parents[1] / "docs" / "reference.md").read_text()
    documented = re.findall(r"^::: (\S+)$", reference, flags=re.MULTILINE)
    assert sorted(documented) == sorted(PUBLIC_MODULES)
