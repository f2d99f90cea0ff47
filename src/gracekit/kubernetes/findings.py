"""What the doctor reports: one :class:`Finding` per problem, as text for people or JSON for CI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["ERROR", "WARNING", "Finding", "as_json", "as_text"]

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem in a Deployment.

    Parameters:
        rule: a short stable name (``grace-period``, ``probe-port``, ...).
        severity: ``"error"`` (requests are lost) or ``"warning"``.
        path: the field, as ``spec.template.spec.containers[0].livenessProbe.httpGet.path``.
        problem: what is wrong, with the numbers.
        why: how it loses requests.
        fix: what to change.
        source: the file (``-`` for standard input).
        document: the document's position in the file, from 1.
        deployment: the Deployment's name.
    """

    rule: str
    severity: str
    path: str
    problem: str
    why: str
    fix: str
    source: str = "-"
    document: int = 1
    deployment: str = ""


def _count(findings: Sequence[Finding], severity: str) -> int:
    return sum(1 for finding in findings if finding.severity == severity)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def as_text(findings: Sequence[Finding], *, checked: int) -> str:
    """A report for a terminal: a block of four lines per finding, then the totals."""
    lines: list[str] = []
    for finding in findings:
        # One line each, unwrapped, so that grep finds a whole sentence.
        lines += [
            f"{finding.source}:{finding.document}: Deployment {finding.deployment}: "
            f"{finding.severity} [{finding.rule}] {finding.path}",
            f"    {finding.problem}",
            f"    why: {finding.why}",
            f"    fix: {finding.fix}",
        ]
    errors, warnings = _count(findings, ERROR), _count(findings, WARNING)
    summary = f"{_plural(checked, 'Deployment')} checked: "
    if not findings:
        summary += "no problems found"
    else:
        summary += f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    lines.append(summary)
    return "\n".join(lines) + "\n"


def as_json(findings: Sequence[Finding], *, checked: int) -> str:
    """A report for CI pipelines: ``{"findings": [...], "errors": N, "warnings": N, ...}``."""
    report = {
        "checked": checked,
        "errors": _count(findings, ERROR),
        "warnings": _count(findings, WARNING),
        "findings": [asdict(finding) for finding in findings],
    }
    return json.dumps(report, indent=2) + "\n"
