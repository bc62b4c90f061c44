"""Every reader of ``ComfyUI/Workers`` reads what the contract (gpu_worker/metrics.py) says
is published, with a statistic the contract lists; the README shows the contract as code
has it; what the node agent publishes is what the contract gives it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gpu_worker import metrics
from gpu_worker.agent.comfyui import FinishedPrompt
from gpu_worker.agent.gpu import GpuReading
from gpu_worker.agent.period import Period
from include.devnodes import usage
from include.economics import review
from include.fleets import inspection
from include.observability import catalogue, dashboards
from include.rollouts import analysis
from tests.conftest import REPO_ROOT
from tests.infra.conftest import load_template

README = REPO_ROOT / "README.md"


def _template_reads(node: Any) -> list[tuple[str, str]]:
    """(metric, statistic) of every ComfyUI/Workers metric a CloudFormation template reads."""
    found = []
    if isinstance(node, dict):
        if node.get("Namespace") == metrics.NAMESPACE and "MetricName" in node:
            found.append((node["MetricName"], node.get("Statistic")))
        if isinstance(node.get("Metric"), dict) and node["Metric"].get("Namespace") == metrics.NAMESPACE:
            found.append((node["Metric"]["MetricName"], node.get("Stat")))
        for value in node.values():
            found += _template_reads(value)
    elif isinstance(node, list):
        for value in node:
            found += _template_reads(value)
    return found


def _readers() -> dict[str, list[tuple[str, str]]]:
    fleet = load_template(REPO_ROOT / "infra" / "cloudformation" / "gpu-fleet.yaml")
    return {
        "rollout verdicts": list(analysis.STATISTICS.items()),
        "guardrails": list(inspection.METRICS_READ.items()),
        "fleet stack alarms": [(m, s) for m, s in _template_reads(fleet) if s],
        "dev-node idle stop": [(m, s) for ns, m, s, _ in usage.ACTIVITY_METRICS if ns == metrics.NAMESPACE],
        "weekly review": [(m, s) for m, stats in review.FLEET_METRICS.items() for s in stats],
    }


@pytest.mark.parametrize("reader", sorted(_readers()))
def test_every_reader_reads_a_published_metric_with_a_listed_statistic(reader):
    reads = _readers()[reader]

    assert reads
    for metric, statistic in reads:
        assert metric in metrics.BY_NAME, f"{reader} reads {metric}, which nobody publishes"
        assert statistic in metrics.metric(metric).statistics, f"{reader} reads {metric} {statistic}"


def test_telegraf_fetches_and_the_fleets_board_shows_exactly_the_contract():
    # which fields the dashboards and alert rules may read is the catalogue's, built from the
    # contract: tests/include/observability/test_observability.py checks every query against it
    telegraf = (REPO_ROOT / "infra" / "telegraf" / "telegraf.conf").read_text()
    names = re.search(r"names = \[(.*?)\]", telegraf).group(1)
    panels = {m for row in dashboards.FLEET_PANELS.values() for m in row}

    assert [n.strip().strip('"') for n in names.split(",")] == [m.name for m in metrics.CONTRACT]
    assert panels == set(metrics.BY_NAME)
    fleet_fields = catalogue.measurements()[catalogue.FLEET_MEASUREMENT].fields
    assert catalogue.cloudwatch_field("JobCount", "sum") in fleet_fields


def test_the_readme_shows_the_contract_as_the_code_has_it():
    text = README.read_text()
    start, end = "<!-- metric-contract:start -->", "<!-- metric-contract:end -->"
    shown = text[text.index(start) + len(start) : text.index(end)].strip()

    assert shown == metrics.markdown_table()


def test_what_the_agent_publishes_is_what_the_contract_gives_the_node_agent():
    # the minute a node drained after a Spot notice: every figure an agent can publish
    period = Period(started_at=1_800_000_000.0, busy=True, spot_notices=1, drained=(42.0, 0))
    period.prompts += [FinishedPrompt("a", False, 4.0, 1.0), FinishedPrompt("b", True, 6.0, 2.0)]
    period.gpu.append(GpuReading(50.0, 20.0, ("NVIDIA A10G",)))
    fleet = [{"Name": "Stage", "Value": "staging"}, {"Name": "FleetSlug", "Value": "gpu-default"}]
    bundle = [*fleet, {"Name": "BundleId", "Value": "b1"}]

    datums = period.datums([fleet, bundle])

    node_metrics = {m.name for m in metrics.CONTRACT if m.publisher == metrics.NODE_AGENT}
    assert {d["MetricName"] for d in datums} == node_metrics
    for datum in datums:
        contract = metrics.metric(datum["MetricName"])
        assert datum["Unit"] == contract.unit
        assert tuple(d["Name"] for d in datum["Dimensions"]) in contract.dimensions


def test_adr_0005s_metrics_are_all_in_the_contract_with_the_two_the_node_adds():
    adr_0005 = {
        "QueueDepth",
        "BacklogPerInstance",
        "ActiveWorkers",
        "AvailableCapacity",
        "JobProcessingP50",
        "ErrorRate",
        "LeaseExpiredCount",
        "SpotInterruptionCount",
    }

    assert set(metrics.BY_NAME) >= adr_0005 | {"JobCount", "JobProcessingTime"}
