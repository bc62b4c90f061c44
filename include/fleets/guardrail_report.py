"""The guardrails' findings as people read them: one table in the task log, one alert
per fleet (or stage) through the pipeline's notifier."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from include.alerts import Alert
from include.fleets.guardrails import Finding
from include.money import usd
from include.tables import format_table

#: where an account-wide finding (an untagged GPU instance) is alerted: ops watch production
ACCOUNT_ALERT_STAGE = "production"


def render_table(findings: Sequence[Finding]) -> str:
    """The run's findings as one fixed-width table (the task log)."""
    if not findings:
        return "(no finding: every fleet checked is within its guardrails)"
    return format_table(
        ("SCOPE", "CHECK", "SEVERITY", "FIX", "FINDING"),
        ((f.scope, f.check, f.severity, f.remediation or "-", f.summary) for f in findings),
    )


def alerts(findings: Sequence[Finding], link: str | None = None) -> list[tuple[str, Alert]]:
    """One alert per fleet (or stage) with findings: (stage, alert), critical when any is."""
    by_scope: dict[str, list[Finding]] = {}
    for finding in findings:
        by_scope.setdefault(finding.scope, []).append(finding)
    said = []
    for scope, found in by_scope.items():
        severity = "critical" if any(f.severity == "critical" for f in found) else "warning"
        lines = [f"- {f.check}: {f.summary}. What to do: {f.action}." for f in found]
        per_hour = sum((f.dollars_per_hour for f in found), Decimal(0))
        alert = Alert(
            severity,
            f"Guardrails: {len(found)} finding(s) on {scope}",
            metric="GPU spend at risk per hour" if per_hour else None,
            value=usd(per_hour) if per_hour else None,
            dimensions={"fleet": scope} if "/" in scope else {"stage": scope},
            link=link,
            detail="\n".join(lines),
        )
        said.append((ACCOUNT_ALERT_STAGE if scope == "account" else found[0].stage, alert))
    return said
