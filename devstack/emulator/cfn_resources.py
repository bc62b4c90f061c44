"""CloudFormation resource types moto 5.2.5 warns about and skips:
``AWS::AutoScaling::ScalingPolicy``, ``AWS::AutoScaling::LifecycleHook`` and
``AWS::CloudWatch::Alarm`` are created, updated and deleted with their stacks here. The
models register themselves with moto by subclassing :class:`CloudFormationModel`;
:func:`devstack.emulator.cloudformation.install` clears moto's cached model map so it
sees them.
"""

from __future__ import annotations

from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel


class ScalingPolicyResource(CloudFormationModel):
    """``AWS::AutoScaling::ScalingPolicy``; Ref is the policy ARN, as in AWS."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    @property
    def physical_resource_id(self) -> str:
        return self.policy.arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "PolicyName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::AutoScaling::ScalingPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.policy.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> ScalingPolicyResource:
        properties = cloudformation_json["Properties"]
        backend = autoscaling_backends[account_id][region_name]
        group = properties["AutoScalingGroupName"]
        if group not in backend.autoscaling_groups:
            raise ValueError(f"AutoScalingGroup name not found - {group}")
        policy = backend.put_scaling_policy(
            name=resource_name,
            policy_type=properties.get("PolicyType", "SimpleScaling"),
            metric_aggregation_type=properties.get("MetricAggregationType"),
            adjustment_type=properties.get("AdjustmentType"),
            as_name=group,
            min_adjustment_magnitude=properties.get("MinAdjustmentMagnitude"),
            scaling_adjustment=_int(properties.get("ScalingAdjustment")),
            cooldown=_int(properties.get("Cooldown")),
            target_tracking_config=properties.get("TargetTrackingConfiguration"),
            step_adjustments=properties.get("StepAdjustments"),
            estimated_instance_warmup=properties.get("EstimatedInstanceWarmup"),
            predictive_scaling_configuration=properties.get("PredictiveScalingConfiguration"),
        )
        return cls(policy)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> ScalingPolicyResource:
        # Create first: a failing update must leave the original policy in place.
        updated = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if updated.policy.name != original_resource.policy.name:
            autoscaling_backends[account_id][region_name].delete_policy(original_resource.policy.name)
        return updated

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        autoscaling_backends[account_id][region_name].delete_policy(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        autoscaling_backends[account_id][region_name].delete_policy(self.policy.name)

    def is_created(self) -> bool:
        return True


class AlarmResource(CloudFormationModel):
    """``AWS::CloudWatch::Alarm``; Ref is the alarm name, as in AWS."""

    def __init__(self, name: str, arn: str) -> None:
        self.name, self.arn = name, arn

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> AlarmResource:
        properties = cloudformation_json["Properties"]
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=properties.get("Namespace"),
            metric_name=properties.get("MetricName"),
            comparison_operator=properties["ComparisonOperator"],
            evaluation_periods=int(properties["EvaluationPeriods"]),
            period=_int(properties.get("Period")),
            threshold=float(properties["Threshold"]),
            statistic=properties.get("Statistic"),
            description=properties.get("AlarmDescription"),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in properties.get("Dimensions", [])],
            metric_data_queries=_metric_data_queries(properties.get("Metrics")),
            alarm_actions=properties.get("AlarmActions", []),
            ok_actions=properties.get("OKActions", []),
            insufficient_data_actions=properties.get("InsufficientDataActions", []),
            datapoints_to_alarm=_int(properties.get("DatapointsToAlarm")),
            treat_missing_data=properties.get("TreatMissingData"),
            unit=properties.get("Unit"),
        )
        return cls(resource_name, alarm.alarm_arn)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> AlarmResource:
        updated = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if new_resource_name != original_resource.name:
            cloudwatch_backends[account_id][region_name].delete_alarms([original_resource.name])
        return updated

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.name])

    def is_created(self) -> bool:
        return True


class LifecycleHookResource(CloudFormationModel):
    """``AWS::AutoScaling::LifecycleHook``; Ref is the hook's name, as in AWS."""

    def __init__(self, name: str, group_name: str) -> None:
        self.name, self.group_name = name, group_name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "LifecycleHookName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::AutoScaling::LifecycleHook"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> LifecycleHookResource:
        properties = cloudformation_json["Properties"]
        backend = autoscaling_backends[account_id][region_name]
        name = properties.get("LifecycleHookName") or resource_name
        backend.create_lifecycle_hook(
            name=name,
            as_name=properties["AutoScalingGroupName"],
            transition=properties["LifecycleTransition"],
            timeout=_int(properties.get("HeartbeatTimeout")),
            result=properties.get("DefaultResult", "ABANDON"),
        )
        return cls(name, properties["AutoScalingGroupName"])

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> LifecycleHookResource:
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        autoscaling_backends[account_id][region_name].delete_lifecycle_hook(self.group_name, self.name)

    def is_created(self) -> bool:
        return True


def _metric_data_queries(metrics: list[dict[str, Any]] | None) -> list[MetricDataQuery] | None:
    """An alarm's ``Metrics`` (metric math) in moto's own form, as its PutMetricAlarm builds them."""
    if not metrics:
        return None
    queries = []
    for metric in metrics:
        stat = metric.get("MetricStat")
        metric_stat = None
        if stat:
            watched = stat["Metric"]
            metric_stat = MetricStat(
                metric=Metric(
                    metric_name=watched["MetricName"],
                    namespace=watched["Namespace"],
                    dimensions=[Dimension(d["Name"], d["Value"]) for d in watched.get("Dimensions", [])],
                ),
                period=stat["Period"],
                stat=stat["Stat"],
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=metric["Id"],
                label=metric.get("Label"),
                period=metric.get("Period"),
                return_data=metric.get("ReturnData"),
                expression=metric.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


# --- change sets ------------------------------------------------------------------
