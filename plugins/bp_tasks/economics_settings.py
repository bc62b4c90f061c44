"""What the economics DAGs share: the Airflow Variables and connections they read, their
default args and day param, and how they send a day's alerts once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from airflow.sdk import Asset, Param, Variable

LEDGER_CONN = "ai_ledger"
WAREHOUSE_CONN = "ai_warehouse"
#: Updated when the price catalogue changes (``ai_price_catalogue``): ``ai_economics_reprice``
#: runs on it. An "x-" scheme is a custom one Airflow leaves as is while the file is parsed.
PRICE_CATALOGUE = Asset(name="ai_price_catalogue", uri="x-bp-catalogue://economics/price_catalogue")
DEFAULT_FLEETS = '[{"stage": "staging", "slug": "gpu-default", "instance_type": "g4dn.xlarge"}]'


@dataclass(frozen=True)
class Settings:
    """Every Airflow Variable the economics DAGs read, with its default (listed in the README)."""

    price_catalogue: str
    infra_cost_source: str
    s3_uri: str
    #: the bucket the dashboards, alert rules and retention tasks read: one name in
    #: include/observability/catalogue.py, never a Variable that could point the export elsewhere
    influx_bucket: str
    margin_floor_pct: Decimal
    reconcile_threshold_pct: float
    alert_stage: str
    gpu_hourly_prices: dict[str, Decimal]
    fleets: list[dict[str, str]]

    @classmethod
    def load(cls) -> Settings:
        from include.economics import infra_cost
        from include.economics.margin import MARGIN_FLOOR_PCT
        from include.economics.prices import DEFAULT_CATALOGUE
        from include.observability.catalogue import ECONOMICS_BUCKET

        return cls(
            price_catalogue=Variable.get("ai_price_catalogue", default=str(DEFAULT_CATALOGUE)),
            infra_cost_source=infra_cost.check_source(Variable.get("infra_cost_source", default="none")),
            s3_uri=Variable.get("economics_s3_uri", default=""),
            influx_bucket=_retired_bucket_variable(ECONOMICS_BUCKET),
            margin_floor_pct=Decimal(Variable.get("margin_floor_pct", default=str(MARGIN_FLOOR_PCT))),
            reconcile_threshold_pct=float(Variable.get("reconcile_threshold_pct", default="5")),
            alert_stage=Variable.get("economics_alert_stage", default="production"),
            gpu_hourly_prices=gpu_hourly_prices(),
            fleets=json.loads(Variable.get("economics_fleets", default=DEFAULT_FLEETS)),
        )


def _retired_bucket_variable(bucket: str) -> str:
    """The economics' InfluxDB bucket; the Variable that once named another is refused."""
    named = Variable.get("economics_influx_bucket", default=bucket)
    if named != bucket:
        raise ValueError(
            f"Variable economics_influx_bucket names {named!r}, but the dashboards and alert rules read {bucket!r}: "
            f"the Variable is retired (the bucket is ECONOMICS_BUCKET in include/observability/catalogue.py, which "
            f"`make dashboards` builds from). Delete the Variable; nothing was written."
        )
    return bucket


def gpu_hourly_prices() -> dict[str, Decimal]:
    """The GPU prices per hour: the Variable ``gpu_hourly_prices`` over the defaults (the
    economics' infra cost and the guardrails' leak dollars use the same ones)."""
    from include.economics import infra_cost

    prices = json.loads(Variable.get("gpu_hourly_prices", default="{}"))
    return {**infra_cost.DEFAULT_HOURLY_PRICES, **{k: Decimal(str(v)) for k, v in prices.items()}}


def economics_default_args(dag_id: str) -> dict:
    """What the DAGs finance reads from share: their owner, retries, and a critical alert
    to the economics stage's topics when a run fails (a refused request is no incident)."""
    from bp_aws.notifiers.ops_alert import OpsAlertNotifier
    from bp_tasks.common import RequestRefused

    return {
        "owner": "data-finance",
        "retries": 2,
        "on_failure_callback": OpsAlertNotifier(
            severity="critical",
            title=f"{dag_id} failed",
            stage="{{ var.value.get('economics_alert_stage', 'production') }}",
            not_incidents=(RequestRefused,),
        ),
    }


def day_param(description: str) -> Param:
    """A past UTC day, or empty for the one the schedule gives."""
    return Param(None, type=["null", "string"], format="date", title="Day (UTC)", description=description)


def send_once(day, alerts: list, *, stage: str, aws_conn_id: str, link: str | None) -> int:
    """Send each of ``day``'s alerts the day has not sent yet (a re-run or a cleared task
    pages no one again for the same finding: :mod:`include.economics.sent_alerts`), with
    ``link`` to the run; return how many were sent. One its owner's maintenance window
    mutes is neither sent nor recorded: a run after the window sends it."""
    import logging
    from dataclasses import replace

    from bp_aws.notifiers.ops_alert import muting, send_alert
    from bp_data.engines import engine_for
    from include.economics import sent_alerts

    engine = engine_for(WAREHOUSE_CONN)
    sent_before = sent_alerts.already_sent(engine, day, alerts)
    sent = 0
    for alert in alerts:
        when = sent_before.get(sent_alerts.fingerprint(day, alert))
        if when is not None:
            logging.getLogger("bp.economics").info("Already sent at %s, not sent again: %s", when, alert.subject)
            continue
        if (window := muting(alert)) is not None:  # not recorded: a run after the window sends it
            logging.getLogger("bp.economics").warning("Muted by %s, not sent: %s", window.name, alert.subject)
            continue
        send_alert(replace(alert, link=link), stage=stage, aws_conn_id=aws_conn_id)
        sent_alerts.record(engine, day, alert)
        sent += 1
    return sent
