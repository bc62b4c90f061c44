"""Judge an instance refresh by the fleet's own metrics at each checkpoint and at its end."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.providers.standard.triggers.temporal import DateTimeTrigger

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import InstanceRefreshFailed, RolloutJudgedFailed
from bp_aws.sensors.autoscaling import describe_refresh
from bp_aws.utils.waiting import connection_kwargs, wait_then_resume
from gpu_worker import layout
from include.naming.fleet import Fleet
from include.rollouts import analysis


class RolloutAnalysisOperator(AwsOperator):
    """Follow an instance refresh from checkpoint to checkpoint; at each one, and when the
    refresh ends, wait a bake window (in the triggerer) and judge the fleet's
    ``ComfyUI/Workers`` metrics: the new bundle's nodes against the old bundle's over the
    same window while old ones still work, else the whole fleet against the window before
    the run began (:mod:`include.rollouts.analysis`):

    * success (or not applicable): the refresh goes on by itself when AWS's checkpoint
      delay ends (the refresh was started with one longer than the bake window);
    * failed: the refresh is cancelled and the task fails, naming the metric and its limit;
    * inconclusive: with ``ask_when_inconclusive`` the refresh is cancelled (AWS would go
      on by itself) and the task returns the question for a person; without it (a person
      already chose to go on), it is logged and the refresh goes on.

    Every analysis is logged as a table and pushed under the XCom key ``analyses``, also
    when the task fails, for the rollout's audit record. An inconclusive verdict also
    pushes ``question`` and ``remaining`` (checkpoints) under keys of their own, for the
    approval and the continued refresh downstream (``output["question"]``).

    .. seealso:: AutoScaling.Client.describe_instance_refreshes, CloudWatch.Client.get_metric_data

    :param auto_scaling_group_name: the group being refreshed. (templated)
    :param instance_refresh_id: the refresh to judge. (templated)
    :param fleet_stage: the fleet whose metrics are read. (templated)
    :param fleet_slug: (templated)
    :param checkpoint_percentages: where to judge; the refresh's own checkpoints, and its
        end (100) in any case. (templated)
    :param thresholds: a mapping with :class:`include.rollouts.analysis.Thresholds`'s
        fields (the rollout request has them). (templated)
    :param new_bundle_id: the bundle the refresh rolls out. (templated)
    :param old_bundle: the pointer's value before the run (``bundles/<id>``; None: the
        fleet had none): while its nodes still run jobs, the new bundle's are judged
        against them over the same window. (templated)
    :param ask_when_inconclusive: stop at an inconclusive verdict and ask a person.
    :param poll_interval: seconds between reads of the refresh. (default: 15)
    :return: ``verdict`` (success or inconclusive), ``checkpoint``, ``remaining``
        checkpoints, ``analyses`` and, when inconclusive, the ``question``.
    """

    aws_hook_path = "bp_aws.hooks.autoscaling.AutoScalingHook"
    template_fields: Sequence[str] = aws_template_fields(
        "auto_scaling_group_name",
        "instance_refresh_id",
        "fleet_stage",
        "fleet_slug",
        "checkpoint_percentages",
        "thresholds",
        "new_bundle_id",
        "old_bundle",
    )

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        instance_refresh_id: str,
        fleet_stage: str,
        fleet_slug: str,
        checkpoint_percentages: list[int] | None,
        thresholds: dict[str, Any],
        new_bundle_id: str,
        old_bundle: str | None,
        ask_when_inconclusive: bool = True,
        poll_interval: float = 15,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.auto_scaling_group_name = auto_scaling_group_name
        self.instance_refresh_id = instance_refresh_id
        self.fleet_stage = fleet_stage
        self.fleet_slug = fleet_slug
        self.checkpoint_percentages = checkpoint_percentages
        self.thresholds = thresholds
        self.new_bundle_id = new_bundle_id
        self.old_bundle = old_bundle
        self.ask_when_inconclusive = ask_when_inconclusive
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    @property
    def checkpoints(self) -> list[int]:
        return sorted({*(int(c) for c in self.checkpoint_percentages or []), 100})

    @property
    def limits(self) -> analysis.Thresholds:
        return analysis.Thresholds.from_params(self.thresholds)

    # --- checkpoint -> bake window -> verdict, once per checkpoint ----------------------

    def execute(self, context: Any) -> dict[str, Any]:
        return self._to_checkpoint(context, 0, [])

    def _to_checkpoint(self, context: Any, index: int, analyses: list[dict[str, Any]]) -> dict[str, Any]:
        from bp_aws.triggers.autoscaling import RefreshCheckpointTrigger

        trigger = RefreshCheckpointTrigger(
            auto_scaling_group_name=self.auto_scaling_group_name,
            instance_refresh_id=self.instance_refresh_id,
            percentage=self.checkpoints[index],
            waiter_delay=int(self.poll_interval),
            **connection_kwargs(self),
        )
        return wait_then_resume(self, context, trigger, "checkpoint_reached", {"index": index, "analyses": analyses})

    def checkpoint_reached(
        self, context: Any, event: dict[str, Any] | None = None, *, index: int, analyses: list[dict[str, Any]]
    ) -> dict[str, Any]:
        refresh = self._refresh()
        if event is not None and event.get("status") != "success":
            raise InstanceRefreshFailed(f"{describe_refresh(refresh)}: {event.get('message', 'wait ended early')}")
        bake = self.limits.bake_window_seconds
        self.log.info("%s; baking %d s before judging the %s", describe_refresh(refresh), bake, self._where(index))
        window_start = datetime.now(UTC)
        kwargs = {"index": index, "analyses": analyses, "window_start": window_start.isoformat()}
        if self.deferrable:
            self.defer(
                trigger=DateTimeTrigger(moment=window_start + timedelta(seconds=bake)),
                method_name="bake_window_ended",
                kwargs=kwargs,
            )
        time.sleep(bake)
        return self.bake_window_ended(context, None, **kwargs)

    def bake_window_ended(
        self,
        context: Any,
        event: Any = None,
        *,
        index: int,
        analyses: list[dict[str, Any]],
        window_start: str,
    ) -> dict[str, Any]:
        verdict = self._judge(context, index, datetime.fromisoformat(window_start))
        analyses = [*analyses, verdict.as_dict()]
        context["ti"].xcom_push(key="analyses", value=analyses)
        remaining = self.checkpoints[index + 1 :]
        if verdict.verdict == analysis.FAILED:
            stopped = self._stop_refresh()
            raise RolloutJudgedFailed(f"{verdict.summary()}. {stopped}")
        if verdict.verdict == analysis.INCONCLUSIVE and self.ask_when_inconclusive:
            stopped = self._stop_refresh()
            question = f"{verdict.summary()}. {stopped}\n\n{verdict.table()}\n\n" + (
                f"Approve to go on to {', '.join(f'{c}%' for c in remaining)} (AWS can't resume a stopped "
                "refresh: a new one replaces the whole fleet again); Reject to roll back."
                if remaining
                else "Approve to keep the new bundle; Reject to roll back."
            )
            # keys of their own: an operator's ``output["question"]`` is the XCom key, not an item
            context["ti"].xcom_push(key="question", value=question)
            context["ti"].xcom_push(key="remaining", value=remaining)
            return {
                "verdict": verdict.verdict,
                "checkpoint": self.checkpoints[index],
                "remaining": remaining,
                "analyses": analyses,
                "question": question,
            }
        if verdict.verdict == analysis.INCONCLUSIVE:
            self.log.warning("Inconclusive, and a person already chose to go on: going on")
        if remaining:
            self.log.info("The refresh goes on to %d%% when AWS's checkpoint delay ends", remaining[0])
            return self._to_checkpoint(context, index + 1, analyses)
        return {"verdict": analysis.SUCCESS, "checkpoint": 100, "remaining": [], "analyses": analyses}

    # --- helpers ----------------------------------------------------------------------

    def _where(self, index: int) -> str:
        percentage = self.checkpoints[index]
        return "end of the refresh" if percentage == 100 else f"{percentage}% checkpoint"

    def _refresh(self) -> dict[str, Any]:
        found = self.hook.describe_instance_refreshes(self.auto_scaling_group_name, self.instance_refresh_id)
        if not found:
            raise InstanceRefreshFailed(
                f"{self.auto_scaling_group_name} has no instance refresh {self.instance_refresh_id}"
            )
        return found[0]

    def _judge(self, context: Any, index: int, window_start: datetime) -> analysis.Analysis:
        fleet = Fleet(self.fleet_stage, self.fleet_slug)
        limits = self.limits
        group = self.hook.describe_group(self.auto_scaling_group_name)
        nodes = sum(1 for i in group["Instances"] if i["LifecycleState"] == "InService")
        metrics = self.hook_for("bp_aws.hooks.costs.FleetMetricsHook")
        began = context["dag_run"].start_date
        old_bundle = layout.bundle_id_of(self.old_bundle) if self.old_bundle else layout.NO_ACTIVE_BUNDLE
        readings = analysis.queries(
            fleet, began, window_start, limits.bake_window_seconds, self.new_bundle_id, old_bundle
        )
        figures = {
            name: analysis.figures_of(metrics.metric_data(queries, start, end))
            for name, (start, end, queries) in readings.items()
        }
        verdict = analysis.judge(analysis.Readings(**figures), limits, checkpoint=self._where(index), nodes=nodes)
        self.log.info("%s\n%s", verdict.summary(), verdict.table())
        return verdict

    def _stop_refresh(self) -> str:
        from bp_aws.hooks.autoscaling import ACTIVE_REFRESH_STATES

        refresh = self._refresh()
        if refresh["Status"] not in ACTIVE_REFRESH_STATES or refresh["Status"] == "Cancelling":
            return f"The instance refresh had ended ({refresh['Status']})."
        self.hook.cancel_instance_refresh(self.auto_scaling_group_name)
        return f"The instance refresh was stopped at {refresh.get('PercentageComplete', 0)}%."
