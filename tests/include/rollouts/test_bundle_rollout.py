import hashlib
import hmac
import json

import pytest

from include.errors import InvalidRequest
from include.naming.dev_node import DevNode
from include.naming.fleet import Fleet
from include.rollouts import audit
from include.rollouts import rollout as bundle_rollout
from include.rollouts.rollout import RolloutRequest

GOOD = {"fleet_stage": "staging", "fleet_slug": "gpu-default", "bundle_id": "b-1", "strategy": "refresh"}


def _request(**change):
    return RolloutRequest.from_params({**GOOD, **change})


def test_a_request_names_the_fleets_pointer_lock_group_and_documents():
    request = _request(checkpoint_percentages=[50, 100])
    wiring = request.wiring()

    assert wiring["pointer_value"] == "bundles/b-1"
    assert wiring["active_bundle"] == Fleet("staging", "gpu-default").active_bundle
    assert request.lock == wiring["lock"] == Fleet("staging", "gpu-default").lock
    assert (wiring["apply_document"], wiring["status_document"]) == (
        "bp-bundle-apply-staging",
        "bp-bundle-status-staging",
    )
    assert wiring["checkpoint_percentages"] == [50, 100]
    assert wiring["thresholds"]["bake_window_seconds"] == request.thresholds.bake_window_seconds


@pytest.mark.parametrize(
    "change",
    [
        {"checkpoint_percentages": [50, 100], "min_jobs": 3},
        {"strategy": "dev_node", "instance_id": "i-0123456789abcdef0", "auto_rollback": False},
        {"rollback_of": "manual__2026-12-01T08:00:00+00:00"},
    ],
)
def test_a_request_comes_back_from_its_serialized_form_as_it_was(change):
    request = _request(**change)
    data = json.loads(json.dumps(request.serialize()))

    assert RolloutRequest.deserialize(data, RolloutRequest.__version__) == request


def test_a_request_written_by_newer_code_is_refused():
    with pytest.raises(TypeError, match="version 2 is newer than this code's 1"):
        RolloutRequest.deserialize(_request().serialize(), 2)


def test_a_dev_node_command_passes_parameter_names_never_values_and_never_the_fleets_pointer():
    node = DevNode("staging", "alice-sdxl")
    command = _request(strategy="dev_node", instance_id="i-0123456789abcdef0").dev_node_command(node.active_bundle)

    assert command["InstanceIds"] == ["i-0123456789abcdef0"]
    assert command["Parameters"] == {
        "bucketParameter": ["/bp/models/bucket"],
        "prefixParameter": ["/bp/devnodes/staging/alice-sdxl/active_bundle"],
    }
    assert Fleet("staging", "gpu-default").active_bundle not in str(command)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fleet_slug": "gpu; reboot"}, "fleet_slug 'gpu; reboot' must be lowercase"),
        ({"bundle_id": "$(reboot)"}, "bundle_id '$(reboot)' must be 1-128 letters"),
        ({"bundle_id": "../etc"}, "bundle_id '../etc' must be"),
        ({"bundle_id": "a b"}, "bundle_id 'a b' must be"),
        ({"strategy": "yolo"}, "strategy 'yolo' is not one of pointer_only, dev_node, refresh, bake_and_refresh"),
        ({"strategy": "dev_node"}, "strategy dev_node needs an instance_id"),
        ({"strategy": "dev_node", "instance_id": "i-0123456789abcdef0;reboot"}, "needs an instance_id"),
        ({"instance_id": "i-0123456789abcdef0"}, "instance_id is only for strategy dev_node, not refresh"),
        ({"min_healthy_percentage": 101}, "min_healthy_percentage must be a whole number from 0 to 100"),
        ({"checkpoint_percentages": [50, 20, 100]}, "checkpoint_percentages must rise strictly"),
        ({"checkpoint_percentages": [50]}, "and end at 100"),
        ({"auto_rollback": "yes"}, "auto_rollback must be true or false"),
    ],
)
def test_each_bad_param_is_refused_with_its_reason(change, message):
    with pytest.raises(InvalidRequest) as refused:
        _request(**change)
    assert message in str(refused.value)


def test_refresh_preferences_never_ask_aws_for_a_rollback_it_can_not_do():
    preferences = bundle_rollout.refresh_preferences(_request(checkpoint_percentages=[50, 100]), 240)

    assert preferences == {
        "MinHealthyPercentage": 90,
        "InstanceWarmup": 240,
        "SkipMatching": False,
        "AutoRollback": False,
        "ScaleInProtectedInstances": "Refresh",  # a node busy with a prompt is protected: replaced all the same
        "CheckpointPercentages": [50, 100],
        "CheckpointDelay": 900,  # the default bake window (600 s) and half of it again, at most 300 s
    }


def test_aws_pauses_at_a_checkpoint_for_the_bake_window_and_the_time_to_judge_it():
    short = _request(checkpoint_percentages=[50, 100], bake_window_seconds=30)
    continued = bundle_rollout.refresh_preferences(short, 240, (75, 100))

    assert bundle_rollout.refresh_preferences(short, 240)["CheckpointDelay"] == 30 + 15
    assert (continued["CheckpointPercentages"], continued["CheckpointDelay"]) == ([75, 100], 45)
    assert "CheckpointPercentages" not in bundle_rollout.refresh_preferences(short, 240, ())


def test_node_reports_must_all_name_the_bundle():
    def report(active, status="Success"):
        return {"Status": status, "StandardOutputContent": json.dumps({"active_bundle_id": active})}

    reports = {
        "i-1": report("b-1"),
        "i-2": report("b-0"),
        "i-3": {"Status": "Failed", "StandardErrorContent": "venv missing\n"},
        "i-4": {"Status": "Success", "StandardOutputContent": "active bundle: b-1"},
        "i-5": report(None),
    }

    assert bundle_rollout.node_report_problems(reports, "b-1") == [
        "i-2 reports bundle b-0, not b-1",
        "i-3 did not report (Failed: venv missing)",
        "i-4 answered something that is not the status JSON",
        "i-5 reports bundle none, not b-1",
    ]


def test_the_failure_summary_is_one_paragraph_of_what_failed_and_what_was_undone():
    request = _request()
    paragraph = bundle_rollout.failure_summary(
        request,
        ["wait_for_refresh"],
        ["/p restored to bundles/b-0 (version 4)", "the refresh r-1 was cancelled at 50%"],
    )

    assert paragraph == (
        "Rollout of bundle b-1 to staging/gpu-default (refresh) failed in wait_for_refresh. "
        "/p restored to bundles/b-0 (version 4). The refresh r-1 was cancelled at 50%."
    )
    assert "\n" not in paragraph
    assert bundle_rollout.failure_summary(request, ["check_bundle"], []).endswith("Nothing had changed.")


def test_the_audit_signature_is_an_hmac_of_timestamp_and_body():
    body = b'{"event": "bundle_rollout"}\n'

    headers = audit.signature_headers(body, "s3cret", 1_790_000_000)

    expected = hmac.new(b"s3cret", b"1790000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-BP-Signature"] == f"sha256={expected}"
    assert headers["X-BP-Timestamp"] == "1790000000"
    assert audit.signature_headers(body, "other", 1_790_000_000)["X-BP-Signature"] != headers["X-BP-Signature"]


def _instance(state="running", **tags):
    return {"State": {"Name": state}, "Tags": [{"Key": k.replace("_", ":"), "Value": v} for k, v in tags.items()]}


@pytest.mark.parametrize(
    ("instance", "problem"),
    [
        (None, "i-1 does not exist"),
        (_instance(stage="staging"), "i-1 is not a dev node (tag bp:role=dev-node is missing)"),
        (_instance(stage="production", bp_role="dev-node"), "i-1 is a dev node of stage 'production', not staging"),
        (_instance("stopped", stage="staging", bp_role="dev-node"), "i-1 is stopped, not running"),
    ],
    ids=["absent", "not-a-dev-node", "other-stage", "stopped"],
)
def test_a_dev_node_install_goes_only_to_a_running_dev_node_of_the_fleets_stage(instance, problem):
    registered = {"i-1": "staging/alice"}
    assert bundle_rollout.dev_node_problem("i-1", instance, "staging", registered) == f"instance {problem}"
    good = _instance(stage="staging", bp_role="dev-node")
    assert bundle_rollout.dev_node_problem("i-1", good, "staging", registered) is None
    assert bundle_rollout.dev_node_problem("i-1", good, "staging", {}) == (
        "instance i-1 is not a registered dev node of staging (create dev nodes with gpu_dev_node)"
    )
