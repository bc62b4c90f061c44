"""The verdict on a rollout's bake window (include.rollouts.analysis), and the rollback of
a finished rollout (include.rollouts.rollback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devstack.fleet_metrics import put_minutely
from include.errors import InvalidRequest
from include.naming.fleet import Fleet
from include.rollouts import analysis, rollback
from include.rollouts.analysis import Figures, Readings, Thresholds

LIMITS = Thresholds(min_jobs=20)
BASELINE = Figures(jobs=200, error_rate=1.0, p50_seconds=4.0, leases_expired=0)
FLEET = Fleet("staging", "gpu-default")


def _judge(window: Figures, baseline: Figures = BASELINE, nodes: int = 2) -> analysis.Analysis:
    """Every node new (the end of a refresh): the whole fleet against the window before the run."""
    readings = Readings(before=baseline, fleet=window, new=window)
    return analysis.judge(readings, LIMITS, checkpoint="50% checkpoint", nodes=nodes)


def test_a_window_like_its_baseline_succeeds_and_every_limit_says_ok():
    verdict = _judge(Figures(jobs=180, error_rate=1.5, p50_seconds=4.4, leases_expired=0))

    assert verdict.verdict == analysis.SUCCESS
    assert [row[-1] for row in verdict.rows] == ["ok"] * 4
    assert verdict.summary() == "Analysis at 50% checkpoint on 2 node(s): success"


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (Figures(jobs=100, error_rate=6.0, p50_seconds=4.0), "ErrorRate 6% broke its limit <= 3%"),
        (Figures(jobs=100, error_rate=3.5, p50_seconds=4.0), "ErrorRate 3.50% broke its limit <= 3%"),
        (Figures(jobs=100, error_rate=1.0, p50_seconds=6.5), "JobProcessingTime p50 6.50 s broke its limit <= 6 s"),
        (
            Figures(jobs=100, error_rate=1.0, p50_seconds=4.0, leases_expired=1),
            "LeaseExpiredCount 1 broke its limit = 0",
        ),
    ],
)
def test_each_broken_limit_fails_the_window_and_is_named(window, reason):
    verdict = _judge(window)

    assert verdict.verdict == analysis.FAILED
    assert verdict.reasons == (reason,)
    assert "FAILED" in verdict.table()


def test_the_ceiling_holds_when_the_baseline_is_already_bad():
    verdict = _judge(Figures(jobs=100, error_rate=5.5), baseline=Figures(jobs=100, error_rate=4.9))

    assert (verdict.verdict, verdict.reasons) == (analysis.FAILED, ("ErrorRate 5.50% broke its limit <= 5%",))


def test_too_few_jobs_is_inconclusive_unless_a_lease_expired():
    quiet = _judge(Figures(jobs=3, error_rate=33.3, p50_seconds=4.0))
    lost_node = _judge(Figures(jobs=3, error_rate=0.0, leases_expired=2))

    assert quiet.verdict == analysis.INCONCLUSIVE
    assert quiet.reasons == ("3 job(s) in the window, fewer than the 20 needed to judge",)
    assert [row[-1] for row in quiet.rows] == ["FAILED", "not judged", "not judged", "ok"]
    assert lost_node.verdict == analysis.FAILED


def test_a_fleet_at_zero_nodes_with_no_jobs_is_not_applicable_and_says_so():
    verdict = _judge(Figures(), nodes=0)

    assert verdict.verdict == analysis.NOT_APPLICABLE
    assert verdict.summary() == (
        "Analysis at 50% checkpoint on 0 node(s): not applicable "
        "(the fleet is at 0 nodes and ran no jobs: nothing to judge)"
    )


def test_without_a_baseline_only_the_ceiling_and_the_leases_judge():
    verdict = _judge(Figures(jobs=50, error_rate=2.0, p50_seconds=30.0), baseline=Figures())

    assert verdict.verdict == analysis.SUCCESS
    assert verdict.rows[2] == ("JobProcessingTime p50", "-", "-", "30 s", "30 s", "-", "ok")


def test_the_analysis_is_one_table_and_a_record():
    verdict = _judge(Figures(jobs=100, error_rate=9.0, p50_seconds=4.0))
    lines = verdict.table().splitlines()

    header = ["metric", "before", "run", "old", "bundle", "new", "bundle", "whole", "fleet", "limit", "verdict"]
    assert lines[0].split() == header
    assert any(line.split()[:1] == ["ErrorRate"] and "FAILED" in line for line in lines)
    assert lines[-1] == "Judged: the whole fleet against the window before the run."
    assert verdict.as_dict()["compared"] == analysis.BEFORE_RUN
    assert verdict.as_dict()["rows"][1] == {
        "metric": "ErrorRate",
        "before run": "1%",
        "old bundle": "-",
        "new bundle": "9%",
        "whole fleet": "9%",
        "limit": "<= 3%",
        "verdict": "FAILED",
    }


# --- the new bundle's nodes against the old bundle's, over the same window ---------------

HALF_AND_HALF = {
    "before": Figures(jobs=100, error_rate=0.0, p50_seconds=4.0),
    "old": Figures(jobs=50, error_rate=0.0, p50_seconds=4.0),
}


def test_a_bad_bundle_on_half_the_fleet_fails_against_the_old_half_though_the_fleet_average_passes():
    canary_limits = Thresholds(min_jobs=20, error_rate_ceiling=20.0, error_rate_margin=20.0)
    readings = Readings(
        **HALF_AND_HALF,
        new=Figures(jobs=48, error_rate=33.3, p50_seconds=4.0),
        fleet=Figures(jobs=98, error_rate=16.3, p50_seconds=4.0),
    )

    verdict = analysis.judge(readings, canary_limits, checkpoint="50% checkpoint", nodes=2)
    fleet_alone = analysis.judge(
        Readings(before=readings.before, fleet=readings.fleet), canary_limits, checkpoint="50% checkpoint", nodes=2
    )

    assert (verdict.verdict, verdict.compared) == (analysis.FAILED, analysis.CANARY)
    assert verdict.reasons == ("ErrorRate on the new bundle's nodes 33.30% broke its limit <= 20%",)
    assert verdict.rows[1] == ("ErrorRate", "0%", "0%", "33.30%", "16.30%", "<= 20%", "FAILED")
    assert (fleet_alone.verdict, fleet_alone.compared) == (analysis.SUCCESS, analysis.BEFORE_RUN)


def test_a_busy_hour_slows_old_and_new_alike_and_does_not_fail_a_healthy_bundle():
    busy = Figures(jobs=60, error_rate=0.0, p50_seconds=12.0)
    readings = Readings(before=Figures(jobs=60, error_rate=0.0, p50_seconds=4.0), fleet=busy, new=busy, old=busy)

    verdict = analysis.judge(readings, LIMITS, checkpoint="50% checkpoint", nodes=2)
    against_before = analysis.judge(
        Readings(before=readings.before, fleet=busy), LIMITS, checkpoint="50% checkpoint", nodes=2
    )

    assert (verdict.verdict, verdict.compared) == (analysis.SUCCESS, analysis.CANARY)
    assert verdict.rows[2] == ("JobProcessingTime p50", "4 s", "12 s", "12 s", "12 s", "<= 18 s", "ok")
    assert against_before.verdict == analysis.FAILED


def test_too_few_jobs_on_the_new_nodes_is_inconclusive_however_busy_the_old_ones():
    readings = Readings(
        before=BASELINE,
        fleet=Figures(jobs=205, error_rate=1.0, p50_seconds=4.0),
        new=Figures(jobs=5, error_rate=0.0, p50_seconds=4.0),
        old=Figures(jobs=200, error_rate=1.0, p50_seconds=4.0),
    )

    verdict = analysis.judge(readings, LIMITS, checkpoint="10% checkpoint", nodes=10)

    assert verdict.verdict == analysis.INCONCLUSIVE
    assert verdict.reasons == ("5 job(s) on the new bundle's nodes in the window, fewer than the 20 needed to judge",)


def test_a_lease_that_expired_anywhere_in_the_fleet_fails_the_canary_too():
    readings = Readings(
        **HALF_AND_HALF,
        new=Figures(jobs=50, error_rate=0.0, p50_seconds=4.0),
        fleet=Figures(jobs=100, error_rate=0.0, p50_seconds=4.0, leases_expired=1),
    )

    verdict = analysis.judge(readings, LIMITS, checkpoint="50% checkpoint", nodes=2)

    assert (verdict.verdict, verdict.reasons) == (analysis.FAILED, ("LeaseExpiredCount 1 broke its limit = 0",))


def test_the_old_bundle_is_read_only_when_the_rollout_changes_the_bundle():
    began = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    changing = analysis.queries(FLEET, began, began + timedelta(minutes=3), 600, "b-2", "b-1")
    same = analysis.queries(FLEET, began, began + timedelta(minutes=3), 600, "b-2", "b-2")

    def bundle(reading) -> list[str]:
        return [d["Value"] for d in reading[2][0]["MetricStat"]["Metric"]["Dimensions"] if d["Name"] == "BundleId"]

    assert set(changing) == {"before", "fleet", "new", "old"}
    assert set(same) == {"before", "fleet", "new"}
    assert (bundle(changing["new"]), bundle(changing["old"]), bundle(changing["fleet"])) == (["b-2"], ["b-1"], [])
    assert changing["before"][:2] == (began - timedelta(minutes=10), began)
    assert changing["new"][:2] == (began + timedelta(minutes=3), began + timedelta(minutes=13))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bake_window_seconds": 5}, "bake_window_seconds must be from 15 to 21600"),
        ({"p50_ratio": 0.5}, "p50_ratio must be from 1.0 to 100.0"),
        ({"min_jobs": 2.5}, "min_jobs must be a whole number"),
        ({"error_rate_ceiling": True}, "error_rate_ceiling must be a number"),
    ],
)
def test_bad_thresholds_are_refused_with_their_rule(change, message):
    with pytest.raises(InvalidRequest, match=message):
        Thresholds.from_params(change)


def test_aws_waits_at_a_checkpoint_for_the_bake_window_and_time_to_judge():
    assert Thresholds().checkpoint_delay_seconds() == 600 + 300
    assert Thresholds(bake_window_seconds=20).checkpoint_delay_seconds() == 20 + 10


def test_the_windows_are_read_from_cloudwatch_one_period_each(aws):
    cloudwatch = aws("cloudwatch")
    began = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    put_minutely(cloudwatch, FLEET, {"JobCount": [10.0] * 5, "ErrorRate": [1.0, 3.0] + [2.0] * 3}, began)
    put_minutely(
        cloudwatch, FLEET, {"JobCount": [20.0] * 3, "JobProcessingTime": [5.0] * 3}, began + timedelta(minutes=4)
    )
    spans = analysis.windows(began + timedelta(seconds=1), began + timedelta(minutes=2), 5 * 60)

    figures = {
        name: analysis.figures_of(
            cloudwatch.get_metric_data(
                MetricDataQueries=analysis.metric_queries(FLEET, start, end), StartTime=start, EndTime=end
            )["MetricDataResults"]
        )
        for name, (start, end) in spans.items()
    }

    assert figures["baseline"] == Figures(jobs=50.0, error_rate=2.0, p50_seconds=None, leases_expired=None)
    assert figures["window"] == Figures(jobs=60.0, error_rate=None, p50_seconds=5.0, leases_expired=None)


# --- rolling back a finished rollout -------------------------------------------------

RUN = "manual__2026-11-30T08:00:00+00:00"
RECORD = {
    "run_id": RUN,
    "result": "success",
    "strategy": "refresh",
    "from_bundle": "bundles/b-1",
    "to_bundle": "bundles/b-2",
    "triggered_by": "alice",
    "ended_at": "2026-11-30T08:20:00+00:00",
}


def _refusal(record=RECORD, pointer="bundles/b-2", going_to=None):
    return rollback.refusal(FLEET, RUN, record, pointer, "rollout manual__x (triggered by bob)", going_to)


def test_a_finished_rollout_whose_bundle_is_still_live_can_be_rolled_back():
    request = rollback.RollbackRequest.from_params(
        {"fleet_stage": "staging", "fleet_slug": "gpu-default", "rollout_run_id": RUN, "bake_window_seconds": 30}
    )

    assert _refusal() is None
    assert _refusal(going_to="bundles/b-1") is None
    assert rollback.rollout_conf(request, RECORD, "aws_default") == {
        "fleet_stage": "staging",
        "fleet_slug": "gpu-default",
        "bundle_id": "b-1",
        "strategy": "refresh",
        "checkpoint_percentages": [],
        **vars(Thresholds(bake_window_seconds=30)),
        "rollback_of": RUN,
        "aws_conn_id": "aws_default",
    }


@pytest.mark.parametrize(
    ("record", "pointer", "going_to", "reason"),
    [
        (None, "bundles/b-2", None, f"there is no audit record of a rollout {RUN} on staging/gpu-default"),
        ({**RECORD, "result": "failed"}, "bundles/b-2", None, "ended failed: it changed nothing, or was rolled back"),
        ({**RECORD, "strategy": "dev_node"}, "bundles/b-2", None, "installed a bundle on one dev node"),
        ({**RECORD, "from_bundle": "none"}, "bundles/b-2", None, "its first bundle: there is nothing to go back to"),
        (RECORD, "bundles/b-3", None, "holds bundles/b-3, not bundles/b-2 that rollout"),
        (RECORD, "bundles/b-2", "bundles/b-9", "went from bundles/b-1, not bundles/b-9"),
    ],
)
def test_a_rollback_is_refused_when_it_would_undo_something_else(record, pointer, going_to, reason):
    assert reason in _refusal(record, pointer, going_to)


def test_the_refusal_names_who_moved_the_pointer():
    newer = {**RECORD, "run_id": "manual__later", "to_bundle": "bundles/b-3", "triggered_by": "bob", "ended_at": "9"}
    history = [{"Version": 7, "LastModifiedUser": "arn:aws:iam::123456789012:user/carol", "LastModifiedDate": "d"}]

    assert (
        rollback.pointer_writer([RECORD, newer], "bundles/b-3", history) == "rollout manual__later (triggered by bob)"
    )
    assert rollback.pointer_writer([RECORD], "bundles/b-3", history) == (
        "arn:aws:iam::123456789012:user/carol (version 7, d, outside gpu_bundle_rollout)"
    )
    assert "moved it since" in _refusal(pointer="bundles/b-3")


def test_a_rollback_request_comes_back_from_its_serialized_form_as_it_was():
    request = rollback.RollbackRequest.from_params(
        {"fleet_stage": "staging", "fleet_slug": "gpu-default", "rollout_run_id": RUN}
        | {"checkpoint_percentages": [50, 100], "min_jobs": 4}
    )
    data = json.loads(json.dumps(request.serialize()))

    assert rollback.RollbackRequest.deserialize(data, 1) == request
    with pytest.raises(TypeError, match="RollbackRequest version 2 is newer than this code's 1"):
        rollback.RollbackRequest.deserialize(data, 2)


def test_a_rollback_request_is_checked_before_any_aws_call():
    with pytest.raises(InvalidRequest, match="is not a run id"):
        rollback.RollbackRequest.from_params(
            {"fleet_stage": "staging", "fleet_slug": "gpu-default", "rollout_run_id": "a b"}
        )
