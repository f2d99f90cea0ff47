"""The doctor's rules: each compares one part of a Deployment with the app and returns the
problems it finds, each with the field path, why it loses requests, and the fix. This module has
the rules about the shutdown, the rollout and the command; :mod:`.probe_rules` has those about
probes, :mod:`.prestop_rules` the preStop hook's, :mod:`.management_rules` the management port's.

A rule is a function of a :class:`~gracekit.kubernetes.deployment.Target` yielding
:class:`~gracekit.kubernetes.findings.Finding`; :data:`RULES` lists them in report order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from ..drain.timing import GRACE_PERIOD_VARIABLE
from .appinfo import AppInfo
from .container import ANY_HOST, literal_env, mapping, prestop_hook
from .deployment import Document, Target, targets
from .findings import ERROR, WARNING, Finding
from .management_rules import management_exposed, management_port
from .prestop_rules import prestop
from .probe_rules import (
    liveness_endpoint,
    probe_paths,
    probe_timeout,
    readiness_missing,
    startup_probe,
)
from .timing import Budget, resolve_int_or_percent

__all__ = ["RULES", "diagnose"]

DEFAULT_GRACE_PERIOD = 30  # Kubernetes' default terminationGracePeriodSeconds

Rule = Callable[[Target], Iterable[Finding]]


def _budget(target: Target) -> Budget:
    hook = prestop_hook(target.container)
    sleep = hook.sleep if hook is not None and hook.sleep else 0.0
    return Budget(target.timing, target.info.hooks_total(target.timing), prestop=sleep)


def grace_period(target: Target) -> Iterator[Finding]:
    """The grace period must cover preStop + delay + drain + hooks + margin."""
    if target.timing_error is not None:
        yield Finding(
            "timing-env", ERROR, target.path("env"), target.timing_error,
            "the app refuses to start with a timing it cannot read: no pod of this revision "
            "becomes ready, and the rollout stalls",
            "give the variable a number of seconds (or 'auto' for the delay)",
        )  # fmt: skip
    budget = _budget(target)
    needed = budget.grace_period()
    actual = target.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD)
    if not isinstance(actual, int) or isinstance(actual, bool):
        actual = DEFAULT_GRACE_PERIOD
    path = "spec.template.spec.terminationGracePeriodSeconds"
    if actual < needed:
        yield Finding(
            "grace-period", ERROR, path,
            f"the grace period is {actual} s, but the shutdown may take {needed} s "
            f"({budget.explain()})",
            f"the kubelet sends SIGKILL {actual} s after the preStop hook starts: requests "
            "still draining then are cut (clients see resets and 502s) and the shutdown hooks "
            "may not run",
            f"set terminationGracePeriodSeconds: {needed} (and {GRACE_PERIOD_VARIABLE} to the "
            "same), or shorten the delay or the drain timeout",
        )  # fmt: skip
    announced = literal_env(target.container).get(GRACE_PERIOD_VARIABLE)
    if announced is not None and announced.strip() != str(actual):
        yield Finding(
            "grace-period-env", WARNING, target.path("env"),
            f"{GRACE_PERIOD_VARIABLE} is {announced!r} but terminationGracePeriodSeconds is "
            f"{actual}",
            "the app's startup check compares its timings with the wrong number, so it cannot "
            "warn that SIGKILL will cut the drain",
            f"set {GRACE_PERIOD_VARIABLE}: \"{actual}\"",
        )  # fmt: skip


def rollout(target: Target) -> Iterator[Finding]:
    """The update strategy must keep ready pods through the rollout."""
    strategy = mapping(target.spec.get("strategy"))
    if strategy.get("type") == "Recreate":
        yield Finding(
            "max-unavailable", ERROR, "spec.strategy.type",
            "the Recreate strategy stops every pod before the new ones start",
            "every update is an outage: nothing serves between the last old pod stopping and "
            "the first new one becoming ready",
            "use type: RollingUpdate with maxSurge: 1, maxUnavailable: 0",
        )  # fmt: skip
        return
    replicas = target.spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 1:
        return
    update = mapping(strategy.get("rollingUpdate"))
    surge = resolve_int_or_percent(update.get("maxSurge", "25%"), replicas, round_up=True)
    raw = update.get("maxUnavailable", "25%")
    unavailable = resolve_int_or_percent(raw, replicas, round_up=False)
    if surge is None or unavailable is None:
        return
    if surge == 0 and unavailable == 0:
        unavailable = 1  # what the Deployment controller does when both come to 0
    if replicas - unavailable <= 0:
        yield Finding(
            "max-unavailable", ERROR, "spec.strategy.rollingUpdate.maxUnavailable",
            f"maxUnavailable {raw!r} lets all {replicas} replicas be unavailable at once "
            "during a rollout",
            "the Deployment controller may stop every old pod before any new one is ready: "
            "requests find no endpoint (503 from the proxy, connection refused)",
            "set maxUnavailable: 0 and maxSurge: 1",
        )  # fmt: skip


def single_replica(target: Target) -> Iterator[Finding]:
    """One replica and no PodDisruptionBudget: a node drain takes the service down."""
    if target.spec.get("replicas", 1) != 1:
        return
    if any(
        target.selected_by(
            pdb, mapping(mapping(pdb.get("spec")).get("selector")).get("matchLabels")
        )
        for pdb in target.pdbs
    ):
        return
    yield Finding(
        "single-replica", ERROR, "spec.replicas",
        "one replica and no PodDisruptionBudget selects its pods",
        "a node drain or upgrade evicts the only pod before a replacement is ready: every "
        "request fails until the new pod is scheduled, started and ready",
        "run replicas: 2 or more, with a PodDisruptionBudget (maxUnavailable: 1) that selects "
        "the pods",
    )  # fmt: skip


def server_command(target: Target) -> Iterator[Finding]:
    """The server must listen on the pod's address, and receive SIGTERM itself."""
    command = target.command
    if command is None:
        return
    field = (
        "args"
        if target.container.get("args") and not target.container.get("command")
        else "command"
    )
    if command.host not in ANY_HOST:
        yield Finding(
            "listen-host", ERROR, target.path(field),
            f"{command.server} listens on {command.host}, which only the pod itself can reach",
            "the kubelet probes and the Service send to the pod's IP: every connection is "
            "refused, the pod never becomes ready",
            "add --host 0.0.0.0" if command.server != "gunicorn" else "use --bind 0.0.0.0:PORT",
        )  # fmt: skip
    if command.via_shell:
        yield Finding(
            "shell-command", WARNING, target.path(field),
            f"{command.server} is started by a shell that stays PID 1",
            "SIGTERM goes to the shell, which does not pass it on: the app never starts its "
            "shutdown and is killed at the end of the grace period, with its requests",
            "use the exec form (command: [gracekit, run, ...]) or start the line with exec",
        )  # fmt: skip


RULES: tuple[Rule, ...] = (
    grace_period,
    readiness_missing,
    liveness_endpoint,
    probe_timeout,
    startup_probe,
    rollout,
    single_replica,
    prestop,
    probe_paths,
    server_command,
    management_port,
    management_exposed,
)


def diagnose(
    documents: Sequence[Document],
    info: AppInfo | None = None,
    *,
    container: str | None = None,
    port: int | None = None,
    rules: Sequence[Rule] = RULES,
) -> tuple[list[Finding], int]:
    """The findings for every Deployment in *documents*, and how many Deployments there were.

    *info* describes the app (default: gracekit's defaults, probes under ``/health``);
    *container* names the app's container; *port* is where its server listens.

    Raises:
        InputError: no Deployment, a document that is not an object, a missing container.
    """
    found = targets(documents, info or AppInfo(), container=container, port=port)
    # A finding about another object (a Service) names its document; the rest are the
    # Deployment's.
    findings = [
        finding
        if finding.deployment
        else replace(finding, source=t.doc.source, document=t.doc.number, deployment=t.name)
        for t in found
        for rule in rules
        for finding in rule(t)
    ]
    return findings, len(found)
