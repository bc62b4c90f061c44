"""Task bodies of ``ai_billing_import``: the providers' bills through their connections
(:mod:`bp_data.provider_bills`, Cost Explorer, CSV files in the logs bucket), read by
:mod:`include.economics.bills`, reconciled with the day's published economics by
:mod:`include.economics.bill_reconciliation`."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

from airflow.sdk import Variable, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.common import report_outcome, validated
from bp_tasks.economics_settings import LEDGER_CONN, WAREHOUSE_CONN, Settings

log = logging.getLogger("bp.billing")

#: The day and the two before it: a bill not out yet is asked for again by the next runs.
LOOKBACK_DAYS = 3
#: Cost Explorer's name of the Bedrock service.
BEDROCK_SERVICE = "Amazon Bedrock"
DEFAULT_DRIFT_PCT = "2"


@task
def resolve_days(params: dict | None = None, logical_date=None, dag_run=None, dag=None) -> list[str]:
    """The day to import (a past one) and the two before it, validated before any call."""
    from include.economics.calendar import day_to_compute

    day = validated(
        lambda p: day_to_compute(p["day"], logical_date), params, "Nothing was imported.", dag_run=dag_run, dag=dag
    )
    return [(day - timedelta(days=n)).isoformat() for n in reversed(range(LOOKBACK_DAYS))]


def _csv_bills(day: date, aws_conn_id: str) -> list:
    """``billing/<provider>/<day>.csv`` in the logs bucket, one per provider without an API."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.economics import bills
    from include.naming import platform

    s3 = OwnBucketsS3Hook(aws_conn_id=aws_conn_id)
    bucket = platform.logs_bucket(s3.account_id)
    lines = []
    # one folder per provider: a key looked up in each, never a listing of every day's file
    for folder in s3.list_prefixes(bucket_name=bucket, prefix="billing/", delimiter="/") or []:
        key = f"{folder}{day}.csv"
        if s3.check_for_key(key, bucket):
            lines += bills.csv_lines(s3.read_key(key, bucket), folder.split("/")[1])
    return lines


def _day_bills(day: date, aws_conn_id: str) -> tuple[list, list[str], list[str]]:
    """The day's bill lines, the providers whose bill is not out yet, those configured."""
    from bp_aws.hooks.costs import CostExplorerHook
    from bp_data import provider_bills
    from include.economics import bills

    lines, awaiting, configured = [], [], []
    for provider, fetch, parse in (
        ("openai", provider_bills.openai_day, bills.openai_lines),
        ("anthropic", provider_bills.anthropic_day, bills.anthropic_lines),
    ):
        pages = fetch(day)
        if pages is None:
            continue
        configured.append(provider)
        found = parse(*pages)
        lines += found
        if not found:
            awaiting.append(provider)
    model_names = Variable.get("bedrock_model_names", default=None)
    if model_names:
        configured.append("bedrock")
        groups = CostExplorerHook(aws_conn_id=aws_conn_id).service_usage(day, BEDROCK_SERVICE)
        lines += bills.bedrock_lines(groups, json.loads(model_names))
        if not groups:
            awaiting.append("bedrock")
    from_csv = _csv_bills(day, aws_conn_id)
    configured += sorted({line.provider for line in from_csv})
    return [*lines, *from_csv], awaiting, configured


@task(multiple_outputs=False)
def import_bills(days: list[str], params: dict | None = None) -> dict:
    """Each day's bill lines from every provider configured; a provider with nothing for
    a day yet is "bill not yet available" (asked again tomorrow), never a drift."""
    imported = {}
    for day in days:
        lines, awaiting, configured = _day_bills(date.fromisoformat(day), params["aws_conn_id"])
        log.info(
            "%s: %d bill line(s) from %s%s", day, len(lines), ", ".join(configured) or "no provider configured",
            f"; not out yet: {', '.join(awaiting)}" if awaiting else "",
        )  # fmt: skip
        imported[day] = {"lines": [line.as_dict() for line in lines], "awaiting": awaiting}
    return imported


def _bill_rows(day: date, lines: list, fx: dict):
    import pandas as pd

    from include.economics.bill_reconciliation import to_usd
    from include.economics.prices import to_money
    from include.economics.warehouse import BILLING_TABLES

    rows = [
        {
            "day": day, "provider": line.provider, "model_name": line.model_name, "account": line.account,
            **{f"{c}_tokens": n for c, n in line.tokens.items()},
            **{f"{c}_cost": to_money(amount) for c, amount in line.cost.items()},
            "currency": line.currency,
            "cost_usd": to_money(to_usd(line.total_cost, line.currency, fx, line.provider, day)),
        }
        for line in lines
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=[column.name for column in BILLING_TABLES["ai_billing_daily"].columns])


@task
def reconcile(imported: dict) -> list[dict]:
    """Publish each day's bills and, where the day's economics are published, their
    reconciliation (both replace the day); return what each model's row says."""
    from bp_data.engines import engine_for
    from bp_tasks.storage import read_text
    from include.economics import bill_reconciliation, bills, margin, warehouse
    from include.economics.prices import PriceBook

    settings = Settings.load()
    book = PriceBook.from_text(read_text(settings.price_catalogue), settings.price_catalogue)
    threshold = float(Variable.get("billing_drift_threshold_pct", default=DEFAULT_DRIFT_PCT))
    ledger, store = engine_for(LEDGER_CONN), engine_for(WAREHOUSE_CONN)
    findings, said_of_days = [], []
    for day_text, found in imported.items():
        day = date.fromisoformat(day_text)
        lines = [bills.BillLine.from_dict(line) for line in found["lines"]]
        fx = margin.fx_for_day(ledger, day)
        ours = warehouse.read_days(store, "ai_model_daily", day, day)
        try:
            frames = {"ai_billing_daily": _bill_rows(day, lines, fx)}
            if not ours.empty:
                costs = bill_reconciliation.class_costs(bill_reconciliation.tier_tokens(ledger, book, day), book, day)
                table, said = bill_reconciliation.reconcile(
                    day, lines, ours, costs, book, fx, threshold, found["awaiting"]
                )
                frames["ai_billing_reconciliation"] = table
        except bills.BillError as error:
            raise AirflowFailException(f"{error} Nothing was published for {day}.") from None
        warehouse.publish(store, day, frames)
        if ours.empty:
            said_of_days.append(f"{day}: its economics are not published yet; its bills are kept, reconciled then")
            continue
        said_of_days += [
            f"Bills of {day} against our cost (drift over {threshold}% flagged):",
            *bill_reconciliation.readable(table).splitlines(),
            *filter(None, [bill_reconciliation.not_billed(table, ours)]),
        ]
        findings += [finding.as_dict() | {"day": day_text} for finding in said]
    report_outcome(*said_of_days)
    return findings


@task
def send_alerts(findings: list[dict], params: dict | None = None, dag_run=None) -> int:
    """A drift (warning) names the model and the token class that drifts; unpriced spend
    is critical. One already sent for the day with the same figures is not sent again."""
    from bp_aws.notifiers.ops_alert import run_link
    from bp_tasks.economics_settings import send_once
    from include.alerts import Alert

    by_day: dict[date, list] = {}
    for finding in findings:
        if finding["status"] not in ("drift", "unpriced"):
            continue
        day, unpriced = date.fromisoformat(finding["day"]), finding["status"] == "unpriced"
        by_day.setdefault(day, []).append(
            Alert(
                severity="critical" if unpriced else "warning",
                title=f"{finding['provider']} bill for {finding['model_name']} on {day}: "
                + ("unpriced spend (not in the price catalogue)" if unpriced else "drifts from our cost"),
                metric="billed_cost_usd",
                value=finding["billed_cost"],
                threshold=finding["our_cost"],
                threshold_label="our cost",
                dimensions={"provider": finding["provider"], "model": finding["model_name"]},
                detail="; ".join(finding["drifting"]) or None,
            )
        )
    stage, link = Settings.load().alert_stage, run_link({"dag_run": dag_run})
    return sum(
        send_once(day, alerts, stage=stage, aws_conn_id=params["aws_conn_id"], link=link)
        for day, alerts in sorted(by_day.items())
    )
