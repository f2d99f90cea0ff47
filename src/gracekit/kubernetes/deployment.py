"""Finding the Deployments in the doctor's input, and the container in each that runs the app.

A :class:`Target` is one Deployment with its app container and what the container makes of
the app: the timings and the management port after its environment and command line, and the
port the server listens on. The rules in :mod:`gracekit.kubernetes.doctor` read only targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..drain.timing import ShutdownTiming
from ..server.management import Management
from .appinfo import AppInfo
from .container import ServerCommand, literal_env, mapping, parse_command
from .errors import InputError
from .timing import effective_timing

__all__ = ["Document", "Target", "app_container", "deployments", "targets"]


class Document(NamedTuple):
    """One YAML document of the input."""

    source: str  # the file name, "-" for standard input
    number: int  # its position in the file, from 1
    obj: Any


def _describe(obj: Mapping[str, Any]) -> str:
    name = mapping(obj.get("metadata")).get("name", "?")
    return f"{obj.get('kind', '?')}/{name}"


def deployments(documents: Sequence[Document]) -> list[Document]:
    """The documents that are Deployments.

    Raises:
        InputError: a document is not a Kubernetes object, a Deployment has no containers, or
            there is no Deployment at all (the message lists what there is).
    """
    found = []
    for doc in documents:
        if not isinstance(doc.obj, Mapping):
            raise InputError(
                f"{doc.source}: document {doc.number} is a {type(doc.obj).__name__}, not a "
                "Kubernetes object (a mapping with apiVersion and kind)"
            )
        if doc.obj.get("kind") != "Deployment":
            continue
        containers = mapping(mapping(mapping(doc.obj.get("spec")).get("template")).get("spec"))
        listed = containers.get("containers")
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(c, Mapping) for c in listed)
        ):
            raise InputError(
                f"{doc.source}: document {doc.number} ({_describe(doc.obj)}) has no "
                "spec.template.spec.containers list: not a usable Deployment"
            )
        found.append(doc)
    if not found:
        kinds = ", ".join(_describe(doc.obj) for doc in documents) or "no objects"
        sources = ", ".join(sorted({doc.source for doc in documents})) or "the input"
        raise InputError(f"no Deployment in {sources} (found: {kinds})")
    return found


def app_container(deployment: Mapping[str, Any], name: str | None) -> tuple[int, Mapping[str, Any]]:
    """The index and spec of the container that runs the app: the one called *name*, else the
    only one, else the first whose command starts a server gracekit knows, else the first.

    Raises:
        InputError: no container is called *name*.
    """
    containers = mapping(mapping(mapping(deployment.get("spec")).get("template")).get("spec"))[
        "containers"
    ]
    if name is not None:
        for index, container in enumerate(containers):
            if container.get("name") == name:
                return index, container
        names = ", ".join(str(c.get("name")) for c in containers)
        raise InputError(f"{_describe(deployment)} has no container {name!r} (it has: {names})")
    for index, container in enumerate(containers):
        if _command(container) is not None:
            return index, container
    return 0, containers[0]


def _command(container: Mapping[str, Any]) -> ServerCommand | None:
    command, args = container.get("command") or [], container.get("args") or []
    if not isinstance(command, list) or not isinstance(args, list):
        return None
    words = [*command, *args]
    return parse_command(words) if all(isinstance(w, (str, int)) for w in words) else None


@dataclass(frozen=True)
class Target:
    """One Deployment as the rules see it."""

    doc: Document
    container_index: int
    container: Mapping[str, Any]
    info: AppInfo
    #: The timings the container runs with (code, then env, then ``gracekit run`` flags).
    timing: ShutdownTiming
    #: Why the environment's timings could not be read, if they could not.
    timing_error: str | None
    command: ServerCommand | None
    #: The port the server listens on, when the command, the flags or the ports say.
    port: int | None
    #: Every PodDisruptionBudget in the input.
    pdbs: tuple[Mapping[str, Any], ...]
    #: The management port the container runs with (code, then env, then ``gracekit run``).
    management: Management | None = None
    #: Why the environment's management port could not be read, if it could not.
    management_error: str | None = None
    #: Every Service in the input.
    services: tuple[Document, ...] = ()

    @property
    def name(self) -> str:
        return str(mapping(self.doc.obj.get("metadata")).get("name", "?"))

    @property
    def spec(self) -> Mapping[str, Any]:
        return mapping(self.doc.obj.get("spec"))

    @property
    def pod(self) -> Mapping[str, Any]:
        return mapping(mapping(self.spec.get("template")).get("spec"))

    @property
    def labels(self) -> Mapping[str, Any]:
        return mapping(mapping(mapping(self.spec.get("template")).get("metadata")).get("labels"))

    @property
    def namespace(self) -> object:
        return mapping(self.doc.obj.get("metadata")).get("namespace")

    @property
    def management_host(self) -> str | None:
        """Where the management port listens: the code's or the env's host, else the server's
        (None when the command does not say)."""
        if self.management is None:
            return None
        if self.management.host is not None:
            return self.management.host
        return self.command.host if self.command is not None else None

    @property
    def management_port(self) -> int | None:
        """The management port's number, or None (none, or 0: a different one each start)."""
        if self.management is None or self.management.port == 0:
            return None
        return self.management.port

    def selected_by(self, obj: Mapping[str, Any], selector: object) -> bool:
        """True if *obj* (a PDB, a Service), with its label *selector*, selects these pods."""
        if mapping(obj.get("metadata")).get("namespace") != self.namespace or not isinstance(
            selector, Mapping
        ):
            return False
        labels = self.labels
        return bool(selector) and all(labels.get(key) == value for key, value in selector.items())

    def path(self, *fields: str) -> str:
        """A field of the app container, as a dotted path from the Deployment."""
        return ".".join([f"spec.template.spec.containers[{self.container_index}]", *fields])


def _port(
    command: ServerCommand | None, container: Mapping[str, Any], management: Management | None
) -> int | None:
    if command is not None:
        return command.port
    ports = container.get("ports")
    numbers = [
        mapping(entry).get("containerPort") for entry in (ports if isinstance(ports, list) else ())
    ]
    # The server's port is the container's only one, the management port aside.
    numbers = [
        n for n in numbers if isinstance(n, int) and (management is None or n != management.port)
    ]
    return numbers[0] if len(numbers) == 1 else None


def targets(
    documents: Sequence[Document],
    info: AppInfo,
    *,
    container: str | None = None,
    port: int | None = None,
) -> list[Target]:
    """One :class:`Target` per Deployment in *documents*.

    *port*, when given, is where the server listens (else the command's ``--port``, else the
    container's only ``containerPort`` besides the management port).

    Raises:
        InputError: as :func:`deployments` and :func:`app_container`.
    """
    pdbs = tuple(doc.obj for doc in _of_kind(documents, "PodDisruptionBudget"))
    services = tuple(_of_kind(documents, "Service"))
    found = []
    for doc in deployments(documents):
        index, spec = app_container(doc.obj, container)
        command = _command(spec)
        timing_error = None
        try:
            timing = effective_timing(
                info.timing,
                literal_env(spec),
                delay=command.shutdown_delay if command else None,
                drain_timeout=command.drain_timeout if command else None,
            )
        except ValueError as exc:
            timing, timing_error = info.timing, str(exc)
        management_error = None
        try:
            management = info.management_in(
                literal_env(spec), port=command.management_port if command else None
            )
        except ValueError as exc:
            management, management_error = info.management, str(exc)
        found.append(
            Target(
                doc=doc,
                container_index=index,
                container=spec,
                info=info,
                timing=timing,
                timing_error=timing_error,
                command=command,
                port=port if port is not None else _port(command, spec, management),
                pdbs=pdbs,
                management=management,
                management_error=management_error,
                services=services,
            )
        )
    return found


def _of_kind(documents: Sequence[Document], kind: str) -> list[Document]:
    return [d for d in documents if isinstance(d.obj, Mapping) and d.obj.get("kind") == kind]
