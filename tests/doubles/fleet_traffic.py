"""A stand-in for the jobs the platform's backend sends to the GPU fleets and for what
the workers report about them (ADR-0005's ``ComfyUI/Workers`` metrics), which can't run
here. Loaded into the moto server beside :mod:`tests.doubles.gpu_node`.

Every :data:`REPORT_SECONDS` it puts, for each fleet with InService nodes, one datapoint
of ``JobCount``, ``ErrorRate``, ``JobProcessingP50`` and ``LeaseExpiredCount`` at the
current time, summed (jobs, leases) or job-weighted (rate, median) over the nodes, each
node behaving as the bundle it runs (:func:`tests.doubles.gpu_node.installed`) makes it:

* a healthy bundle: :data:`HEALTHY` (a job a second and a half, 1% errors, 4 s median);
* a **degraded bundle**, planted by tagging its ``manifest.json`` in the models bucket
  ``emulator:degraded`` = ``errors`` (25% of its jobs fail), ``slow`` (a 12 s median) or
  ``leases`` (a lease expires each report);
* a **quiet fleet**, planted by tagging its Auto Scaling group ``emulator:quiet`` (any
  value): its nodes run no jobs, and report ``JobCount`` 0 and nothing else.

Running **dev nodes** (``bp:role = dev-node``) report what EC2 and the CloudWatch agent
would: ``AWS/EC2 CPUUtilization`` and ``CWAgent nvidia_smi_utilization_gpu`` by
``InstanceId``, flat (1 %) unless the instance is tagged ``emulator:busy`` (an engineer
at work: 60 % CPU, 85 % GPU).

It reads the emulator's own state and never runs anything on the machine.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from moto.autoscaling.models import autoscaling_backends
from moto.cloudwatch.models import cloudwatch_backends
from moto.s3.models import s3_backends
from moto.ssm.models import ssm_backends

from gpu_worker import layout
from include.devnodes import usage
from include.naming import platform
from include.naming.fleet import Fleet
from tests.doubles import gpu_node

ACCOUNT, REGION = gpu_node.ACCOUNT, gpu_node.REGION
REPORT_SECONDS = 5.0
DEGRADED_TAG = "emulator:degraded"
QUIET_TAG = "emulator:quiet"
BUSY_TAG = "emulator:busy"
#: (CPU %, GPU %) of a dev node: flat, or in use
DEV_NODE_ACTIVITY = {False: (1.0, 1.0), True: (60.0, 85.0)}

log = logging.getLogger("bp.fleet_traffic")


@dataclass(frozen=True)
class NodeReport:
    """What one node reports for one period."""

    jobs: int
    error_rate: float
    p50_seconds: float
    leases_expired: int = 0


HEALTHY = NodeReport(jobs=3, error_rate=1.0, p50_seconds=4.0)
DEGRADED = {
    "errors": replace(HEALTHY, error_rate=25.0),
    "slow": replace(HEALTHY, p50_seconds=12.0),
    "leases": replace(HEALTHY, leases_expired=1),
}


def _degradation(prefix: str) -> str | None:
    """The ``emulator:degraded`` tag of the bundle's manifest, if it has one."""
    bucket_name = ssm_backends[ACCOUNT][REGION].get_parameter(platform.models_bucket_parameter())
    bucket = s3_backends[ACCOUNT]["global"].buckets.get(bucket_name.value) if bucket_name else None
    key = bucket.keys.get(f"{prefix}/manifest.json") if bucket else None
    if key is None:
        return None
    tags = s3_backends[ACCOUNT]["global"].tagger.get_tag_dict_for_resource(key.arn)
    return tags.get(DEGRADED_TAG)


def node_report(instance_id: str) -> NodeReport:
    prefix = gpu_node.installed(instance_id)
    if prefix == layout.NO_ACTIVE_BUNDLE:
        return HEALTHY
    return DEGRADED.get(_degradation(prefix) or "", HEALTHY)


def fleet_metrics(reports: list[NodeReport], quiet: bool) -> dict[str, float]:
    """One period of a fleet's metrics from its nodes' reports."""
    if quiet:
        return {"JobCount": 0.0}
    jobs = sum(r.jobs for r in reports)
    return {
        "JobCount": float(jobs),
        "ErrorRate": sum(r.error_rate * r.jobs for r in reports) / jobs,
        "JobProcessingP50": sum(r.p50_seconds * r.jobs for r in reports) / jobs,
        "LeaseExpiredCount": float(sum(r.leases_expired for r in reports)),
    }


def report_once(now: datetime | None = None) -> dict[Fleet, dict[str, float]]:
    """Put one period of metrics for every fleet with InService nodes; return them."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)  # moto keeps UTC datapoints naive
    published = {}
    for group in list(autoscaling_backends[ACCOUNT][REGION].autoscaling_groups.values()):
        nodes = [s.instance.id for s in group.instance_states if s.lifecycle_state == "InService"]
        tags = {t["Key"]: t["Value"] for t in group.tags}
        if not nodes or platform.STAGE_TAG not in tags or platform.FLEET_TAG not in tags:
            continue
        fleet = Fleet(tags[platform.STAGE_TAG], tags[platform.FLEET_TAG])
        metrics = fleet_metrics([node_report(n) for n in nodes], QUIET_TAG in tags)
        cloudwatch_backends[ACCOUNT][REGION].put_metric_data(
            platform.WORKER_METRICS_NAMESPACE,
            [
                {"MetricName": name, "Value": value, "Timestamp": now, "Dimensions": fleet.metric_dimensions}
                for name, value in metrics.items()
            ],
        )
        published[fleet] = metrics
    return published


def report_dev_nodes(now: datetime | None = None) -> dict[str, tuple[float, float]]:
    """One period of CPU and GPU use for every running dev node; instance id -> (cpu, gpu)."""
    from moto.ec2.models import ec2_backends

    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)  # moto keeps UTC datapoints naive
    reported = {}
    for reservation in list(ec2_backends[ACCOUNT][REGION].reservations.values()):
        for instance in reservation.instances:
            tags = {tag["key"]: tag["value"] for tag in instance.get_tags()}
            if instance.state != "running" or tags.get(platform.ROLE_TAG) != platform.DEV_NODE_ROLE:
                continue
            cpu, gpu = DEV_NODE_ACTIVITY[BUSY_TAG in tags]
            dimensions = [{"Name": "InstanceId", "Value": instance.id}]
            backend = cloudwatch_backends[ACCOUNT][REGION]
            for (namespace, metric), value in zip(usage.ACTIVITY_METRICS, (cpu, gpu), strict=True):
                point = {"MetricName": metric, "Value": value, "Timestamp": now, "Dimensions": dimensions}
                backend.put_metric_data(namespace, [point])
            reported[instance.id] = (cpu, gpu)
    return reported


def _report_forever(stop: threading.Event) -> None:
    while not stop.wait(REPORT_SECONDS):
        for report in (report_once, report_dev_nodes):  # one failing never silences the other
            try:
                report()
            except Exception:  # a report that failed is the next period's to make; the server goes on
                log.exception("%s failed", report.__name__)


def install() -> threading.Event:
    """Start reporting in the background (the moto server's process); set the returned
    event to stop."""
    stop = threading.Event()
    threading.Thread(target=_report_forever, args=(stop,), name="fleet-traffic", daemon=True).start()
    return stop
