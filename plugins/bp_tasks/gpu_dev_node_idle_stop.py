"""Task bodies of ``gpu_dev_node_idle_stop``: the registry and CloudWatch read, the idle
rule in :mod:`include.devnodes.usage`; the stop itself is a ``gpu_dev_node`` run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import task

from include.devnodes import lifecycle

log = logging.getLogger("bp.gpu_dev_node_idle_stop")


@task
def find_idle_nodes(params: dict | None = None) -> list[dict]:
    """Running dev nodes whose heartbeat and CPU/GPU activity are older than their
    ``idle_stop_minutes``; each one's owner is alerted before it is stopped."""
    from bp_aws.hooks.costs import FleetMetricsHook
    from bp_aws.hooks.ec2_instances import Ec2InstanceHook
    from bp_aws.hooks.ssm_parameters import SsmParameterHook
    from bp_aws.notifiers.ops_alert import send_alert
    from include.alerts import Alert
    from include.devnodes import usage
    from include.naming import platform

    aws_conn_id = params["aws_conn_id"]
    now = datetime.now(UTC)
    metrics, ec2 = FleetMetricsHook(aws_conn_id=aws_conn_id), Ec2InstanceHook(aws_conn_id=aws_conn_id)
    ssm = SsmParameterHook(aws_conn_id=aws_conn_id)
    idle = []
    for stage in platform.STAGES:
        for node, registration in lifecycle.registered_in(stage, ssm.parameters_under):
            instance = ec2.describe_instance(registration.instance_id)
            if lifecycle.state_of(instance) != "running":
                continue
            minutes = int(registration.idle_stop_minutes or lifecycle.DEFAULT_IDLE_STOP_MINUTES)
            window = max(minutes, 5) * 2
            results = metrics.metric_data(
                usage.activity_queries(registration.instance_id), now - timedelta(minutes=window), now
            )
            points = usage.datapoints_of(results)
            verdict = usage.idle_verdict(
                idle_stop_minutes=minutes,
                last_heartbeat=lifecycle.parse_time(registration.last_heartbeat),
                last_active=usage.last_activity(points),
                now=now,
            )
            log.info(
                "%s (%s, owner %s): %s (%d minute(s) of CPU/GPU data in the last %d)",
                node,
                registration.instance_id,
                registration.owner,
                verdict.reason,
                len(points),
                window,
            )
            if not verdict.idle:
                continue
            send_alert(
                Alert(
                    severity="warning",
                    title=f"Dev node {node} is idle: stopping it",
                    metric="idle minutes",
                    value=verdict.quiet_minutes,
                    threshold=minutes,
                    dimensions={"devnode": node.name, "owner": registration.owner, "stage": stage},
                    detail=f"{verdict.reason}. Start it again with gpu_dev_node action=start.",
                ),
                stage=stage,
                aws_conn_id=aws_conn_id,
            )
            idle.append(
                {
                    "fleet_stage": stage,
                    "name": node.name,
                    "action": "stop",
                    "reason": f"idle stop: {verdict.reason}"[:200],
                    "aws_conn_id": aws_conn_id,
                }
            )
    log.info("%d idle dev node(s) to stop: %s", len(idle), ", ".join(f"{n['fleet_stage']}/{n['name']}" for n in idle))
    return idle
