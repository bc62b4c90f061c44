"""Task bodies of ``aws_spend_daily``: the day's whole AWS bill from Cost Explorer (by
service, usage type and stage tag; the GPU instances by fleet tag), AWS Cost Anomaly
Detection's anomalies and AWS Budgets' state, judged by :mod:`include.economics.aws_spend`."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from airflow.sdk import Variable, task

from bp_tasks.common import report_outcome, validated
from bp_tasks.economics_settings import WAREHOUSE_CONN, Settings

log = logging.getLogger("bp.spend")


@task
def resolve_day(params: dict | None = None, logical_date=None, dag_run=None, dag=None) -> str:
    """The day (a past one) and the budgets Variable, both checked before any call."""
    from include.economics.aws_spend import parse_budgets
    from include.economics.calendar import day_to_compute

    def check(p: dict) -> date:
        parse_budgets(Variable.get("aws_daily_budgets", default=None))
        return day_to_compute(p["day"], logical_date)

    return validated(check, params, "Nothing was read.", dag_run=dag_run, dag=dag).isoformat()


@task(multiple_outputs=False)
def read_spend(day_text: str, params: dict | None = None) -> dict:
    """Per stage: the day and the 28 before it by service and usage type (the baseline in
    the same call), the day's GPU instances by fleet; the day's AWS anomalies; the budgets."""
    from bp_aws.hooks.costs import BudgetsHook, CostExplorerHook
    from include.economics import aws_spend
    from include.naming import platform

    day = date.fromisoformat(day_text)
    explorer = CostExplorerHook(aws_conn_id=params["aws_conn_id"])
    lines = []
    for stage in platform.STAGES:
        first = day - timedelta(days=aws_spend.HISTORY_DAYS)
        usage = aws_spend.parse_usage(explorer.cost_and_usage(aws_spend.usage_request(first, day, stage)), stage)
        fleets = aws_spend.parse_fleets(explorer.cost_and_usage(aws_spend.fleet_request(day, stage)), stage)
        lines += aws_spend.with_fleets(usage, fleets, day)
    anomalies = explorer.anomalies(day, day)
    budgets = BudgetsHook(aws_conn_id=params["aws_conn_id"]).budgets()
    log.info("%s: %d Cost Explorer line(s) over %d days, %d AWS anomaly(ies), %d budget(s)",
             day, len(lines), aws_spend.HISTORY_DAYS + 1, len(anomalies), len(budgets))  # fmt: skip
    return {"day": day_text, "lines": [line.as_dict() for line in lines], "anomalies": anomalies, "budgets": budgets}


@task
def publish(read: dict) -> int:
    """Replace the day's ``aws_spend_daily`` rows; write ``aws_spend`` to InfluxDB."""
    import pandas as pd

    from bp_data.engines import engine_for
    from bp_data.influx import write_points
    from include.economics import aws_spend, warehouse

    day, lines = date.fromisoformat(read["day"]), [aws_spend.SpendLine.from_dict(x) for x in read["lines"]]
    table = warehouse.SPEND_TABLES["aws_spend_daily"]
    frame = pd.DataFrame(aws_spend.rows(day, lines), columns=[column.name for column in table.columns])
    written = warehouse.publish(engine_for(WAREHOUSE_CONN), day, {"aws_spend_daily": frame})["aws_spend_daily"]
    points = aws_spend.influx_points(day, lines)
    bucket = Settings.load().influx_bucket
    influx = f"{len(points)} point(s) to InfluxDB bucket {bucket}" if write_points(points, bucket=bucket) else (
        "nothing to InfluxDB (no connection influxdb_default)"
    )  # fmt: skip
    said = aws_spend.readable(day, lines)
    report_outcome(f"AWS spend of {day}: {written} aws_spend_daily row(s), {influx}", *said)
    return written


@task
def send_alerts(read: dict, params: dict | None = None, dag_run=None) -> int:
    """Each hotspot over its budget or its baseline, AWS's anomalies (said in the hotspot
    they explain, never twice) and budgets: one alert each, to its stage's topics, once."""
    from bp_aws.notifiers.ops_alert import run_link
    from bp_tasks.economics_settings import send_once
    from include.economics import aws_spend

    day, lines = date.fromisoformat(read["day"]), [aws_spend.SpendLine.from_dict(x) for x in read["lines"]]
    account_stage = Settings.load().alert_stage  # AWS anomalies and budgets are the account's
    findings = aws_spend.judge(day, lines, aws_spend.parse_budgets(Variable.get("aws_daily_budgets", default=None)))
    findings = aws_spend.with_aws_anomalies(findings, read["anomalies"], account_stage)
    findings += aws_spend.budget_findings(read["budgets"], account_stage)
    link, sent = run_link({"dag_run": dag_run}), 0
    for stage in sorted({finding.stage for finding in findings}):
        alerts = [aws_spend.alert(day, finding) for finding in findings if finding.stage == stage]
        sent += send_once(day, alerts, stage=stage, aws_conn_id=params["aws_conn_id"], link=link)
    said = [aws_spend.finding_line(day, finding) for finding in findings]
    report_outcome(f"{len(findings)} finding(s) in the AWS spend of {day}: {sent} alert(s) sent", *said)
    return sent
