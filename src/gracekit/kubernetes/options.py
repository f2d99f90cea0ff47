"""What ``gracekit manifest`` cannot learn from the app: its name, image, ports, replicas..."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validate

__all__ = ["OBJECTS", "PRESTOP_MODES", "ManifestOptions"]

PRESTOP_MODES = ("auto", "http", "sleep", "exec-sleep", "none")
OBJECTS = ("deployment", "service", "pdb")


@dataclass(frozen=True)
class ManifestOptions:
    """What the app cannot say about its deployment.

    Parameters:
        name: the name of the container and of the Deployment, Service and PDB.
        image: the container image (default ``NAME:latest``).
        app: ``MODULE:APP`` for the container's ``gracekit run`` command; None leaves the
            command to the image.
        port: the port the server listens on.
        management_port: the management port to run with instead of the code's (or to give
            an app without one), set as ``GRACEKIT_MANAGEMENT_PORT`` in the container.
        prestop: ``"http"`` (gracekit's preStop endpoint), ``"sleep"`` (the sleep action,
            Kubernetes 1.30+), ``"exec-sleep"`` (``sleep`` in the image), ``"none"``, or
            ``"auto"``: ``http`` when the app serves the endpoint, else ``none``.
        prestop_token: the token the HTTP hook sends. On the management port: the code's
            ``Management.prestop_token`` unless given, else a random one; a token that is not
            the code's is also set as ``GRACEKIT_PRESTOP_TOKEN`` in the container.
        delay, drain_timeout, hook_timeout: timings to run with instead of the code's; they
            are set as ``GRACEKIT_*`` variables in the container.
        startup_budget: seconds the startup probe allows (default from the startup work).
        replicas: the Deployment's replica count.
        cpu, memory: resource requests.
        objects: which of ``deployment``, ``service``, ``pdb`` to build; none: a pod spec
            fragment to paste under ``spec.template.spec``.
    """

    name: str = "app"
    image: str | None = None
    app: str | None = None
    port: int = 8000
    management_port: int | None = None
    prestop: str = "auto"
    prestop_token: str | None = None
    delay: float | None = None
    drain_timeout: float | None = None
    hook_timeout: float | None = None
    startup_budget: float | None = None
    replicas: int = 3
    cpu: str | None = None
    memory: str | None = None
    objects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.prestop not in PRESTOP_MODES:
            raise ValueError(f"prestop must be one of {PRESTOP_MODES}, got {self.prestop!r}")
        unknown = set(self.objects) - set(OBJECTS)
        if unknown:
            raise ValueError(f"unknown objects {sorted(unknown)}: choose from {OBJECTS}")
        _validate.port(self.port, what="port")
        if self.management_port is not None:
            _validate.port(self.management_port, what="management_port")
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas!r}")
