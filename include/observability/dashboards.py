"""The three Grafana dashboards, built with Grafana's Foundation SDK (typed builders: a
dashboard that builds is one Grafana can load), provisioned from
``infra/grafana/provisioning/dashboards/`` (``make dashboards`` writes them).

* **AI economics** - seed 000 Phase F's daily control panel: cost, revenue, margin per
  plan, cost per request per feature and model, tokens per minute peak, DAU, failure
  rate, p95, anomalies, failed payments, data-quality verdicts, and the whole AWS bill per
  hotspot (``aws_spend_daily``); variables plan, feature, model, stage.
* **GPU fleets** - the ADR-0005 metrics of each fleet (Telegraf's CloudWatch input), GPU
  hours and cost per day, rollouts and AMI promotions as annotations.
* **Pipeline health** - Airflow's own metrics (Telegraf's StatsD input): run durations,
  failed runs, task retries and failures, the scheduler's heartbeat, import errors.

Each dashboard is a list of rows, each row a list of :class:`PanelSpec`: what to show is
data, how the SDK builds it is :func:`panel`.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard, stat, table, timeseries
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, Threshold, ThresholdsMode, VariableRefresh

from include.economics.aws_spend import INFLUX_MEASUREMENT as SPEND
from include.economics.margin import ALL_PLANS, MARGIN_FLOOR_PCT
from include.naming import platform
from include.observability import catalogue
from include.observability.catalogue import ECONOMICS_BUCKET, FLEET_MEASUREMENT, TELEMETRY_BUCKET
from include.observability.flux import DATASOURCE, Flux, FluxAnnotation, FluxTarget, tag_values

DAILY_SUM = 'aggregateWindow(every: 1d, fn: sum, createEmpty: false, timeSrc: "_start")'
#: the day's point of a field that does not add up (a rate, a percentile, DAU): one per day
DAILY_LAST = 'aggregateWindow(every: 1d, fn: last, createEmpty: false, timeSrc: "_start")'
PANELS = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}


@dataclass(frozen=True)
class PanelSpec:
    kind: str
    title: str
    flux: Flux
    unit: str
    description: str
    span: int = 12
    #: red under this value, green from it (the margin floor)
    floor: float | None = None


def panel(spec: PanelSpec):
    """One panel reading ``spec.flux`` from the project's InfluxDB."""
    built = (
        PANELS[spec.kind]()
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .with_target(FluxTarget(spec.flux))
        .unit(spec.unit)
        .span(spec.span)
        .height(8)
    )
    if spec.floor is not None:
        steps = [Threshold(value=None, color="red"), Threshold(value=spec.floor, color="green")]
        built = built.thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
    return built


def variable(name: str, label: str, bucket: str, measurement: str, tag: str):
    """A multi-value variable (with All) of the values a tag has taken."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(tag_values(bucket, measurement, tag))
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
    )


def board(uid: str, title: str, description: str, time_from: str, rows: dict[str, list[PanelSpec]]):
    built = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["bp", uid.removeprefix("bp-")])
        .timezone("utc")
        .time(time_from, "now")
        .refresh("5m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
    )
    for row, specs in rows.items():
        built = built.with_row(dashboard.Row(row))
        for spec in specs:
            built = built.with_panel(panel(spec))
    return built


def _day(measurement: str, fields: list[str], where=(), then=None) -> Flux:
    """The fields per day: summed where they add up, else the day's point."""
    if then is None:
        then = (DAILY_SUM,) if all(catalogue.additive(field) for field in fields) else (DAILY_LAST,)
    return Flux(ECONOMICS_BUCKET, measurement, fields, where, then)


def _last(measurement: str, field: str, where=()) -> Flux:
    return _day(measurement, [field], where, ("last()",))


def _per(measurement: str, tag: str, variable_name: str, numerator: str, denominator: str) -> Flux:
    """``numerator / denominator`` per ``tag`` per day (e.g. cost per request per feature)."""
    ratio = f"if r.{denominator} > 0 then float(v: r.{numerator}) / float(v: r.{denominator}) else 0.0"
    return _day(
        measurement,
        [numerator, denominator],
        [(tag, f"${variable_name}")],
        (
            'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
            f"map(fn: (r) => ({{_time: r._time, {tag}: r.{tag}, _value: {ratio}}}))",
            f'group(columns: ["{tag}"])',
        ),
    )


def ai_economics():
    floor, everything, per_plan = float(MARGIN_FLOOR_PCT), [("plan", ALL_PLANS)], [("plan", "$plan")]
    anomalies = Flux(
        ECONOMICS_BUCKET,
        "ai_anomaly",
        ["value", "baseline"],
        start="-7d",
        stop="now()",
        then=(
            'pivot(rowKey: ["_time", "signal", "dimension", "severity"], columnKey: ["_field"], valueColumn: "_value")',
            "group()",
            'sort(columns: ["_time"], desc: true)',
        ),
    )
    money = ["revenue_usd", "ai_cost_usd", "infra_cost_usd", "margin_usd"]
    rows = {
        "The last computed day": [
            PanelSpec("stat", "AI cost", _last("ai_usage", "cost_usd"), "currencyUSD",
                      "Provider cost of every request of the day, priced by the catalogue.", 6),
            PanelSpec("stat", "Revenue", _last("ai_margin", "revenue_usd", everything), "currencyUSD",
                      "Charges and renewals less refunds, in USD (FX of the day).", 6),
            PanelSpec("stat", "Margin % (all plans)", _last("ai_margin", "margin_pct", everything), "percent",
                      f"Red under the margin floor ({MARGIN_FLOOR_PCT} %, Variable margin_floor_pct); a day whose "
                      "refunds exceed its revenue has none (the day before shows).", 6, floor),
            PanelSpec("stat", "Daily active users", _last("ai_usage", "dau"), "short",
                      "Users with at least one AI request that day.", 6),
        ],
        "Money per plan": [
            PanelSpec("timeseries", "Revenue, AI cost and margin per day", _day("ai_margin", money, per_plan),
                      "currencyUSD", "Per plan (variable Plan); 'all' is every plan, GPU infrastructure included."),
            PanelSpec("timeseries", "Margin % per plan", _day("ai_margin", ["margin_pct"], per_plan), "percent",
                      "Margin over revenue, per plan and for 'all'.", floor=floor),
        ],
        "Unit costs and load": [
            PanelSpec("timeseries", "Cost per request, per feature",
                      _per("ai_feature", "feature_name", "feature", "cost_usd", "requests"), "currencyUSD",
                      "AI cost of the day over its requests, per feature.", 8),
            PanelSpec("timeseries", "Cost per request, per model",
                      _per("ai_model", "model_name", "model", "cost_usd", "requests"), "currencyUSD",
                      "AI cost of the day over its requests, per model.", 8),
            PanelSpec("timeseries", "Tokens per minute, peak",
                      _day("ai_model", ["peak_tokens_per_minute"], [("model_name", "$model")]), "short",
                      "The busiest minute of the day, per model: what rate limits must hold.", 8),
            PanelSpec("timeseries", "Failure rate per feature",
                      _day("ai_feature", ["failure_rate"], [("feature_name", "$feature")]), "percentunit",
                      "Failed requests over requests, per feature.", 8),
            PanelSpec("timeseries", "p95 latency per model", _day("ai_model", ["p95_ms"], [("model_name", "$model")]),
                      "ms", "95th percentile of request duration, per model.", 8),
            PanelSpec("timeseries", "Daily active users per plan", _day("ai_plan", ["dau"], per_plan), "short",
                      "Users with at least one AI request, per plan.", 8),
        ],
        "Growth and renewals": [
            PanelSpec("timeseries", "Conversion free → paid", _day("ai_conversion", ["conversion_pct"], everything),
                      "percent", "Users who moved from the free plan to a paid one that day, over the users on "
                      "the free plan at its start (ai_conversion_daily).", 8),
            PanelSpec("stat", "Conversions, last day", _last("ai_conversion", "conversions", everything), "short",
                      "Free users who took a paid plan on the last computed day.", 8),
            PanelSpec("timeseries", "Renewals and failed renewals",
                      _day("ai_payment", ["renewals", "failed_renewals"], per_plan), "short",
                      "Plan renewals that went through and those that failed, per plan: recurring revenue at "
                      "risk (the renewal-failure alert reads their share).", 8),
        ],
        "The whole AWS bill": [
            PanelSpec("timeseries", "AWS spend per hotspot", _day(SPEND, ["cost_usd"], [("stage", "$stage")]),
                      "currencyUSD", "The day's AWS bill per stage (variable Stage) and seed 003 hotspot: NAT data "
                      "processing, CloudWatch Logs ingestion, S3 and CloudFront egress, GPU instances, other; and "
                      "the stage's total (aws_spend_daily, from Cost Explorer).", 16),
            PanelSpec("stat", "AWS spend, last day", _last(SPEND, "cost_usd", [("hotspot", "total")]), "currencyUSD",
                      "The last day's whole AWS bill, per stage.", 8),
        ],
        "What needs a look": [
            PanelSpec("table", "Anomalies (last 7 days)", anomalies, "short",
                      "Cost and token anomalies against the same-weekday baseline (ai_anomalies).", 8),
            PanelSpec("timeseries", "Failed payments per plan", _day("ai_payment", ["failed_payments"], per_plan),
                      "short", "Payments that failed that day, per plan: revenue at risk.", 8),
            PanelSpec("timeseries", "Data-quality gate: failed checks", _day("ai_quality", ["failed_checks"]), "short",
                      "Checks of the Great Expectations gate that failed, per suite and severity (a critical "
                      "one stops the day: it is then not published at all).", 8),
        ],
    }  # fmt: skip
    return (
        board("bp-ai-economics", "AI economics", "The daily control panel: what AI cost, what it earned, where the "
              "margin goes (ai_economics_daily).", "now-30d", rows)
        .with_variable(variable("plan", "Plan", ECONOMICS_BUCKET, "ai_margin", "plan"))
        .with_variable(variable("feature", "Feature", ECONOMICS_BUCKET, "ai_feature", "feature_name"))
        .with_variable(variable("model", "Model", ECONOMICS_BUCKET, "ai_model", "model_name"))
        .with_variable(variable("stage", "Stage", ECONOMICS_BUCKET, SPEND, "stage"))
    )  # fmt: skip


#: Contract metric (:mod:`gpu_worker.metrics`) -> (statistic, Grafana unit, what it tells), by row.
FLEET_PANELS = {
    "Load and scaling": {
        "QueueDepth": ("maximum", "short", "Jobs waiting; 0 for long enough scales the fleet to zero."),
        "BacklogPerInstance": ("average", "short", "Jobs per worker: what target tracking holds (1 -> N)."),
        "ActiveWorkers": ("average", "short", "Workers running jobs."),
        "AvailableCapacity": ("average", "short", "Workers free to take a job."),
    },
    "Health": {
        "JobCount": ("sum", "short", "Prompts the fleet's nodes finished (node agent)."),
        "JobProcessingP50": ("average", "s", "Median job processing time."),
        "JobProcessingTime": ("average", "s", "Mean prompt duration over every job (the verdicts read its p50)."),
        "ErrorRate": ("average", "percent", "Failed jobs over jobs (the P2 alarm's signal)."),
        "LeaseExpiredCount": ("sum", "short", "Jobs whose lease ran out (a worker died or hung)."),
    },
    "Leaving nodes": {
        "SpotInterruptionCount": ("sum", "short", "Spot interruption notices the nodes received (node agent)."),
        "DrainSeconds": ("maximum", "s", "Longest wait of a leaving node for its prompts (node agent)."),
        "DrainAbandonedJobs": ("sum", "short", "Prompts a leaving node could not finish by its deadline: 0."),
    },
    "GPUs": {
        "GPUUtilization": ("average", "percent", "GPU busy time over the fleet's nodes (NVML, node agent)."),
        "GPUMemoryUtilization": ("maximum", "percent", "GPU memory in use on the fullest node (NVML, node agent)."),
    },
}
FLEET_FILTER = [("stage", "$stage"), ("fleet_slug", "$fleet")]


def gpu_fleets():
    def panel(metric: str, statistic: str, unit: str, what: str) -> PanelSpec:
        return PanelSpec(
            "timeseries",
            f"{metric} ({statistic})",
            Flux(TELEMETRY_BUCKET, FLEET_MEASUREMENT, [catalogue.cloudwatch_field(metric, statistic)], FLEET_FILTER,
                 ("aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)",)),
            unit,
            what,
        )  # fmt: skip

    by_fleet = [("stage", "$stage"), ("fleet", "$fleet")]
    rows = {
        **{row: [panel(m, *spec) for m, spec in metrics.items()] for row, metrics in FLEET_PANELS.items()},
        "Cost": [
            PanelSpec("timeseries", "GPU hours per day", _day("ai_fleet", ["gpu_hours"], by_fleet), "h",
                      "Instance hours of each fleet (ai_economics_daily, from CloudWatch)."),
            PanelSpec("timeseries", "GPU cost per day", _day("ai_fleet", ["cost_usd"], by_fleet), "currencyUSD",
                      "What the margin carries for each fleet (Cost Explorer or the estimate)."),
        ],
    }  # fmt: skip
    changes = Flux(
        TELEMETRY_BUCKET,
        catalogue.CHANGE_MEASUREMENT,
        ["text"],
        by_fleet,
        ("map(fn: (r) => ({r with text: r._value}))",),
    )
    return (
        board(
            "bp-gpu-fleets",
            "GPU fleets",
            f"The ADR-0005 metrics of each fleet ({platform.WORKER_METRICS_NAMESPACE}, through Telegraf), "
            "with rollouts and AMI promotions marked.",
            "now-24h",
            rows,
        )
        .with_variable(variable("stage", "Stage", TELEMETRY_BUCKET, FLEET_MEASUREMENT, "stage"))
        .with_variable(variable("fleet", "Fleet", TELEMETRY_BUCKET, FLEET_MEASUREMENT, "fleet_slug"))
        .annotation(
            dashboard.AnnotationQuery()
            .name("Rollouts and AMI promotions")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("purple")
            .target(FluxAnnotation(changes))
        )
    )


def _airflow(measurement: str, field: str, where=(), group=("dag_id",), fn: str = "sum") -> Flux:
    columns = ", ".join(f'"{column}"' for column in group)
    return Flux(
        TELEMETRY_BUCKET,
        measurement,
        [field],
        [("dag_id", "$dag"), *where],
        (f"group(columns: [{columns}])", f"aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)"),
    )


def _service(measurement: str, fn: str) -> Flux:
    return Flux(
        TELEMETRY_BUCKET,
        measurement,
        ["value"],
        then=(f"aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: true)",),
    )


def pipeline_health():
    per_task = ("dag_id", "task_id")
    rows = {
        "Runs": [
            PanelSpec("timeseries", "DAG run duration (successful runs)",
                      _airflow("airflow_dagrun_duration_success", "upper", fn="max"), "ms",
                      "The longest successful run of each DAG in each interval."),
            PanelSpec("timeseries", "Failed DAG runs", _airflow("airflow_dagrun_duration_failed", "count"), "short",
                      "Runs that ended failed, per DAG."),
        ],
        "Tasks": [
            PanelSpec("timeseries", "Task retries",
                      _airflow("airflow_ti_finish", "value", [("state", "up_for_retry")], per_task), "short",
                      "Tries that ended up for retry, per task."),
            PanelSpec("timeseries", "Task failures", _airflow("airflow_ti_failures", "value", group=per_task),
                      "short", "Task instances that failed for good, per task."),
        ],
        "Services": [
            PanelSpec("timeseries", "Scheduler heartbeats", _service("airflow_scheduler_heartbeat", "sum"), "short",
                      "Zero means no scheduler is running: nothing gets scheduled."),
            PanelSpec("timeseries", "DAG import errors", _service("airflow_dag_processing_import_errors", "max"),
                      "short", "DAG files the dag-processor could not load (their DAGs stop being scheduled)."),
        ],
    }  # fmt: skip
    return board(
        "bp-pipeline-health",
        "Pipeline health",
        "Airflow's own metrics (StatsD through Telegraf): how long runs take, what fails, what retries.",
        "now-7d",
        rows,
    ).with_variable(variable("dag", "DAG", TELEMETRY_BUCKET, "airflow_ti_finish", "dag_id"))


#: file name (without .json) -> builder, in the order the summary lists them.
DASHBOARDS = {"ai-economics": ai_economics, "gpu-fleets": gpu_fleets, "pipeline-health": pipeline_health}
