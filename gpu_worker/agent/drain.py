"""Leaving without killing a job: a fleet node that is about to go drains first.

Two notices say a node is leaving, both read from the instance metadata (IMDSv2):

* ``autoscaling/target-lifecycle-state`` = ``Terminated``: its Auto Scaling group is
  terminating it (a scale-in, an instance refresh, the scale-to-zero Lambda). The group's
  ``autoscaling:EC2_INSTANCE_TERMINATING`` hook holds it in ``Terminating:Wait`` until the
  agent calls CompleteLifecycleAction (or the hook's heartbeat timeout passes);
* ``spot/instance-action`` (404 until then): EC2 reclaims the Spot instance at its ``time``,
  two minutes after the notice; nothing can hold it longer. AWS recommends checking for it
  every 5 seconds: the agent looks at every poll.

Draining: the agent writes the **drain file** (``BP_DRAIN_FILE``, ``/run/bp-agent/drain``:
JSON with the reason and the deadline). The job worker stops taking leases while it exists;
what ComfyUI already holds - the running prompt and those queued behind it - runs on. Once
ComfyUI's queue is empty, or at the deadline (the drain timeout, or the Spot instance's
last moment), the agent completes the lifecycle action with ``CONTINUE``. What it measured -
how long it waited, and the prompts still there at the deadline (killed with the node) -
goes out with the node's last period (``DrainSeconds``, ``DrainAbandonedJobs``; a notice
counts in ``SpotInterruptionCount``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_worker.agent.imds import InstanceMetadata

log = logging.getLogger("bp.agent")

DEFAULT_DRAIN_FILE = "/run/bp-agent/drain"
#: the Spot instance's last seconds are not the agent's: it completes before them
SPOT_MARGIN_SECONDS = 10.0
LIFECYCLE, SPOT = "the Auto Scaling group is terminating the node", "a Spot interruption notice"


@dataclass
class Drained:
    """What one drain did: why, how long it waited, the prompts left at its deadline."""

    reason: str
    seconds: float
    abandoned: int


class Drain:
    """Watches for the notices; drains once one comes."""

    def __init__(
        self,
        metadata: InstanceMetadata,
        autoscaling: Any,
        group: str,
        instance_id: str,
        *,
        hook: str | None,
        timeout_seconds: float,
        drain_file: Path,
    ) -> None:
        self.metadata = metadata
        self.autoscaling = autoscaling
        self.group = group
        self.instance_id = instance_id
        self.hook = hook
        self.timeout_seconds = timeout_seconds
        self.drain_file = drain_file
        self.reason: str | None = None
        self.started_at = 0.0
        self.deadline = 0.0
        self.spot_notices = 0
        self.outcome: Drained | None = None
        self.problem: str | None = None

    @property
    def draining(self) -> bool:
        return self.reason is not None and self.outcome is None

    def _notice(self, now: float) -> tuple[str, float] | None:
        """(reason, deadline) of a notice, or None while the node stays."""
        action = self.metadata.get_optional("spot/instance-action")
        if action:
            at = datetime.fromisoformat(json.loads(action)["time"].replace("Z", "+00:00")).timestamp()
            return SPOT, at - SPOT_MARGIN_SECONDS
        if self.hook and self.metadata.get_optional("autoscaling/target-lifecycle-state") == "Terminated":
            return LIFECYCLE, now + self.timeout_seconds
        return None

    def update(self, queued: int, now: float) -> bool:
        """One look; True while the node drains or has drained (it takes no new work)."""
        if self.outcome is not None:
            return True
        if self.reason is None:
            try:
                notice = self._notice(now)
            except (OSError, ValueError, KeyError) as error:  # IMDS unreachable, a notice we can't read
                if self.problem is None:
                    log.warning("can't read the instance's notices: %s: %s", type(error).__name__, error)
                self.problem = str(error)
                return False
            if self.problem is not None:
                log.info("the instance's notices can be read again")
                self.problem = None
            if notice is None:
                return False
            self.reason, self.deadline = notice
            self.started_at = now
            if self.reason == SPOT:
                self.spot_notices += 1
            self._write_drain_file(now)
            log.warning(
                "draining: %s; waiting for ComfyUI's %d prompt(s) until %s", self.reason, queued, _at(self.deadline)
            )
        if queued == 0 or now >= self.deadline:
            self._finish(queued, now)
        return True

    def _write_drain_file(self, now: float) -> None:
        body = json.dumps({"reason": self.reason, "since": _at(now), "deadline": _at(self.deadline)})
        self.drain_file.parent.mkdir(parents=True, exist_ok=True)
        written = self.drain_file.with_name(f".{self.drain_file.name}.new")
        written.write_text(body + "\n")
        os.replace(written, self.drain_file)

    def _finish(self, queued: int, now: float) -> None:
        self.outcome = Drained(self.reason or "", round(now - self.started_at, 1), queued)
        if queued:
            log.error("drain deadline reached with %d prompt(s) still in ComfyUI: they end with the node", queued)
        else:
            log.info("drained in %.0f s: no prompt left", now - self.started_at)
        if self.reason == LIFECYCLE:
            self._complete()

    def _complete(self) -> None:
        try:
            self.autoscaling.complete_lifecycle_action(
                LifecycleHookName=self.hook,
                AutoScalingGroupName=self.group,
                InstanceId=self.instance_id,
                LifecycleActionResult="CONTINUE",
            )
        except Exception as error:  # the hook's heartbeat timeout ends the wait all the same
            log.warning("CompleteLifecycleAction failed: %s: %s", type(error).__name__, error)
            return
        log.info("lifecycle action completed: the group terminates the node")


def _at(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
