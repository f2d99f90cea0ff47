"""Reading a container spec: its environment, the server its command starts, its probes and
its preStop hook, each reduced to the few facts the doctor's rules compare with the app.

Manifests are user input: every accessor here tolerates missing fields and wrong types, and
answers None rather than raising.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANY_HOST",
    "Endpoint",
    "PreStopHook",
    "ServerCommand",
    "literal_env",
    "mapping",
    "parse_command",
    "prestop_hook",
    "probe_endpoint",
    "resolve_port",
]

#: The addresses that listen on every interface, the pod's IP among them.
ANY_HOST = ("0.0.0.0", "::", "[::]")
_DEFAULT_HOST = "127.0.0.1"
_DEFAULT_PORT = 8000
_PYTHONS = ("python", "python3")


def mapping(value: object) -> Mapping[str, Any]:
    """*value* if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def literal_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's ``env`` entries that have a literal ``value`` (``valueFrom`` ones,
    from Secrets and ConfigMaps, cannot be known from the manifest)."""
    env = container.get("env")
    values: dict[str, str] = {}
    for entry in env if isinstance(env, list) else ():
        entry = mapping(entry)
        name, value = entry.get("name"), entry.get("value")
        if isinstance(name, str) and value is not None:
            values[name] = str(value)
    return values


@dataclass(frozen=True)
class ServerCommand:
    """What a recognised server command line says about the process."""

    server: str  # "gracekit run", "uvicorn" or "gunicorn"
    host: str
    port: int | None  # None when the port is not a number
    shutdown_delay: float | None = None  # gracekit run --shutdown-delay (None: not given)
    drain_timeout: float | None = None
    via_shell: bool = False  # run by ``sh -c`` without ``exec``: sh is PID 1
    management_port: int | None = None  # gracekit run --management-port (None: not given)


def _options(tokens: Sequence[str]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` (and ``-b value``) pairs, the last one winning."""
    options: dict[str, str] = {}
    for index, token in enumerate(tokens):
        if not token.startswith("-"):
            continue
        if "=" in token:
            name, _, value = token.partition("=")
            options[name] = value
        elif index + 1 < len(tokens) and not tokens[index + 1].startswith("-"):
            options[token] = tokens[index + 1]
    return options


def _number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _port(text: str | None, default: int) -> int | None:
    if text is None:
        return default
    return int(text) if text.isdigit() else None


def _optional_port(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def parse_command(words: Sequence[object]) -> ServerCommand | None:
    """The server a container's ``command`` + ``args`` start, if gracekit knows it:
    ``gracekit run``, ``uvicorn`` or ``gunicorn`` (directly, through ``python -m``, or through
    ``sh -c``). None for anything else."""
    tokens = [str(word) for word in words]
    via_shell = False
    if len(tokens) >= 3 and os.path.basename(tokens[0]) in ("sh", "bash") and tokens[1] == "-c":
        try:
            tokens = shlex.split(tokens[2])
        except ValueError:
            return None
        via_shell = not tokens or tokens[0] != "exec"
        tokens = tokens[1:] if tokens and tokens[0] == "exec" else tokens
    if len(tokens) >= 2 and os.path.basename(tokens[0]).startswith(_PYTHONS) and tokens[1] == "-m":
        tokens = tokens[2:]
    if not tokens:
        return None
    program = os.path.basename(tokens[0])
    options = _options(tokens[1:])
    if program == "gracekit" and tokens[1:2] == ["run"]:
        delay = options.get("--shutdown-delay")
        return ServerCommand(
            "gracekit run",
            options.get("--host", _DEFAULT_HOST),
            _port(options.get("--port"), _DEFAULT_PORT),
            shutdown_delay=None if delay == "auto" else _number(delay),
            drain_timeout=_number(options.get("--drain-timeout")),
            via_shell=via_shell,
            management_port=_optional_port(options.get("--management-port")),
        )
    if program == "uvicorn":
        return ServerCommand(
            "uvicorn",
            options.get("--host", _DEFAULT_HOST),
            _port(options.get("--port"), _DEFAULT_PORT),
            via_shell=via_shell,
        )
    if program == "gunicorn":
        bind = options.get("--bind", options.get("-b", f"{_DEFAULT_HOST}:{_DEFAULT_PORT}"))
        host, _, port = bind.rpartition(":")
        return ServerCommand(
            "gunicorn", host or _DEFAULT_HOST, _port(port, _DEFAULT_PORT), via_shell=via_shell
        )
    return None


@dataclass(frozen=True)
class Endpoint:
    """Where a probe or hook handler goes: its kind and, for ``httpGet``, path and port."""

    kind: str  # "httpGet", "tcpSocket", "exec", "grpc", "sleep" or "" (no handler)
    path: str | None = None  # without the query string
    query: str = ""
    port: object = None  # an int, a port name, or None
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()

    def same_target(self, other: Endpoint) -> bool:
        """True when both handlers ask the same thing of the container."""
        return (self.kind, self.path, self.query, self.port, self.command) == (
            other.kind,
            other.path,
            other.query,
            other.port,
            other.command,
        )


_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc", "sleep")


def probe_endpoint(handler: Mapping[str, Any]) -> Endpoint:
    """The handler of a probe or lifecycle hook (its ``httpGet``, ``exec``, ... field)."""
    for kind in _HANDLERS:
        if kind not in handler:
            continue
        spec = mapping(handler[kind])
        if kind == "httpGet":
            raw = spec.get("path", "/")
            path, _, query = (raw if isinstance(raw, str) else "/").partition("?")
            listed = spec.get("httpHeaders")
            headers = tuple(
                (str(mapping(h).get("name", "")), str(mapping(h).get("value", "")))
                for h in (listed if isinstance(listed, list) else ())
            )
            return Endpoint(kind, path or "/", query, spec.get("port"), headers)
        if kind == "exec":
            command = spec.get("command")
            words = tuple(str(w) for w in command) if isinstance(command, list) else ()
            return Endpoint(kind, command=words)
        return Endpoint(kind, port=spec.get("port"))
    return Endpoint("")


@dataclass(frozen=True)
class PreStopHook:
    """The container's preStop hook."""

    endpoint: Endpoint
    sleep: float | None  # seconds a sleep hook (sleep action or exec sleep) waits; else None


def _sleep_seconds(words: Sequence[str]) -> float | None:
    if len(words) >= 3 and os.path.basename(words[0]) in ("sh", "bash") and words[1] == "-c":
        try:
            words = shlex.split(words[2])
        except ValueError:
            return None
    if len(words) == 2 and os.path.basename(words[0]) == "sleep":
        return _number(words[1])
    return None


def prestop_hook(container: Mapping[str, Any]) -> PreStopHook | None:
    """The container's ``lifecycle.preStop``, or None when it has none."""
    handler = mapping(mapping(container.get("lifecycle")).get("preStop"))
    if not handler:
        return None
    endpoint = probe_endpoint(handler)
    sleep: float | None = None
    if endpoint.kind == "sleep":
        sleep = _number(str(mapping(handler["sleep"]).get("seconds")))
    elif endpoint.kind == "exec":
        sleep = _sleep_seconds(endpoint.command)
    return PreStopHook(endpoint, sleep)


def resolve_port(port: object, container: Mapping[str, Any]) -> int | None:
    """A probe's ``port`` as a number: an int as is, a name through the container's ports."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        ports = container.get("ports")
        for entry in ports if isinstance(ports, list) else ():
            entry = mapping(entry)
            if entry.get("name") == port and isinstance(entry.get("containerPort"), int):
                return int(entry["containerPort"])
    return None
