"""The dev-node lifecycle rules, names, hours and idle verdicts (include.devnodes)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from include.devnodes import lifecycle, usage
from include.devnodes.lifecycle import DevNodeRequest, Registration
from include.errors import InvalidRequest
from include.naming.dev_node import DevNode

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CREATE = {
    "action": "create",
    "fleet_stage": "staging",
    "name": "alice-sdxl",
    "owner": "alice",
    "fleet_slug": "gpu-default",
    "instance_type": "g5.xlarge",
    "idle_stop_minutes": 30,
}


def _registration(**changes) -> Registration:
    fields = {
        "instance_id": "i-0abc",
        "state": "running",
        "endpoint": "http://10.0.1.5:8188",
        "owner": "alice",
        "last_heartbeat": NOW.isoformat(),
        "source_fleet": "staging/gpu-default",
        "instance_type": "g5.xlarge",
        "idle_stop_minutes": "30",
        "created_at": (NOW - timedelta(days=2)).isoformat(),
    }
    return Registration(**{**fields, **changes})


def _instance(state="running", **tags) -> dict:
    tags = {"devnode": "alice-sdxl", "stage": "staging", "owner": "alice", "bp:role": "dev-node", **tags}
    return {
        "InstanceId": "i-0abc",
        "InstanceType": "g5.xlarge",
        "State": {"Name": state},
        "PrivateIpAddress": "10.0.1.5",
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def test_a_dev_node_owns_its_registry_lock_group_and_events():
    node = DevNode("staging", "alice-sdxl")
    assert node.registry_parameter("instance_id") == "/bp/devnodes/staging/alice-sdxl/instance_id"
    assert node.lock == "/bp/devnodes/staging/alice-sdxl/change_lock"
    assert node.resource_name == "bp-devnode-staging-alice-sdxl"
    assert node.instance_profile == "bp-devnode-staging"
    assert node.health_document == "bp-devnode-health-staging"
    assert node.lifecycle_event_key("manual__1") == "audit/devnodes/staging/alice-sdxl/manual__1.jsonl"
    assert node.tags("alice") == {
        "Name": "bp-devnode-staging-alice-sdxl",
        "devnode": "alice-sdxl",
        "owner": "alice",
        "stage": "staging",
        "bp:role": "dev-node",
    }
    with pytest.raises(KeyError, match="not a dev-node registry field"):
        node.registry_parameter("password")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "alice; rm -rf /"}, "name 'alice; rm -rf /' must be lowercase"),
        ({"name": "../etc"}, "name '../etc' must be lowercase"),
        ({"action": "explode"}, "action 'explode' is not one of create, start"),
        ({"owner": "Alice Smith"}, "owner 'Alice Smith' must be a user id"),
        ({"owner": None}, "owner is required to create a dev node"),
        ({"fleet_slug": None}, "fleet_slug is required to create a dev node"),
        ({"instance_type": None}, "instance_type is required"),
        ({"idle_stop_minutes": 0}, "idle_stop_minutes must be a whole number from 1 to 1440"),
        ({"reason": "line\nbreak"}, "reason must be one line"),
        ({"fleet_stage": "prod"}, "fleet_stage 'prod' is not one of staging, production"),
    ],
)
def test_bad_input_is_refused_with_the_param_and_the_rule(change, message):
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace("+", r"\+")):
        DevNodeRequest.from_params({**CREATE, **change})


def test_a_create_request_names_everything_the_run_needs():
    request = DevNodeRequest.from_params(CREATE)
    assert request.source_fleet.ami_pointer == "/bp/ami/fleets/staging/gpu-default"
    assert request.lock == "/bp/devnodes/staging/alice-sdxl/change_lock"
    assert request.wiring()["health_document"] == "bp-devnode-health-staging"
    assert request.wiring()["action"] == "create"
    assert DevNodeRequest.from_params({**CREATE, "action": "stop"}).source_fleet is None


@pytest.mark.parametrize("action", ["create", "stop"])
def test_a_request_comes_back_from_its_serialized_form_as_it_was(action):
    request = DevNodeRequest.from_params({**CREATE, "action": action, "reason": "after the demo"})
    data = json.loads(json.dumps(request.serialize()))

    assert DevNodeRequest.deserialize(data, DevNodeRequest.__version__) == request


def test_a_request_written_by_newer_code_is_refused():
    data = DevNodeRequest.from_params(CREATE).serialize()
    with pytest.raises(TypeError, match="version 2 is newer than this code's 1"):
        DevNodeRequest.deserialize(data, 2)


def test_an_instance_type_must_be_one_the_fleets_template_allows():
    fleet = DevNodeRequest.from_params(CREATE).source_fleet
    assert lifecycle.instance_type_problem("g5.xlarge", ("g4dn.xlarge", "g5.xlarge"), fleet) is None
    assert lifecycle.instance_type_problem("p5.48xlarge", ("g4dn.xlarge", "g5.xlarge"), fleet) == (
        "instance_type 'p5.48xlarge' is not allowed by fleet staging/gpu-default's template "
        "(allowed: g4dn.xlarge, g5.xlarge)"
    )


@pytest.mark.parametrize(
    ("action", "state", "problem"),
    [
        ("start", "terminated", "instance i-0abc is terminated: create the node again"),
        ("start", "stopping", "start acts on a node that is stopped; i-0abc is stopping"),
        ("restart", "stopped", "restart acts on a node that is running; i-0abc is stopped"),
        ("stop", "absent", "instance i-0abc is absent: create the node again"),
        ("start", "stopped", None),
        ("start", "running", None),  # a re-run: nothing to start, readiness is checked again
        ("stop", "stopped", None),
        ("terminate", "terminated", None),
        ("status", "terminated", None),
    ],
)
def test_each_action_acts_only_on_the_states_it_can_change(action, state, problem):
    request = DevNodeRequest.from_params({**CREATE, "action": action})
    instance = None if state == "absent" else _instance(state)
    found = lifecycle.refusal(request, _registration(), instance)
    if problem is None:
        assert found is None
    else:
        assert problem in (found or "")


def test_a_node_that_exists_is_not_created_twice_and_an_unknown_one_is_not_stopped():
    create = DevNodeRequest.from_params(CREATE)
    assert "exists already (i-0abc, running)" in lifecycle.refusal(create, _registration(), _instance())
    assert lifecycle.refusal(create, _registration(state="terminated"), _instance("terminated")) is None
    stop = DevNodeRequest.from_params({**CREATE, "action": "stop"})
    assert lifecycle.refusal(stop, None, None) == (
        "no dev node staging/alice-sdxl is registered (under /bp/devnodes/staging/alice-sdxl/): create it first"
    )
    assert lifecycle.nothing_to_do("stop", "stopped")
    assert not lifecycle.nothing_to_do("stop", "running")


def test_a_node_is_not_stopped_while_a_bundle_apply_runs_on_it():
    node = DevNode("staging", "alice-sdxl")
    ended = {"CommandId": "c-1", "DocumentName": "bp-bundle-apply-staging", "Status": "Success"}
    running = {"CommandId": "c-2", "DocumentName": "bp-bundle-apply-staging", "Status": "InProgress"}
    assert lifecycle.busy_commands_problem(node, "i-0abc", [ended]) is None
    assert lifecycle.busy_commands_problem(node, "i-0abc", [ended, running]) == (
        "a bundle apply runs on staging/alice-sdxl (i-0abc): c-2 (bp-bundle-apply-staging, InProgress); "
        "stop it once the apply has ended"
    )


def test_terminating_a_young_or_production_node_needs_an_approve():
    staging, production = DevNode("staging", "alice-sdxl"), DevNode("production", "alice-sdxl")
    old = _registration()
    young = _registration(created_at=(NOW - timedelta(minutes=20)).isoformat())
    assert lifecycle.terminate_needs_approval(staging, old, NOW) is None
    assert lifecycle.terminate_needs_approval(staging, young, NOW) == "it was created 20 minute(s) ago"
    assert lifecycle.terminate_needs_approval(production, young, NOW) == (
        "it is in production and it was created 20 minute(s) ago"
    )


def test_status_names_each_difference_between_the_registry_and_aws():
    node = DevNode("staging", "alice-sdxl")
    assert lifecycle.drift(node, _registration(), _instance()) == []
    assert lifecycle.drift(node, _registration(), _instance("stopped", owner="bob")) == [
        "state: the registry says running, EC2 says stopped",
        "owner: the registry says alice, the tag says bob",
    ]
    assert lifecycle.drift(node, _registration(), None) == ["the registry names i-0abc, which EC2 does not know"]


def test_the_registry_takes_awss_state_and_keeps_the_last_heartbeat():
    values = lifecycle.registry_values(
        instance=_instance("stopped"),
        owner="alice",
        source_fleet="staging/gpu-default",
        idle_stop_minutes=30,
        created_at="2026-11-28T12:00:00+00:00",
        heartbeat=None,
        previous=_registration(last_heartbeat="2026-11-30T11:00:00+00:00"),
    )
    assert values["state"] == "stopped"
    assert values["endpoint"] == "none"  # a stopped node serves nothing
    assert values["last_heartbeat"] == "2026-11-30T11:00:00+00:00"
    running = lifecycle.registry_values(
        instance=_instance(),
        owner="alice",
        source_fleet="staging/gpu-default",
        idle_stop_minutes=30,
        created_at="x",
        heartbeat=NOW.isoformat(),
        previous=None,
    )
    assert running["endpoint"] == "http://10.0.1.5:8188"
    assert running["last_heartbeat"] == NOW.isoformat()


def _event(action, to_state, start, end, **extra):
    return {
        "stage": "staging",
        "name": "alice-sdxl",
        "owner": "alice",
        "instance_type": "g5.xlarge",
        "action": action,
        "to_state": to_state,
        "started_at": start.isoformat(),
        "ended_at": end.isoformat(),
        **extra,
    }


def test_a_nodes_hours_are_the_stretches_its_events_put_it_in_running():
    day = date(2026, 11, 29)
    t = datetime(2026, 11, 29, tzinfo=UTC)
    events = [
        _event("create", "running", t - timedelta(hours=2), t - timedelta(hours=1, minutes=50)),  # since yesterday
        _event("status", "running", t + timedelta(hours=1), t + timedelta(hours=1)),
        _event("stop", "stopped", t + timedelta(hours=2), t + timedelta(hours=3)),  # billed until it stopped
        _event("start", "running", t + timedelta(hours=20), t + timedelta(hours=20, minutes=5)),  # still running
    ]
    intervals = usage.running_intervals(events, now=t + timedelta(days=2))
    assert intervals == [
        (t - timedelta(hours=2), t + timedelta(hours=3)),
        (t + timedelta(hours=20), t + timedelta(days=2)),
    ]
    days = usage.dev_node_days(events, day, t + timedelta(days=2), {"g5.xlarge": Decimal("1.006")})
    assert [(d.name, d.owner, d.node_hours) for d in days] == [("alice-sdxl", "alice", 7.0)]
    assert days[0].cost_usd == Decimal("7.0") * Decimal("1.006")
    assert usage.total(days) == Decimal("7.0420")
    table = usage.dev_node_table(day, days)
    assert list(table.columns) == ["day", "stage", "name", "owner", "instance_type", "node_hours", "cost_usd"]
    assert usage.dev_node_days(events, date(2026, 11, 27), t, {"g5.xlarge": Decimal(1)}) == []
    with pytest.raises(ValueError, match=r"no hourly price for 'g5.xlarge' \(dev node staging/alice-sdxl\)"):
        usage.dev_node_days(events, day, t, {})


def test_a_node_is_idle_once_neither_heartbeat_nor_activity_is_newer_than_its_limit():
    points = usage.datapoints_of(
        [
            {"Id": "activity1", "Timestamps": [NOW - timedelta(minutes=50)], "Values": [70.0]},  # GPU at work
            {"Id": "activity0", "Timestamps": [NOW - timedelta(minutes=10)], "Values": [1.5]},  # CPU flat: below 5 %
        ]
    )
    active = usage.last_activity(points)
    assert active == NOW - timedelta(minutes=49)  # the end of the minute it was active in
    heartbeat = NOW - timedelta(minutes=40)
    assert usage.last_activity(points[1:]) is None
    idle = usage.idle_verdict(idle_stop_minutes=30, last_heartbeat=heartbeat, last_active=active, now=NOW)
    assert idle.idle
    assert idle.quiet_minutes == 40
    assert idle.reason.startswith("flat for 40 min (last heartbeat")
    busy = usage.idle_verdict(idle_stop_minutes=60, last_heartbeat=heartbeat, last_active=active, now=NOW)
    assert not busy.idle
    assert usage.idle_verdict(idle_stop_minutes=30, last_heartbeat=None, last_active=None, now=NOW).idle


def test_activity_is_read_per_minute_from_ec2_both_gpu_agents_and_the_prompts_the_node_ran():
    queries = usage.activity_queries("i-0abc")
    assert [(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"]) for q in queries] == [
        ("CPUUtilization", "Maximum"),
        ("nvidia_smi_utilization_gpu", "Maximum"),
        ("GPUUtilization", "Maximum"),
        ("JobCount", "Sum"),
    ]
    assert {q["MetricStat"]["Period"] for q in queries} == {60}
    results = [
        {"Id": "activity0", "Timestamps": [NOW.replace(tzinfo=None)], "Values": [12.0]},
        {"Id": "activity3", "Timestamps": [NOW, NOW + timedelta(minutes=1)], "Values": [0.0, 1.0]},
    ]
    assert [(p["Metric"], p["Active"]) for p in usage.datapoints_of(results)] == [
        ("CPUUtilization", True),
        ("JobCount", False),  # a minute without a prompt
        ("JobCount", True),
    ]
    assert usage.last_activity(usage.datapoints_of(results)) == NOW + timedelta(minutes=2)


def test_the_port_forward_command_reaches_comfyui_without_an_open_port():
    command = lifecycle.port_forward_command("i-0abc")
    assert command.startswith("aws ssm start-session --target i-0abc --document-name AWS-StartPortForwardingSession")
    assert '"portNumber":["8188"]' in command


def test_a_day_reads_its_own_events_and_each_nodes_last_one_before_it():
    day = date(2026, 11, 29)
    at = datetime(2026, 11, 29, tzinfo=UTC)

    def item(node, hours):
        return {"Key": f"audit/devnodes/staging/{node}/run-{hours}.jsonl", "LastModified": at + timedelta(hours=hours)}

    listing = [
        item("alice", -300),  # long before: another event of alice's is newer
        item("alice", -5),  # the state alice entered the day in
        item("alice", 10),
        item("alice", 24.5),  # an action that began before midnight
        item("alice", 30),  # the day after: not this day's
        item("bob", -700),  # bob's node has run for a month: its start still counts
    ]
    assert usage.events_for_day(listing, day) == [
        "audit/devnodes/staging/alice/run--5.jsonl",
        "audit/devnodes/staging/alice/run-10.jsonl",
        "audit/devnodes/staging/alice/run-24.5.jsonl",
        "audit/devnodes/staging/bob/run--700.jsonl",
    ]


def test_the_registry_of_a_stage_lists_each_registered_node_once_by_name():
    from include.devnodes.lifecycle import registered_in
    from include.naming.dev_node import REGISTRY_FIELDS

    def registry(node: DevNode, instance_id: str) -> dict[str, str]:
        return {node.registry_parameter(field): f"{field}-of-{node.name}" for field in REGISTRY_FIELDS} | {
            node.registry_parameter("instance_id"): instance_id
        }

    bob, alice = DevNode("staging", "bob-flux"), DevNode("staging", "alice-sdxl")
    values = registry(bob, "i-0b") | registry(alice, "i-0a")
    values[DevNode("staging", "half-made").registry_parameter("owner")] = "carol"  # no instance: not registered

    def read_path(path: str) -> dict[str, str]:
        return {name: value for name, value in values.items() if name.startswith(path + "/")}

    found = registered_in("staging", read_path)

    assert [(str(node), registration.instance_id) for node, registration in found] == [
        ("staging/alice-sdxl", "i-0a"),
        ("staging/bob-flux", "i-0b"),
    ]
    assert registered_in("production", read_path) == []
