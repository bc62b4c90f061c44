"""Every InfluxDB measurement the platform has written, with its bucket, fields and tags:
the one list dashboards and alert rules may read from (:mod:`.contract` checks them).

Three writers:

* the **economics DAG** (:mod:`include.economics.exports`): one measurement per daily
  table, stamped at the day's 00:00 UTC, derived here from the writer's own table map and
  the warehouse's columns, so a renamed column changes the catalogue with it;
* the **fleet-changing DAGs**: one ``bp_change`` point per rollout, rollback, AMI
  promotion or revocation (dashboard annotations);
* **Telegraf** (``infra/telegraf/telegraf.conf``), named as Telegraf names what it
  collects: its CloudWatch input turns namespace ``ComfyUI/Workers`` into measurement
  ``cloudwatch_comfy_ui_workers``, metric ``QueueDepth`` and statistic ``Maximum`` into
  field ``queue_depth_maximum``, dimension ``FleetSlug`` into tag ``fleet_slug``; its StatsD
  input turns Airflow's ``airflow.ti.finish,dag_id=...`` into measurement
  ``airflow_ti_finish`` with field ``value`` (counters, gauges) or ``mean``/``count``/
  ``upper``/``<p>_percentile`` (timings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from include.naming import platform

ECONOMICS_BUCKET = "economics"
TELEMETRY_BUCKET = "telemetry"
#: Raw points are kept this long; the InfluxDB task in infra/influxdb/ copies hourly means
#: (and the daily economics as they are) into the long-term bucket, kept for two years.
RAW_RETENTION_DAYS = 90
LONGTERM_BUCKET = "longterm"
LONGTERM_RETENTION_DAYS = 730

#: The statistics Telegraf's CloudWatch input asks for (``statistic_include``).
CLOUDWATCH_STATISTICS = ("average", "maximum", "sum")
#: The percentiles Telegraf's StatsD input computes for timings (``percentiles``).
STATSD_PERCENTILES = (50, 95)
STATSD_TIMING_FIELDS = (
    "mean",
    "count",
    "upper",
    "lower",
    "sum",
    "stddev",
    *(f"{p}_percentile" for p in STATSD_PERCENTILES),
)
#: The tags Telegraf keeps of each input (``taginclude``), the rest are dropped there.
CLOUDWATCH_TAGS = ("fleet_slug", "stage", "region")
STATSD_TAGS = ("dag_id", "task_id", "run_type", "state", "metric_type")
#: The change events' kinds (tag ``kind`` of ``bp_change``).
CHANGE_KINDS = ("rollout", "rollback", "ami_promotion", "ami_revocation")
CHANGE_MEASUREMENT = "bp_change"
#: Fields whose values do not add up: ratios, percentages, percentiles, averages, peaks,
#: extremes and distinct counts (two days' DAU summed counts a user twice). A query may
#: sum only the other fields (:func:`.contract.problems` refuses the rest).
NOT_ADDITIVE = re.compile(
    r"_pct$|_rate(?:_[a-z]+)?$|_average$|_maximum$|_percentile$|utilization|_p\d+_|^p\d+_ms$|^peak_"
    r"|^(?:dau|mean|upper|lower|stddev|baseline)$"
)


def additive(field: str) -> bool:
    """Whether a field's values may be summed (over days, nodes or series)."""
    return not NOT_ADDITIVE.search(field)


@dataclass(frozen=True)
class Measurement:
    name: str
    bucket: str
    fields: frozenset[str]
    tags: frozenset[str]
    writer: str


def telegraf_snake_case(name: str) -> str:
    """Telegraf's ``SnakeCase`` (its CloudWatch input's names): an underscore before an
    upper-case letter that starts a word, ``/`` as ``_``, no doubled underscores."""
    characters = name.replace("/", "_")
    out = []
    for i, char in enumerate(characters):
        starts_word = i > 0 and char.isupper()
        if starts_word and ((i + 1 < len(characters) and characters[i + 1].islower()) or characters[i - 1].islower()):
            out.append("_")
        out.append(char.lower())
    return re.sub("_+", "_", "".join(out))


def cloudwatch_measurement(namespace: str) -> str:
    return f"cloudwatch_{telegraf_snake_case(namespace)}"


def cloudwatch_field(metric: str, statistic: str) -> str:
    return f"{telegraf_snake_case(metric)}_{statistic}"


FLEET_MEASUREMENT = cloudwatch_measurement(platform.WORKER_METRICS_NAMESPACE)


def _economics() -> list[Measurement]:
    import sqlalchemy as sa

    from include.economics import aws_spend, exports, warehouse

    measurements = []
    for table, (name, tags) in exports.INFLUX_MEASUREMENTS.items():
        columns = warehouse.TABLES[table].columns
        fields = {
            c.name for c in columns if c.name not in tags and c.name != "day" and not isinstance(c.type, sa.String)
        }
        measurements.append(
            Measurement(name, ECONOMICS_BUCKET, frozenset(fields), frozenset(tags), "ai_economics_daily")
        )
    for name, (tags, fields) in exports.INFLUX_SUMMARIES.items():
        measurements.append(
            Measurement(name, ECONOMICS_BUCKET, frozenset(fields), frozenset(tags), "ai_economics_daily")
        )
    spend = Measurement(
        aws_spend.INFLUX_MEASUREMENT, ECONOMICS_BUCKET, frozenset({"cost_usd"}), frozenset(aws_spend.INFLUX_TAGS),
        "aws_spend_daily",
    )  # fmt: skip
    return [*measurements, spend]


#: Airflow's StatsD metrics the dashboards and alerts read, as Telegraf names them: kind, tags.
AIRFLOW_METRICS = {
    "airflow_dagrun_duration_success": ("timing", ("dag_id", "run_type")),
    "airflow_dagrun_duration_failed": ("timing", ("dag_id", "run_type")),
    "airflow_ti_finish": ("counter", ("dag_id", "task_id", "state")),
    "airflow_ti_failures": ("counter", ("dag_id", "task_id")),
    "airflow_scheduler_heartbeat": ("counter", ()),
    "airflow_dag_processing_import_errors": ("gauge", ()),
}


def _telegraf() -> list[Measurement]:
    fleet_fields = {cloudwatch_field(m, s) for m in platform.WORKER_METRICS for s in CLOUDWATCH_STATISTICS}
    measurements = [
        Measurement(
            FLEET_MEASUREMENT, TELEMETRY_BUCKET, frozenset(fleet_fields), frozenset(CLOUDWATCH_TAGS), "telegraf"
        )
    ]
    for name, (kind, tags) in AIRFLOW_METRICS.items():
        fields = STATSD_TIMING_FIELDS if kind == "timing" else ("value",)
        measurements.append(
            Measurement(name, TELEMETRY_BUCKET, frozenset(fields), frozenset({*tags, "metric_type"}), "telegraf")
        )
    return measurements


def measurements() -> dict[str, Measurement]:
    """Every measurement, by name."""
    change = Measurement(
        CHANGE_MEASUREMENT,
        TELEMETRY_BUCKET,
        frozenset({"text", "run_id"}),
        frozenset({"stage", "fleet", "kind"}),
        "gpu_bundle_rollout, gpu_bundle_rollback, gpu_ami_build_and_bake, gpu_ami_revoke",
    )
    return {m.name: m for m in [*_economics(), change, *_telegraf()]}
