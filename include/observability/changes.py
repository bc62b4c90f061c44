"""Fleet changes as InfluxDB points: the GPU fleets dashboard draws each as an annotation
(a rollout, its rollback, an AMI promoted or revoked), next to the metrics it moved.

One point per change, stamped at the run's ``run_after``: a re-run or a cleared task
writes the same series and timestamp again, so it replaces the mark instead of adding a
second one. The run id goes in a field (a tag per run would be a series per run).
"""

from __future__ import annotations

from datetime import datetime

from influxdb_client import Point, WritePrecision

from include.influx_tags import check_tags
from include.observability.catalogue import CHANGE_KINDS, CHANGE_MEASUREMENT


def change_point(kind: str, stage: str, fleet: str, text: str, run_id: str, at: datetime) -> Point:
    if kind not in CHANGE_KINDS:
        raise ValueError(f"change kind {kind!r} is not one of {', '.join(CHANGE_KINDS)}")
    tags = {"stage": stage, "fleet": fleet, "kind": kind}
    check_tags(CHANGE_MEASUREMENT, tags)
    point = Point(CHANGE_MEASUREMENT).time(at, WritePrecision.S).field("text", text).field("run_id", run_id)
    for tag, value in tags.items():
        point = point.tag(tag, value)
    return point
