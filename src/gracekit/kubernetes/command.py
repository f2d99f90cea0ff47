"""``gracekit manifest`` and ``gracekit doctor``: the Kubernetes side of a gracekit app."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..server._command import port, seconds

__all__ = ["register"]

EXIT_PROBLEMS = 1  # doctor found errors
EXIT_INPUT = 2  # the input or the app could not be used


def _positive_seconds(text: str) -> float:
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _app_arguments(parser: argparse.ArgumentParser, *, positional: bool) -> None:
    """What both commands need to know the app: import it, or take its facts as flags."""
    help_app = "the app as an import string, read for its probes and timings"
    if positional:
        parser.add_argument("app", metavar="MODULE:APP", nargs="?", help=help_app)
    else:
        parser.add_argument("--app", metavar="MODULE:APP", help=help_app)
    parser.add_argument("--app-dir", default="", help="directory added to sys.path first")
    parser.add_argument("--factory", action="store_true", help="APP is a factory to call")
    parser.add_argument("--health-path", help="where the ProbeApp is mounted (without an app)")
    parser.add_argument(
        "--hooks",
        type=seconds,
        help="total bound of the shutdown hooks in seconds (without an app)",
    )
    parser.add_argument("--port", type=int, help="the port the server listens on")
    parser.add_argument(
        "--management-port",
        type=port,
        help="the management port (probes, /metrics, preStop): instead of the code's, or for "
        "an app without one",
    )


def _timing_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--delay", type=seconds, help=f"shutdown delay in seconds ({what})")
    parser.add_argument("--drain-timeout", type=_positive_seconds, help=f"drain timeout ({what})")
    parser.add_argument("--hook-timeout", type=_positive_seconds, help=f"hook timeout ({what})")


def register(commands: Any) -> None:
    """Add ``manifest`` and ``doctor`` to the subcommands."""
    manifest = commands.add_parser(
        "manifest",
        help="print Kubernetes YAML (probes, preStop, grace period) computed from an app",
        description=(
            "Print the pod spec (or a Deployment, Service and PodDisruptionBudget) for a "
            "container running MODULE:APP, with probes, preStop hook and "
            "terminationGracePeriodSeconds computed from the app's configuration."
        ),
    )
    _app_arguments(manifest, positional=True)
    _timing_arguments(manifest, "set in the container's env, instead of the code's")
    manifest.add_argument("--name", default="app", help="container and object name")
    manifest.add_argument("--image", help="container image (default NAME:latest)")
    manifest.add_argument(
        "--prestop",
        default="auto",
        choices=["auto", "http", "sleep", "exec-sleep", "none"],
        help="how the delay is spent before SIGTERM (auto: http if the app serves /prestop)",
    )
    manifest.add_argument("--prestop-token", help="the token the HTTP preStop hook sends")
    manifest.add_argument("--startup-budget", type=_positive_seconds, help="seconds to start")
    manifest.add_argument("--replicas", type=int, default=3)
    manifest.add_argument("--cpu", help="CPU request, e.g. 100m")
    manifest.add_argument("--memory", help="memory request, e.g. 128Mi")
    for name in ("deployment", "service", "pdb"):
        manifest.add_argument(f"--{name}", action="store_true", help=f"print a {name}")
    manifest.add_argument("--all", action="store_true", help="Deployment, Service and PDB")
    manifest.add_argument(
        "--no-command", action="store_true", help="leave the command to the image's CMD"
    )
    manifest.set_defaults(handler=_manifest)

    doctor = commands.add_parser(
        "doctor",
        help="check a Deployment against an app: grace period, probes, preStop, rollout",
        description=(
            "Read Deployments (and PodDisruptionBudgets and Services) from YAML files or stdin "
            "and report each setting that loses requests, with the field, the reason and the "
            "fix. Exit status 1 when errors are found, 2 when the input cannot be used."
        ),
    )
    doctor.add_argument("files", nargs="*", metavar="FILE", help="YAML files ('-': stdin)")
    _app_arguments(doctor, positional=False)
    _timing_arguments(doctor, "the code's, instead of what the app says")
    doctor.add_argument("--container", help="the container that runs the app")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(handler=_doctor)


def _info(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, *, code_timing: bool
) -> Any:
    """The app's facts: imported (with *environ* set meanwhile), then changed by the flags;
    with *code_timing*, the timing flags stand for the code's timings."""
    from .appinfo import AppInfo, inspect_app, load_app

    if args.app is not None:
        app = load_app(args.app, app_dir=args.app_dir, factory=args.factory, environ=environ)
        info = inspect_app(app, source=args.app)
    else:
        info = AppInfo()
    changes: dict[str, Any] = {}
    if args.health_path is not None:
        changes["health_path"] = "/" + args.health_path.strip("/")
    if args.hooks is not None:
        changes["hooks"] = (args.hooks,)
    if code_timing and args.management_port is not None:
        # The doctor's flag stands for the code's port; the container's env may override it.
        changes["management"] = info.management_in({}, port=args.management_port)
    if code_timing:
        timing = {
            field: getattr(args, field)
            for field in ("delay", "drain_timeout", "hook_timeout")
            if getattr(args, field) is not None
        }
        if timing:
            changes["timing"] = replace(info.timing, **timing)
    return replace(info, **changes) if changes else info


def _fail(command: str, message: object) -> int:
    print(f"gracekit {command}: {message}", file=sys.stderr)
    return EXIT_INPUT


def _manifest(args: argparse.Namespace) -> int:
    from ._yaml import dump_all
    from .errors import InputError
    from .manifest import ManifestOptions, budget_of, build_manifest

    objects = (
        ("deployment", "service", "pdb")
        if args.all
        else tuple(name for name in ("deployment", "service", "pdb") if getattr(args, name))
    )
    try:
        info = _info(args, code_timing=False)
        options = ManifestOptions(
            name=args.name,
            image=args.image,
            app=None if args.no_command else args.app,
            port=args.port or 8000,
            management_port=args.management_port,
            prestop=args.prestop,
            prestop_token=args.prestop_token,
            delay=args.delay,
            drain_timeout=args.drain_timeout,
            hook_timeout=args.hook_timeout,
            startup_budget=args.startup_budget,
            replicas=args.replicas,
            cpu=args.cpu,
            memory=args.memory,
            objects=objects,
        )
        documents = build_manifest(info, options)
        budget = budget_of(info, options)
    except (InputError, ValueError, ImportError) as exc:
        return _fail("manifest", exc)
    source = info.source or "defaults and flags"
    header = (
        f"# gracekit manifest, from {source}\n"
        f"# terminationGracePeriodSeconds {budget.grace_period()} = {budget.explain()}\n"
    )
    if not objects:
        header += "# a pod spec: put these fields under spec.template.spec of the Deployment\n"
    sys.stdout.write(header + dump_all(documents))
    return 0


def _read(files: list[str]) -> list[Any]:
    from ._yaml import load_all
    from .deployment import Document
    from .errors import InputError

    documents = []
    for name in files or ["-"]:
        try:
            if name == "-":
                text = sys.stdin.read()
            else:
                with open(name, encoding="utf-8") as file:
                    text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {name}: {exc}") from None
        loaded = load_all(text, source=name)
        if not loaded:
            raise InputError(f"{name} holds no YAML documents")
        documents += [Document(name, number, obj) for number, obj in enumerate(loaded, 1)]
    return documents


def _doctor(args: argparse.Namespace) -> int:
    from .container import literal_env
    from .deployment import app_container, deployments
    from .doctor import diagnose
    from .errors import InputError
    from .findings import ERROR, as_json, as_text

    try:
        documents = _read(args.files)
        # The app reads its settings as the container would: with the container's env.
        first = deployments(documents)[0].obj
        environ = literal_env(app_container(first, args.container)[1])
        info = _info(args, environ, code_timing=True)
        findings, checked = diagnose(documents, info, container=args.container, port=args.port)
    except (InputError, ValueError, ImportError) as exc:
        return _fail("doctor", exc)
    sys.stdout.write((as_json if args.json else as_text)(findings, checked=checked))
    return EXIT_PROBLEMS if any(f.severity == ERROR for f in findings) else 0
