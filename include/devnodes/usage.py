"""What dev nodes cost and when one is idle, from their lifecycle events and metrics.

EC2 bills an On-Demand instance while it runs ("You are charged for instance usage
while the instance is in the running state"), so a node's hours are the stretches its
lifecycle events put it in ``running``: from the start of the action that made it run
(create, start) to the end of the one that stopped it (stop, terminate, or a ``status``
that found it stopped from the console). Every event carries the state AWS reported
after it, failed ones included: a create whose readiness timed out still runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from include.naming import platform

#: Below this (percent) a minute of CPU and GPU counts as flat: the agent, sshd and the
#: SSM agent keep an idle GPU instance at 0-2 %.
ACTIVE_PERCENT = 5.0


@dataclass(frozen=True)
class DevNodeCost:
    """One dev node's hours running over a period (a day, a week) and what they cost."""

    stage: str
    name: str
    owner: str
    instance_type: str
    node_hours: float
    cost_usd: Decimal


def _moment(event: Mapping[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(event[key])


#: An action that began before midnight may end (and be written) after it.
WRITE_SLACK = timedelta(hours=1)


def events_for_day(listing: Iterable[Mapping[str, Any]], day: date) -> list[str]:
    """Of a listing of lifecycle-event objects (ListObjectsV2 ``Contents``: ``Key`` and
    ``LastModified``, an event being written when its action ends), the keys the cost of
    ``day`` needs: each node's events written during the day (and the hour after), and its
    last one before it - the state it entered the day in. A year of events is listed, not
    read."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1) + WRITE_SLACK
    by_node: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in listing:
        by_node[item["Key"].rsplit("/", 1)[0]].append(item)
    keys = []
    for items in by_node.values():
        before = [i for i in items if i["LastModified"] < start]
        if before:
            keys.append(max(before, key=lambda i: i["LastModified"])["Key"])
        keys += [i["Key"] for i in items if start <= i["LastModified"] < end]
    return sorted(keys)


def running_intervals(events: Iterable[Mapping[str, Any]], now: datetime) -> list[tuple[datetime, datetime]]:
    """The stretches one node ran, oldest first; one still running ends at ``now``."""
    intervals, since = [], None
    for event in sorted(events, key=lambda e: e["ended_at"]):
        running = event["to_state"] in ("pending", "running")
        if running and since is None:
            since = _moment(event, "started_at")
        elif not running and since is not None:
            intervals.append((since, _moment(event, "ended_at")))
            since = None
    if since is not None:
        intervals.append((since, now))
    return intervals


def hours_within(intervals: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    seconds = sum(max(0.0, (min(b, end) - max(a, start)).total_seconds()) for a, b in intervals)
    return seconds / 3600


def dev_node_days(
    events: Iterable[Mapping[str, Any]], day: date, now: datetime, prices: Mapping[str, Decimal]
) -> list[DevNodeCost]:
    """Every node that ran during ``day`` (UTC): its hours and their price. An instance
    type with no hourly price is an error naming it (a node is never silently free)."""
    by_node: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        by_node[(event["stage"], event["name"])].append(event)
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    days = []
    for (stage, name), node_events in sorted(by_node.items()):
        hours = hours_within(running_intervals(node_events, now), start, end)
        if hours <= 0:
            continue
        latest = max(node_events, key=lambda e: e["ended_at"])
        instance_type = next(
            (e["instance_type"] for e in sorted(node_events, key=lambda e: e["ended_at"]) if e.get("instance_type")),
            "",
        )
        if instance_type not in prices:
            raise ValueError(
                f"no hourly price for {instance_type!r} (dev node {stage}/{name}); set the Variable gpu_hourly_prices"
            )
        rounded = round(hours, 6)
        cost = Decimal(str(rounded)) * prices[instance_type]
        days.append(DevNodeCost(stage, name, latest.get("owner") or "", instance_type, rounded, cost))
    return days


#: What a dev node's activity is read from, per minute (its ``InstanceId`` dimension):
#: (namespace, metric, statistic, the value from which a minute counts as active). EC2's
#: own CPU; the GPU as the CloudWatch agent reports it (nvidia-smi) and as the node agent
#: does (NVML); and the prompts the node agent saw ComfyUI finish.
ACTIVITY_METRICS = (
    ("AWS/EC2", "CPUUtilization", "Maximum", ACTIVE_PERCENT),
    ("CWAgent", "nvidia_smi_utilization_gpu", "Maximum", ACTIVE_PERCENT),
    (platform.WORKER_METRICS_NAMESPACE, "GPUUtilization", "Maximum", ACTIVE_PERCENT),
    (platform.WORKER_METRICS_NAMESPACE, "JobCount", "Sum", 1.0),
)
#: A datapoint of GetMetricData is labelled with the start of its period: the activity it
#: sums went on until the period's end.
ACTIVITY_PERIOD_SECONDS = 60


def activity_queries(instance_id: str) -> list[dict[str, Any]]:
    """GetMetricData queries of :data:`ACTIVITY_METRICS`, one datapoint a minute."""
    return [
        {
            "Id": f"activity{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": metric,
                    "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                },
                "Period": ACTIVITY_PERIOD_SECONDS,
                "Stat": statistic,
            },
            "ReturnData": True,
        }
        for index, (namespace, metric, statistic, _) in enumerate(ACTIVITY_METRICS)
    ]


def datapoints_of(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """GetMetricData results (of :func:`activity_queries`) as datapoints: ``Timestamp``,
    ``Metric``, ``Value`` and whether the minute was ``Active``."""
    points = []
    for result in results:
        _, metric, _, threshold = ACTIVITY_METRICS[int(result["Id"].removeprefix("activity"))]
        for moment, value in zip(result["Timestamps"], result["Values"], strict=True):
            stamp = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            points.append({"Timestamp": stamp, "Metric": metric, "Value": float(value), "Active": value >= threshold})
    return points


def total(days: Iterable[DevNodeCost]) -> Decimal:
    return sum((d.cost_usd for d in days), Decimal(0))


def dev_node_table(day: date, days: Iterable[DevNodeCost]) -> pd.DataFrame:
    """The ``ai_devnode_daily`` rows."""
    columns = ["day", "stage", "name", "owner", "instance_type", "node_hours", "cost_usd"]
    return pd.DataFrame(
        [{"day": day, **{k: getattr(d, k) for k in columns[1:]}} for d in days],
        columns=columns,
    )


def last_activity(datapoints: Iterable[Mapping[str, Any]]) -> datetime | None:
    """The end of the latest active minute of :func:`datapoints_of`, or None."""
    active = [point["Timestamp"] for point in datapoints if point["Active"]]
    return max(active) + timedelta(seconds=ACTIVITY_PERIOD_SECONDS) if active else None


@dataclass(frozen=True)
class IdleVerdict:
    idle: bool
    quiet_minutes: int
    reason: str


def idle_verdict(
    *, idle_stop_minutes: int, last_heartbeat: datetime | None, last_active: datetime | None, now: datetime
) -> IdleVerdict:
    """A node is idle once neither its heartbeat (the last time it was seen ready, or its
    node agent saw it in use) nor any activity is newer than its ``idle_stop_minutes``."""
    marks = [moment for moment in (last_heartbeat, last_active) if moment is not None]
    if not marks:
        return IdleVerdict(True, idle_stop_minutes, "no heartbeat and no CPU, GPU or prompt activity on record")
    latest = max(marks)
    quiet = int((now - latest).total_seconds() // 60)
    what = "activity" if last_active is not None and latest == last_active else "heartbeat"
    if quiet >= idle_stop_minutes:
        return IdleVerdict(True, quiet, f"flat for {quiet} min (last {what} {latest.isoformat(timespec='minutes')})")
    return IdleVerdict(False, quiet, f"last {what} {quiet} min ago, under its {idle_stop_minutes} min")
