"""Spot interruptions, which moto never makes: planted by tagging an instance
``emulator:spot-interruption`` with the UTC time EC2 takes it back (ISO 8601, ``Z``).

AWS (EC2 user guide, "Spot Instance interruption notices"): "A Spot Instance interruption
notice is a warning that is issued two minutes before Amazon EC2 stops or terminates your
Spot Instance", made available "as items in the instance metadata on the Spot Instance":
``spot/instance-action`` "specifies the action and the approximate time, in UTC, when the
action will occur", and is absent until then. And (EC2 Auto Scaling user guide, health
checks): an instance that is terminated is unhealthy, and the group launches a replacement
to keep its desired capacity.

* :func:`notice`: the instance-action item of an instance, for the IMDS double;
* :func:`reclaim_due`: at the planted time EC2 terminates the instance - no lifecycle hook
  holds a reclaimed Spot instance - and its group launches a replacement.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends

from devstack.emulator import lifecycle

SPOT_TAG = "emulator:spot-interruption"


def _planted() -> dict[str, tuple[str, str, datetime]]:
    """Instance id -> (account, region, the time EC2 takes it back)."""
    found = {}
    for account, regions in list(ec2_backends.items()):
        for region, backend in list(regions.items()):
            for reservation in list(backend.reservations.values()):
                for instance in reservation.instances:
                    tags = {t["key"]: t["value"] for t in instance.get_tags()}
                    if SPOT_TAG in tags and instance.state == "running":
                        at = datetime.fromisoformat(tags[SPOT_TAG].replace("Z", "+00:00"))
                        found[instance.id] = (account, region, at)
    return found


def notice(instance_id: str) -> str | None:
    """``spot/instance-action`` as IMDS answers it; None (404) without a planted notice."""
    planted = _planted().get(instance_id)
    if planted is None:
        return None
    return json.dumps({"action": "terminate", "time": planted[2].strftime("%Y-%m-%dT%H:%M:%SZ")})


def reclaim_due(now: datetime | None = None) -> list[str]:
    """Terminate every instance whose planted time has come; its group replaces it. The ids."""
    now = now or datetime.now(UTC)
    reclaimed = []
    for instance_id, (account, region, at) in _planted().items():
        if at > now:
            continue
        backend = autoscaling_backends[account][region]
        groups = list(backend.autoscaling_groups.values())
        group = next((g for g in groups if any(s.instance.id == instance_id for s in g.instance_states)), None)
        if group is None:
            ec2_backends[account][region].terminate_instances([instance_id])
        else:  # out of its group, and out of a drain that may hold it: EC2 does not wait
            lifecycle.terminate(backend, group, instance_id)
            missing = group.desired_capacity - len(group.active_instances())
            if missing > 0:
                group.replace_autoscaling_group_instances(missing, group.get_propagated_tags())
        reclaimed.append(instance_id)
    return reclaimed
