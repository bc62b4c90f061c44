"""The cardinality rule: the only tags a point the project writes to InfluxDB may carry.

InfluxDB keeps one series per distinct tag set, in memory, for as long as the bucket
keeps it: a user id, a request id or free text as a tag grows the series without bound
(seed 000's risk register: "TIG rollout without metric governance"). So every tag is
named here with the bounded set its values come from and a pattern those values must
match; a point with any other tag, or a value outside its pattern, is refused before it
is written (:func:`check_tags`), and Telegraf keeps only these tags of what it collects
(``taginclude`` in ``infra/telegraf/telegraf.conf``, checked by the tests). What is
unbounded goes in a field (the change events' ``run_id``) or stays in the warehouse (the
per-user level).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


class CardinalityError(ValueError):
    """A point would add a tag (or tag value) the allow-list does not bound."""


@dataclass(frozen=True)
class TagRule:
    pattern: str
    bounded_by: str

    def allows(self, value: str) -> bool:
        return re.fullmatch(self.pattern, value) is not None


_NAME = r"[a-z0-9][a-z0-9_.-]{0,63}"
_MODEL = r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}"
_SLUG = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"

#: tag -> the rule its values follow, and what keeps their number small.
TAG_RULES: dict[str, TagRule] = {
    # the economics DAG (include.economics.exports)
    "feature_name": TagRule(_NAME, "the product's features (a list the app owns)"),
    "model_name": TagRule(_MODEL, "the models the price catalogue prices"),
    "plan": TagRule(_NAME, "the billing plans, and 'all'"),
    "signal": TagRule(_NAME, "the anomaly detector's signals"),
    "dimension": TagRule(rf"(?:feature|model):{_MODEL}", "'feature:' or 'model:' and one of those"),
    "severity": TagRule(r"warning|critical", "two alert tiers"),
    "release": TagRule(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,49}", "the app releases anomalies started with (a few a month)"),
    "suite": TagRule(_NAME, "the data-quality gate's suites"),
    "stage": TagRule(r"staging|production", "the platform's stages"),
    "fleet": TagRule(_SLUG, "the fleets' slugs"),
    # the AWS spend DAG (include.economics.aws_spend)
    "hotspot": TagRule(
        r"nat_data_processing|cloudwatch_logs_ingestion|s3_egress|cloudfront_egress|gpu_instances|other|total",
        "seed 003's cost hotspots, the rest and the total",
    ),
    "name": TagRule(r"[a-z][a-z0-9-]{0,39}", "the dev nodes' names (a handful per team)"),
    "owner": TagRule(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}", "the engineers who own a dev node"),
    # the DAGs' change events (annotations)
    "kind": TagRule(r"rollout|rollback|ami_promotion|ami_revocation", "four kinds of fleet change"),
    # Telegraf's CloudWatch input, from the ADR-0005 metrics' dimensions
    "fleet_slug": TagRule(_SLUG, "the fleets' slugs (the FleetSlug dimension)"),
    "region": TagRule(r"[a-z]{2}(?:-[a-z]+)+-\d", "the AWS regions the platform runs in"),
    # Telegraf's StatsD input, from Airflow's metrics (statsd_influxdb_enabled)
    "dag_id": TagRule(r"[A-Za-z0-9_.-]{1,250}", "the DAGs in dags/"),
    "task_id": TagRule(r"[A-Za-z0-9_.-]{1,250}", "the tasks of those DAGs"),
    "run_type": TagRule(r"manual|scheduled|backfill|asset_triggered|asset_materialization", "Airflow's run types"),
    "state": TagRule(r"[a-z_]{1,32}", "Airflow's task states"),
    "metric_type": TagRule(r"counter|gauge|timing|histogram|set|distribution", "StatsD's metric types"),
}


def check_tags(measurement: str, tags: Mapping[str, str]) -> None:
    """Refuse a point whose tags break the rule, naming the tag, its value and why."""
    for tag, value in tags.items():
        rule = TAG_RULES.get(tag)
        if rule is None:
            raise CardinalityError(
                f"InfluxDB point {measurement!r} carries tag {tag!r}, which is not in the tag allow-list "
                f"(include/influx_tags.py): an unlisted tag may be unbounded (a user or request id, "
                f"free text). Write it as a field, or add it there with what bounds its values."
            )
        if not rule.allows(value):
            raise CardinalityError(
                f"InfluxDB point {measurement!r}: tag {tag}={value!r} does not match {rule.pattern!r} "
                f"({rule.bounded_by}); nothing was written."
            )
