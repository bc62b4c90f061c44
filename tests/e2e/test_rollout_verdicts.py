"""A rollout judged by the fleet's own metrics, end to end, on the Celery stack (the
judge defers at each checkpoint and bake window, and resumes on either worker): the
emulator's instance refreshes (paused at each checkpoint for CheckpointDelay) and each
node's real agent publishing ``ComfyUI/Workers`` every 2 s as its ComfyUI runs what the
node's bundle makes it run (tests/doubles/fleet_nodes.py: a degraded bundle, a quiet
fleet, a busy hour). A healthy refresh and its two analyses: tests/e2e/test_bundle_rollout_dag.py."""

from __future__ import annotations

import json
import re
import time

import pytest

from devstack import baseline
from gpu_worker import layout
from include.cli.airflow_client import AirflowApiError
from include.naming import platform
from include.naming.fleet import Fleet
from include.rollouts import analysis
from include.rollouts.rollback import rollback_run_id
from tests.doubles.fleet_nodes import DEGRADED_TAG, QUIET_TAG, RUSH_TAG
from tests.e2e.helpers import (
    POLL_SECONDS,
    QUICK_VERDICT,
    answer,
    log,
    provision_fleet,
    remove_fleet,
    run_to_end,
    scale,
    states,
)

pytestmark = [pytest.mark.e2e, pytest.mark.celery]

ROLLOUT, ROLLBACK = "gpu_bundle_rollout", "gpu_bundle_rollback"
MODELS = platform.models_bucket("123456789012")


@pytest.fixture(scope="module")
def stack(celery):
    return celery[0]


@pytest.fixture(scope="module")
def client(celery):
    return celery[1]


@pytest.fixture(scope="module")
def bundles(stack) -> dict[str, str]:
    """v1 and v2 of the sample bundle, and a degraded release (its nodes fail a job in four)."""
    s3 = stack.aws_client()("s3")
    ids = {release: baseline.sample_bundle_id(f"verdict-{release}") for release in ("v1", "v2", "bad")}
    for bundle_id in ids.values():
        baseline.upload_sample_bundle(s3, MODELS, bundle_id)
    s3.put_object_tagging(
        Bucket=MODELS,
        Key=layout.manifest_key(layout.bundle_prefix(ids["bad"])),
        Tagging={"TagSet": [{"Key": DEGRADED_TAG, "Value": "errors"}]},
    )
    return ids


@pytest.fixture(scope="module")
def fleet(stack, client, bundles):
    provisioned = provision_fleet(stack, client, "e2e-verdict", bundles["v1"])
    yield provisioned
    remove_fleet(stack, provisioned)


def _on(stack, fleet: Fleet, bundle_id: str, nodes: int = 2) -> None:
    """The fleet's ``nodes`` booted with ``bundle_id``, reporting."""
    scale(stack, fleet, 0)
    stack.aws_client()("ssm").put_parameter(
        Name=fleet.active_bundle, Value=layout.bundle_prefix(bundle_id), Type="String", Overwrite=True
    )
    scale(stack, fleet, nodes)


def _rollout(client, fleet: Fleet, bundle_id: str, **conf):
    conf = {"fleet_stage": fleet.stage, "fleet_slug": fleet.slug, "bundle_id": bundle_id, "strategy": "refresh"} | conf
    return client.trigger(ROLLOUT, {**QUICK_VERDICT, **conf})


def _finished(client, run):
    return client.wait_for_run(ROLLOUT, run.run_id, timeout=300)


def _pointer(stack, fleet: Fleet) -> str:
    return stack.aws_client()("ssm").get_parameter(Name=fleet.active_bundle)["Parameter"]["Value"]


def _audit(stack, fleet: Fleet, run_id: str) -> dict:
    s3 = stack.aws_client()("s3")
    return json.loads(s3.get_object(Bucket=stack.logs_bucket, Key=fleet.rollout_audit_key(run_id))["Body"].read())


@pytest.fixture
def quiet(stack, fleet):
    """The fleet runs no jobs while the test runs."""
    _tag_group(stack, fleet, QUIET_TAG, present=True)
    yield
    _tag_group(stack, fleet, QUIET_TAG, present=False)


def _tag_group(stack, fleet: Fleet, key: str, present: bool) -> None:
    autoscaling = stack.aws_client()("autoscaling")
    tag = {"ResourceId": fleet.auto_scaling_group, "ResourceType": "auto-scaling-group", "Key": key}
    if present:
        autoscaling.create_or_update_tags(Tags=[{**tag, "Value": "true", "PropagateAtLaunch": False}])
    else:
        autoscaling.delete_tags(Tags=[tag])


def _percent(cell: str) -> float:
    return float(cell.rstrip("%"))


def _seconds(cell: str) -> float:
    return float(cell.removesuffix(" s"))


def test_a_degraded_bundle_on_half_the_fleet_fails_against_the_old_half_though_the_fleet_average_passes(
    stack, client, fleet, bundles
):
    _on(stack, fleet, bundles["v1"])
    # the bad bundle's node fails one job in three (33 %) against the old node's 0 %: over
    # the 25 % limit; the whole fleet's average (about 17 %) is within it
    limits = {"error_rate_ceiling": 25.0, "error_rate_margin": 25.0}

    run = _finished(client, _rollout(client, fleet, bundles["bad"], checkpoint_percentages=[50, 100], **limits))

    found = states(client, ROLLOUT, run)
    assert run.state == "failed"
    assert (found["judge_refresh"], found["roll_back"], found["wait_for_roll_back"]) == ("failed", "success", "success")
    paragraph = log(client, ROLLOUT, run, "rollout_outcome")
    assert f"Rollout of bundle {bundles['bad']} to {fleet} (refresh) failed in judge_refresh." in paragraph
    assert re.search(
        r"At the 50% checkpoint the fleet's metrics failed: ErrorRate on the new bundle's nodes [\d.]+% broke its "
        r"limit <= 25%",
        paragraph,
    )
    assert "was cancelled at 50%" in paragraph
    assert _pointer(stack, fleet) == layout.bundle_prefix(bundles["v1"])
    [verdict] = _audit(stack, fleet, run.run_id)["analyses"]
    error_rate = next(row for row in verdict["rows"] if row["metric"] == "ErrorRate")
    assert (verdict["verdict"], verdict["compared"]) == ("failed", analysis.CANARY)
    assert _percent(error_rate["new bundle"]) > 25 >= _percent(error_rate["whole fleet"]), error_rate
    assert _percent(error_rate["old bundle"]) == 0


BUSY_BAKE = 30  # AWS then waits 45 s at the checkpoint: time to end the busy hour after the verdict


def _first_analysis(client, run, timeout: float = 300) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            analyses = client.xcom(ROLLOUT, run.run_id, "judge_refresh", key="analyses")
        except AirflowApiError:  # not pushed yet
            analyses = None
        if analyses:
            return analyses
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"no verdict at the first checkpoint in {timeout:.0f} s: {states(client, ROLLOUT, run)}")


def test_a_busy_hour_after_a_quiet_baseline_does_not_fail_a_healthy_bundle(stack, client, fleet, bundles):
    _on(stack, fleet, bundles["v1"])
    time.sleep(BUSY_BAKE)  # the window before the run: an ordinary hour, 4 s a prompt
    _tag_group(stack, fleet, RUSH_TAG, present=True)  # then every node's prompts take 3 times as long
    conf = {"checkpoint_percentages": [50, 100], "bake_window_seconds": BUSY_BAKE}
    try:
        run = _rollout(client, fleet, bundles["v2"], **conf)
        analyses = _first_analysis(client, run)
    finally:  # the busy hour ends before the last window (all nodes new: judged against the run's start)
        _tag_group(stack, fleet, RUSH_TAG, present=False)
    run = _finished(client, run)

    assert run.state == "success", states(client, ROLLOUT, run)
    at_50 = analyses[0]
    p50 = next(row for row in at_50["rows"] if row["metric"] == "JobProcessingTime p50")
    assert (at_50["checkpoint"], at_50["verdict"], at_50["compared"]) == ("50% checkpoint", "success", analysis.CANARY)
    # old and new alike slow; the whole fleet against the window before the run would have failed
    assert _seconds(p50["new bundle"]) <= 1.5 * _seconds(p50["old bundle"]), p50
    assert _seconds(p50["whole fleet"]) > 1.5 * _seconds(p50["before run"]), p50


@pytest.mark.parametrize(
    ("choice", "checkpoints"),
    [("Approve", [50, 100]), ("Reject", [])],  # asked at 50%, or at the end of the refresh
)
def test_a_quiet_fleet_asks_a_person_who_decides_whether_it_goes_on(
    stack, client, fleet, bundles, quiet, choice, checkpoints
):
    _on(stack, fleet, bundles["v1"])

    run = _rollout(client, fleet, bundles["v2"], checkpoint_percentages=checkpoints)
    try:
        answer(client, ROLLOUT, run, "approve_going_on", choice)
    except AssertionError as never_asked:  # say why, from the judge's own log
        raise AssertionError(f"{never_asked}: {log(client, ROLLOUT, run, 'judge_refresh')}") from None
    run = _finished(client, run)

    found = states(client, ROLLOUT, run)
    question = client.xcom(ROLLOUT, run.run_id, "judge_refresh")["question"]
    assert "0 job(s) in the window, fewer than the 5 needed to judge" in question
    if choice == "Approve":
        assert run.state == "success", found
        assert (found["continue_refresh"], found["judge_continued"], found["verify_fleet_bundle"]) == ("success",) * 3
        assert "a person already chose to go on" in log(client, ROLLOUT, run, "judge_continued")
        assert _pointer(stack, fleet) == layout.bundle_prefix(bundles["v2"])
    else:
        assert run.state == "failed"
        paragraph = log(client, ROLLOUT, run, "rollout_outcome")
        assert "failed in approve_going_on. Too few jobs to judge it, and a person rejected going on" in paragraph
        assert _pointer(stack, fleet) == layout.bundle_prefix(bundles["v1"])


def test_a_finished_rollout_is_rolled_back_by_its_run_id_then_refused_once_the_pointer_moved(
    stack, client, fleet, bundles
):
    _on(stack, fleet, bundles["v1"], nodes=0)  # refreshed, judged and verified nodes: the tests above
    earlier = _finished(client, _rollout(client, fleet, bundles["v2"], strategy="pointer_only"))
    assert earlier.state == "success"
    conf = {"fleet_stage": fleet.stage, "fleet_slug": fleet.slug, "rollout_run_id": earlier.run_id}

    rolled_back = run_to_end(client, ROLLBACK, {**conf, "checkpoint_percentages": [], **QUICK_VERDICT})
    again = run_to_end(client, ROLLBACK, conf)

    assert rolled_back.state == "success", states(client, ROLLBACK, rolled_back)
    assert _pointer(stack, fleet) == layout.bundle_prefix(bundles["v1"])
    record = _audit(stack, fleet, rollback_run_id(rolled_back.run_id))
    assert (record["rollback_of"], record["from_bundle"], record["to_bundle"]) == (
        earlier.run_id,
        layout.bundle_prefix(bundles["v2"]),
        layout.bundle_prefix(bundles["v1"]),
    )
    assert record["result"] == "success"
    assert again.state == "failed"
    refusal = log(client, ROLLBACK, again, "plan_rollback")
    assert f"holds {layout.bundle_prefix(bundles['v1'])}, not {layout.bundle_prefix(bundles['v2'])}" in refusal
    assert f"rollout {rollback_run_id(rolled_back.run_id)} (triggered by" in refusal
    assert states(client, ROLLBACK, again)["roll_back_rollout"] == "upstream_failed"
