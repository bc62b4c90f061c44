"""The guardrail checks over plain data: each situation planted, and its neighbours that
must not be findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from include.fleets import guardrails as g
from include.fleets.lock import Holder
from include.naming.fleet import Fleet

FLEET = Fleet("staging", "gpu-default")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PRICES = {"g4dn.xlarge": Decimal("0.2256"), "g5.xlarge": Decimal("0.4024")}


def series(*values: float, step: int = 1) -> g.Series:
    """Minutely datapoints ending now, oldest first."""
    count = len(values)
    return g.Series.of([NOW - timedelta(minutes=step * (count - 1 - i)) for i in range(count)], values)


def idle_for(minutes: int) -> g.Series:
    return series(3, *([0] * (minutes + 1)))


TWO = [g.Instance("i-1", "g4dn.xlarge"), g.Instance("i-2", "g5.xlarge", protected_from_scale_in=True)]


def test_the_trailing_zeros_say_since_when_the_queue_is_empty():
    assert series(0, 2, 0, 0).zero_since() == NOW - timedelta(minutes=1)
    assert series(0, 0, 1).zero_since() is None
    assert g.Series(()).zero_since() is None
    assert series(4, 5).latest == 5


def test_a_leak_says_the_gpu_hours_and_dollars_so_far_and_per_hour():
    (leak,) = g.scale_to_zero_leak(FLEET, TWO, idle_for(75), 15, NOW, PRICES)

    # due at 0 after 15 minutes: 60 minutes overdue, two instances
    assert leak.check == "scale-to-zero leak"
    assert leak.remediation == "scale_to_zero"
    assert leak.dollars_per_hour == Decimal("0.6280")
    assert "2 instance(s) in service while QueueDepth has been 0 for 75 min" in leak.summary
    assert "2.00 GPU-hours, $0.63 so far, $0.63/hour" in leak.summary
    assert leak.details["instances"] == ["i-1", "i-2"]
    assert leak.severity == "warning"
    (long_leak,) = g.scale_to_zero_leak(FLEET, TWO, idle_for(200), 15, NOW, PRICES)
    assert long_leak.severity == "critical"


@pytest.mark.parametrize(
    ("instances", "queue", "why"),
    [
        (TWO, idle_for(24), "within scale_to_zero_minutes plus the grace"),
        ([], idle_for(300), "no instance"),
        (TWO, series(0, 0, 0, 2), "jobs wait now"),
        ([g.Instance("i-3", "g4dn.xlarge", "Terminating")], idle_for(300), "leaving already"),
    ],
)
def test_no_leak(instances, queue, why):
    assert g.scale_to_zero_leak(FLEET, instances, queue, 15, NOW, PRICES) == [], why


def test_missing_metrics_are_no_data_never_healthy_nor_a_leak():
    (finding,) = g.scale_to_zero_leak(FLEET, TWO, g.Series(()), 15, NOW, PRICES)
    assert finding.check == "no data"
    assert finding.remediation is None
    assert "QueueDepth" in finding.summary
    (active,) = g.capacity_without_work(FLEET, 1, idle_for(5), g.Series(()))
    assert active.check == "no data"


def test_protection_on_an_idle_fleet_is_stuck():
    (stuck,) = g.stuck_protection(FLEET, TWO, idle_for(40), NOW)
    assert stuck.details["instances"] == ["i-2"]
    assert "for 40 min" in stuck.summary
    assert g.stuck_protection(FLEET, TWO, series(0, 1), NOW) == []  # a job runs: protection is right


def test_capacity_without_work():
    (finding,) = g.capacity_without_work(FLEET, 2, series(0), series(0))
    assert finding.summary == "desired capacity 2 with QueueDepth 0 and ActiveWorkers 0"
    assert g.capacity_without_work(FLEET, 0, series(0), series(0)) == []
    assert g.capacity_without_work(FLEET, 2, series(0), series(1)) == []


def _instance(instance_id, instance_type="g4dn.xlarge", **tags):
    return {
        "InstanceId": instance_id,
        "InstanceType": instance_type,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def test_orphans_are_gpu_instances_of_the_stage_no_group_owns_and_no_dev_node():
    running = [
        _instance("i-fleet", stage="staging", fleet="gpu-default"),
        _instance("i-orphan", stage="staging", fleet="gone"),
        _instance("i-dev", **{"stage": "staging", "bp:role": "dev-node"}),
        _instance("i-prod", stage="production"),
        _instance("i-cpu", "m5.large", stage="staging"),
        _instance("i-untagged", "p4d.24xlarge"),
    ]
    findings = g.orphans(["staging"], running, {"i-fleet"}, PRICES)

    assert [(f.scope, f.check, f.summary.split()[0]) for f in findings] == [
        ("staging", "orphan GPU instance", "i-orphan"),
        ("account", "untagged GPU instance", "i-untagged"),
    ]
    assert findings[0].dollars_per_hour == Decimal("0.2256")
    assert findings[1].dollars_per_hour == 0  # no price known: said as $0, not guessed


def test_a_smoke_test_instance_is_left_over_only_once_its_build_run_has_ended():
    def smoke_instance(instance_id, run_id):
        tags = {"stage": "staging", "fleet": "gpu-default", "bp:role": "ami-smoke", "smoke_test_of": "ami-1"}
        return _instance(
            instance_id, "g5.xlarge", **tags, airflow_dag_id="gpu_ami_build_and_bake", airflow_run_id=run_id
        )

    running = [smoke_instance("i-live", "manual__live"), smoke_instance("i-left", "manual__killed")]
    states = {"manual__live": "running", "manual__killed": "failed"}

    findings = g.leftover_smoke_instances(["staging"], running, lambda dag_id, run_id: states[run_id], PRICES)

    [left] = findings
    assert (left.scope, left.check, left.remediation) == (
        "staging/gpu-default", "leftover smoke-test instance", "terminate_smoke_instance"
    )  # fmt: skip
    assert left.details == {"instance_id": "i-left"}
    assert "smoke-tested ami-1 for gpu_ami_build_and_bake manual__killed, a run that is failed" in left.summary
    assert g.orphans(["staging"], running, set(), PRICES) == []  # not an orphan: a check of its own


def test_a_lock_is_stale_only_when_its_run_has_ended():
    value = Holder.new("gpu_bundle_rollout", "manual__1", "rollout of bundle b").value()
    (stale,) = g.stale_lock(FLEET, value, "failed")
    assert stale.remediation == "release_lock"
    assert "held by gpu_bundle_rollout manual__1 (rollout of bundle b), a run that is failed" in stale.summary
    assert g.stale_lock(FLEET, value, "running") == []
    assert g.stale_lock(FLEET, None, None) == []
    assert g.stale_lock(FLEET, value, "gone")[0].details["holder_run_id"] == "manual__1"


def test_the_pointer_must_name_an_available_image():
    assert g.pointer_image(FLEET, "ami-1", "available") == []
    assert "no longer exists" in g.pointer_image(FLEET, "ami-1", None)[0].summary
    assert g.pointer_image(FLEET, "ami-1", "deregistered")[0].severity == "critical"


def test_drift_of_the_image_the_parameters_and_the_stack():
    assert g.launch_template_drift(FLEET, "ami-1", "ami-1") == []
    assert "instances run ami-0 while" in g.launch_template_drift(FLEET, "ami-0", "ami-1")[0].summary
    (params,) = g.parameter_drift(
        FLEET, {"MaxSize": "3", "WarmupSeconds": "300"}, {"MaxSize": "2", "WarmupSeconds": "300"}
    )
    assert params.summary.endswith("MaxSize '2' -> '3'")
    assert g.stack_drift(FLEET, []) == []
    (stack,) = g.stack_drift(FLEET, [{"LogicalResourceId": "Group", "StackResourceDriftStatus": "MODIFIED"}])
    assert "Group (MODIFIED)" in stack.summary


@pytest.mark.parametrize(
    ("per_hour", "severity"),
    [(Decimal("3"), None), (Decimal("3.4"), "warning"), (Decimal("4.2"), "critical")],
)
def test_spend_rate_against_the_daily_budget(per_hour, severity):
    findings = g.spend_rate("staging", per_hour, Decimal("100"))
    assert [f.severity for f in findings] == ([severity] if severity else [])
    assert g.spend_rate("staging", per_hour, None) == []


def test_what_a_remediation_saves_counts_each_fleet_once():
    leak = g.scale_to_zero_leak(FLEET, TWO, idle_for(75), 15, NOW, PRICES)
    stuck = g.stuck_protection(FLEET, TWO, idle_for(75), NOW)
    assert g.saved_per_hour([*leak, *stuck]) == Decimal("0.6280")


def test_nodes_whose_agents_went_silent_are_a_finding_and_a_fresh_or_reporting_fleet_is_not():
    fleet = Fleet("staging", "gpu-default")
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    reporting = g.Series.of([now - timedelta(minutes=2)], [0.0])  # an idle minute is still a report

    [silent] = g.silent_agents(fleet, now - timedelta(hours=1), g.Series(()), now)

    assert silent.check == "silent node agents"
    assert "no node agent published JobCount in the last 10 min" in silent.summary
    assert "bp-node-agent" in silent.action
    assert g.silent_agents(fleet, now - timedelta(hours=1), reporting, now) == []
    assert g.silent_agents(fleet, now - timedelta(minutes=3), g.Series(()), now) == []  # still booting
    assert g.silent_agents(fleet, None, g.Series(()), now) == []  # no node in service
