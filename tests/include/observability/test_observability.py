"""The observability plane as code: dashboards and alert rules build with Grafana's SDK,
every query reads only what the project writes, every point keeps to the tag allow-list,
and Telegraf and InfluxDB are configured as the catalogue says. No Grafana, InfluxDB or
Telegraf server runs here: the files they would load are checked instead."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from include.alerts import SEVERITIES
from include.economics import daily, exports
from include.influx_tags import TAG_RULES, CardinalityError, check_tags
from include.naming import platform
from include.observability import build, catalogue, contract
from include.observability.changes import change_point
from include.observability.flux import DATASOURCE_UID
from tests.conftest import REPO_ROOT

PROVISIONING = REPO_ROOT / "infra" / "grafana" / "provisioning"
MEASUREMENTS = catalogue.measurements()


def _dashboards() -> dict[str, dict]:
    return build.provisioned()[0]


def _yaml(name: str) -> dict:
    return yaml.safe_load((PROVISIONING / "alerting" / name).read_text())


# --- the files Grafana loads are the ones the builders write ---------------------------


def test_the_committed_provisioning_files_are_what_make_dashboards_writes():
    assert build.main(["--check"]) == 0


def test_a_hand_edit_to_a_generated_file_is_caught(tmp_path, monkeypatch):
    rendered = build.rendered()
    path = next(p for p in rendered if p.name == "gpu-fleets.json")
    copy_of = tmp_path / path.name
    copy_of.write_text(rendered[path].replace("QueueDepth", "QueueDeep"))
    monkeypatch.setattr(build, "rendered", lambda: {copy_of: rendered[path]})
    assert build.main(["--check"]) == 1


def test_the_three_dashboards_build_and_read_the_provisioned_datasource():
    boards = _dashboards()
    assert set(boards) == {"ai-economics", "gpu-fleets", "pipeline-health"}
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())["datasources"][0]
    assert datasource["uid"] == DATASOURCE_UID
    assert len({board["uid"] for board in boards.values()}) == 3
    for board in boards.values():
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert panels, board["title"]
        for panel in panels:
            assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["description"], panel["title"]
    economics = boards["ai-economics"]
    assert [v["name"] for v in economics["templating"]["list"]] == ["plan", "feature", "model", "stage"]
    annotation = boards["gpu-fleets"]["annotations"]["list"][0]
    assert catalogue.CHANGE_MEASUREMENT in annotation["target"]["query"]
    fleet_fields = json.dumps(boards["gpu-fleets"])
    for metric in platform.WORKER_METRICS:  # every ADR-0005 metric has its panel
        assert catalogue.telegraf_snake_case(metric) in fleet_fields, metric


def test_the_summary_names_every_panel_and_rule():
    text = (REPO_ROOT / "docs" / "dashboards.md").read_text()
    for board in _dashboards().values():
        for panel in board["panels"]:
            assert panel["title"] in text
    for group in _yaml("rules.yaml")["groups"]:
        for rule in group["rules"]:
            assert rule["title"] in text


# --- the contract: queries read only what is written -----------------------------------


def test_every_dashboard_and_alert_query_reads_what_the_project_writes():
    count, problems = contract.check(*build.provisioned(), MEASUREMENTS)
    assert count > 50
    assert problems == []


@pytest.mark.parametrize(
    ("rename", "problem"),
    [
        (('r._field == "margin_pct"', 'r._field == "margin_percent"'), "field 'margin_percent'"),
        (('r._measurement == "ai_plan"', 'r._measurement == "ai_plans"'), "measurement 'ai_plans'"),
        (("r.feature_name =~", "r.feature =~"), "'feature' is neither a tag nor a field"),
        (('from(bucket: "economics")', 'from(bucket: "telemetry")'), "bucket 'telemetry'"),
    ],
)
def test_a_renamed_name_breaks_the_contract(rename, problem):
    queries = list(contract.dashboard_queries("ai-economics", _dashboards()["ai-economics"]))
    assert any(rename[0] in query for _, query in queries)
    found = [p for where, q in queries for p in contract.problems(where, q.replace(*rename), MEASUREMENTS)]
    assert any(problem in line for line in found), found


@pytest.mark.parametrize("field", ["margin_pct", "failure_rate", "p95_ms", "peak_tokens_per_minute", "dau"])
def test_a_panel_summing_what_does_not_add_up_breaks_the_contract(field):
    """Percentages, rates, percentiles, peaks and DAU summed over a window are right only
    while it holds one point: the panels take the day's point of these (fn: last)."""
    queries = contract.dashboard_queries("ai-economics", _dashboards()["ai-economics"])
    where, query = next((w, q) for w, q in queries if f'r._field == "{field}")' in q and "fn: last" in q)
    found = contract.problems(where, query.replace("fn: last", "fn: sum"), MEASUREMENTS)
    assert any(f"sums {field!r}, which does not add up" in line for line in found), found
    assert contract.problems(where, query, MEASUREMENTS) == []


@pytest.mark.parametrize(
    ("field", "adds_up"),
    [
        ("cost_usd", True),
        ("requests", True),
        ("gpu_hours", True),
        ("job_count_sum", True),
        ("value", True),
        ("margin_pct", False),
        ("error_rate_sum", False),
        ("gpu_utilization_sum", False),
        ("job_processing_p50_sum", False),
        ("queue_depth_maximum", False),
        ("95_percentile", False),
        ("mean", False),
    ],
)
def test_which_fields_add_up(field, adds_up):
    assert catalogue.additive(field) is adds_up


def test_a_renamed_warehouse_column_breaks_the_contract(monkeypatch):
    from include.economics import warehouse

    column = warehouse.TABLES["ai_margin_daily"].c.margin_pct
    monkeypatch.setattr(column, "name", "margin_percent")
    _, problems = contract.check(*build.provisioned(), catalogue.measurements())
    assert any("margin_pct" in line for line in problems)


def test_telegraf_names_as_its_documentation_shows():
    # the CloudWatch input's README: AWS/ELB -> cloudwatch_aws_elb, Latency/Average ->
    # latency_average, dimension LoadBalancerName -> tag load_balancer_name
    assert catalogue.cloudwatch_measurement("AWS/ELB") == "cloudwatch_aws_elb"
    assert catalogue.cloudwatch_field("Latency", "average") == "latency_average"
    assert catalogue.telegraf_snake_case("LoadBalancerName") == "load_balancer_name"
    assert catalogue.FLEET_MEASUREMENT == "cloudwatch_comfy_ui_workers"
    assert catalogue.cloudwatch_field("JobProcessingP50", "average") == "job_processing_p50_average"
    assert catalogue.telegraf_snake_case("FleetSlug") == "fleet_slug"


def test_airflow_statsd_metrics_arrive_as_the_catalogue_names_them():
    """Airflow's own StatsD logger, InfluxDB tags on, to a UDP socket: what Telegraf would
    receive, named as Telegraf names it (``.`` -> ``_``)."""
    from airflow._shared.observability.metrics.statsd_logger import get_statsd_logger
    from statsd import StatsClient

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        stats = get_statsd_logger(  # as [metrics] statsd_on + statsd_influxdb_enabled configure it
            stats_class=StatsClient,
            host="127.0.0.1",
            port=listener.getsockname()[1],
            prefix="airflow",
            influxdb_tags_enabled=True,
            statsd_influxdb_enabled=True,
            statsd_disabled_tags="job_id,run_id",
        )
        stats.incr("ti.finish", tags={"dag_id": "ai_economics_daily", "task_id": "compute", "state": "up_for_retry"})
        stats.incr("ti_failures", tags={"dag_id": "ai_economics_daily", "task_id": "compute"})
        stats.timing("dagrun.duration.failed", 1234, tags={"dag_id": "ai_economics_daily", "run_type": "scheduled"})
        received = [listener.recv(4096).decode() for _ in range(3)]
    for line in received:
        name, _, _ = line.partition(":")
        measurement, *tags = name.split(",")
        measurement = measurement.replace(".", "_")
        assert measurement in catalogue.AIRFLOW_METRICS, line
        assert {tag.split("=")[0] for tag in tags} <= MEASUREMENTS[measurement].tags, line


# --- alert rules, contact points, policies ----------------------------------------------


def _minutes(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()
    return int(value) * {"s": 1 / 60, "m": 1, "h": 60}[unit]


def test_every_rule_has_a_severity_a_sustained_window_context_and_a_runbook():
    rules = [rule for group in _yaml("rules.yaml")["groups"] for rule in group["rules"]]
    assert len(rules) >= 16
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["uid"]
        assert _minutes(rule["for"]) >= 5, rule["uid"]
        # context: the value or the series' labels, or (no data) what is missing
        assert "{{" in rule["annotations"]["summary"] or rule["noDataState"] == "Alerting", rule["uid"]
        assert len(rule["annotations"]["runbook"]) > 40, rule["uid"]
        assert rule["condition"] in {data["refId"] for data in rule["data"]}
        # provisioning interpolates $NAME in queries: no $ may reach a rule's data
        assert "$" not in json.dumps(rule["data"]), rule["uid"]
    titles = " ".join(rule["title"] for rule in rules)
    for signal in ("cost anomaly", "Tokens per minute", "Margin under", "Failed payments", "Economics not published",
                   "Economics run failed", "Fleet error rate", "Queue deep", "empty queue"):  # fmt: skip
        assert signal in titles
    for signal in ("Tokens per minute", "Fleet error rate", "Queue deep", "Margin under"):
        assert {r["labels"]["severity"] for r in rules if signal in r["title"]} == set(SEVERITIES)


# --- cardinality: the tags of every point the project writes ----------------------------


def _line_tags(line: str) -> dict[str, str]:
    head = re.split(r"(?<!\\) ", line, maxsplit=1)[0]
    return dict(part.split("=", 1) for part in head.split(",")[1:])


@pytest.fixture
def hand_checked_day(tmp_path):
    """The hand-checked day (tests/include/economics/fixture_day.py) in a SQLite ledger."""
    import sqlalchemy as sa

    from tests.include.economics import fixture_day

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    fixture_day.load_into(engine)
    yield engine
    engine.dispose()


def test_every_point_of_a_day_keeps_to_the_tag_allow_list(hand_checked_day):
    from include.economics.prices import PriceBook
    from tests.include.economics.fixture_day import DAY

    result = daily.compute_day(hand_checked_day, hand_checked_day, PriceBook.from_csv(), DAY)
    points = exports.influx_points(
        DAY, result.tables, {"pro": {"failed_payments": 3, "renewals": 4, "failed_renewals": 1}}
    )
    points.append(
        change_point("rollout", "staging", "gpu-default", "rollout of bundle b-1", "manual__x", datetime.now(UTC))
    )
    lines = exports.line_protocol(points).splitlines()
    assert len(lines) > 10
    for line in lines:
        tags = _line_tags(line)
        assert set(tags) <= set(TAG_RULES), line
        assert all(TAG_RULES[tag].allows(value) for tag, value in tags.items()), line
        assert "user" not in line.split(" ")[0], line


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ({"user_id": "42"}, "not in the tag allow-list"),
        ({"request_id": "req-0000001"}, "not in the tag allow-list"),
        ({"feature_name": "a free text feature name, typed by someone"}, "does not match"),
        ({"stage": "dev"}, "does not match"),
    ],
)
def test_a_tag_outside_the_allow_list_is_refused(tags, problem):
    with pytest.raises(CardinalityError, match=problem):
        check_tags("ai_feature", tags)


def test_a_day_with_an_unbounded_feature_name_writes_nothing():
    import pandas as pd

    from include.economics import warehouse

    row = {column.name: 0 for column in warehouse.TABLES["ai_feature_daily"].columns}
    frame = pd.DataFrame([row | {"day": date(2026, 11, 5), "feature_name": "user 42's custom prompt"}])
    with pytest.raises(CardinalityError, match="feature_name"):
        exports.influx_points(date(2026, 11, 5), {"ai_feature_daily": frame})


# --- Telegraf and InfluxDB ---------------------------------------------------------------


def test_telegraf_collects_what_the_catalogue_lists_and_keeps_only_allowed_tags():
    conf = tomllib.loads((REPO_ROOT / "infra" / "telegraf" / "telegraf.conf").read_text())
    assert conf["agent"]["omit_hostname"] is True
    [statsd] = conf["inputs"]["statsd"]
    assert statsd["metric_separator"] == "_"
    assert statsd["percentiles"] == [float(p) for p in catalogue.STATSD_PERCENTILES]
    assert set(statsd["namepass"]) == set(catalogue.AIRFLOW_METRICS)
    assert statsd["taginclude"] == list(catalogue.STATSD_TAGS)
    [cloudwatch] = conf["inputs"]["cloudwatch"]
    assert cloudwatch["namespaces"] == [platform.WORKER_METRICS_NAMESPACE]
    assert cloudwatch["statistic_include"] == list(catalogue.CLOUDWATCH_STATISTICS)
    assert cloudwatch["taginclude"] == list(catalogue.CLOUDWATCH_TAGS)
    for tags in (statsd["taginclude"], cloudwatch["taginclude"]):
        assert set(tags) <= set(TAG_RULES)
    [output] = conf["outputs"]["influxdb_v2"]
    assert output["bucket"] == catalogue.TELEMETRY_BUCKET


def test_influxdb_buckets_keep_raw_points_90_days_and_a_downsampled_copy_two_years():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())["services"]
    influx = compose["influxdb"]
    assert influx["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"] == catalogue.ECONOMICS_BUCKET
    assert influx["environment"]["DOCKER_INFLUXDB_INIT_RETENTION"] == f"{catalogue.RAW_RETENTION_DAYS}d"
    assert "./infra/influxdb/init:/docker-entrypoint-initdb.d:ro" in influx["volumes"]
    script = REPO_ROOT / "infra" / "influxdb" / "init" / "10-buckets.sh"
    created = dict(re.findall(r"--name (\w+) --retention (\d+)d", script.read_text()))
    assert created == {
        catalogue.TELEMETRY_BUCKET: str(catalogue.RAW_RETENTION_DAYS),
        catalogue.LONGTERM_BUCKET: str(catalogue.LONGTERM_RETENTION_DAYS),
    }
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    tasks = sorted((REPO_ROOT / "infra" / "influxdb" / "tasks").glob("*.flux"))
    sources = {re.search(r'from\(bucket: "(\w+)"\)', t.read_text())[1] for t in tasks}
    assert sources == {catalogue.TELEMETRY_BUCKET, catalogue.ECONOMICS_BUCKET}
    assert all(f'to(bucket: "{catalogue.LONGTERM_BUCKET}")' in t.read_text() for t in tasks)


def test_airflow_sends_its_metrics_to_telegraf_in_the_compose_stack():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())["services"]
    env = compose["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__METRICS__STATSD_ON"] == "true"
    assert env["AIRFLOW__METRICS__STATSD_HOST"] == "telegraf"
    assert env["AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED"] == "true"
    assert "./infra/telegraf/telegraf.conf:/etc/telegraf/telegraf.conf:ro" in compose["telegraf"]["volumes"]
