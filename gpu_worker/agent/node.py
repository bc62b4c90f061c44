"""The node agent: what a GPU node reports about itself, and the protection it asks for.

Every ``poll_seconds`` it looks at ComfyUI (queue and finished prompts) and the GPUs;
every ``publish_seconds`` it closes a period into metric datums (the contract of
:mod:`gpu_worker.metrics`) and hands them to the :class:`~gpu_worker.agent.publisher.Publisher`.
On a fleet node it holds scale-in protection while a prompt runs or waits and gives it
back after ``idle_grace_seconds`` without one (and when it stops), and drains the node
when its group terminates it or a Spot notice comes (:mod:`gpu_worker.agent.drain`); on a
dev node it writes the registry's ``last_heartbeat`` while the node is in use.

It only reads ComfyUI and never blocks it: a ComfyUI that is down or restarting is a
node without work (its protection goes after the grace period), CloudWatch that can't
be reached is minutes kept in the buffer, and any AWS call that fails is tried again
later, logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_worker.agent.comfyui import ComfyUI, ComfyUIUnavailable, PromptTracker
from gpu_worker.agent.drain import DEFAULT_DRAIN_FILE, Drain
from gpu_worker.agent.gpu import Gpus
from gpu_worker.agent.imds import InstanceMetadata
from gpu_worker.agent.period import Period
from gpu_worker.agent.publisher import Publisher
from gpu_worker.bundle import DEFAULT_STATE_DIR, read_state

log = logging.getLogger("bp.agent")

#: a dev node is in use when its GPU reaches this (the idle rule's threshold too)
GPU_BUSY_PERCENT = 5.0
#: after a failed SetInstanceProtection, the next try waits this long
PROTECTION_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class AgentConfig:
    """Who the node is and how often the agent looks; from ``/etc/bp/worker.env`` on a
    node (:meth:`from_env`). A fleet node names its stage, fleet and Auto Scaling group;
    a dev node its stage, name and heartbeat parameter."""

    stage: str
    fleet_slug: str | None = None
    auto_scaling_group: str | None = None
    dev_node: str | None = None
    heartbeat_parameter: str | None = None
    comfyui_url: str = "http://127.0.0.1:8188"
    bundle_state_dir: Path = Path(DEFAULT_STATE_DIR)
    poll_seconds: float = 5.0
    publish_seconds: float = 60.0
    idle_grace_seconds: float = 120.0
    heartbeat_seconds: float = 300.0
    #: the group's termination hook (:mod:`gpu_worker.agent.drain`); none: a leaving node
    #: is not held, and only a Spot notice drains it
    lifecycle_hook: str | None = None
    drain_timeout_seconds: float = 840.0
    drain_file: Path = Path(DEFAULT_DRAIN_FILE)

    def __post_init__(self) -> None:
        if not self.stage:
            raise ValueError("BP_FLEET_STAGE is not set")
        if bool(self.fleet_slug) == bool(self.dev_node):
            raise ValueError("a node is in a fleet (BP_FLEET_SLUG) or a dev node (BP_DEVNODE_NAME): exactly one")
        if self.fleet_slug and not self.auto_scaling_group:
            raise ValueError("a fleet node needs BP_AUTO_SCALING_GROUP (its scale-in protection)")
        if self.dev_node and not self.heartbeat_parameter:
            raise ValueError("a dev node needs BP_HEARTBEAT_PARAMETER (its registry's last_heartbeat)")
        if not 0 < self.poll_seconds <= self.publish_seconds:
            raise ValueError("poll_seconds must be above 0 and at most publish_seconds")
        if not 0 < self.drain_timeout_seconds <= 7200:
            raise ValueError("BP_DRAIN_TIMEOUT_SECONDS must be above 0 and at most 7200 (2 hours)")

    @classmethod
    def from_env(cls, env: dict[str, str]) -> AgentConfig:
        def number(name: str, default: float) -> float:
            try:
                return float(env[name]) if env.get(name) else default
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds, got {env[name]!r}") from None

        return cls(
            stage=env.get("BP_FLEET_STAGE", ""),
            fleet_slug=env.get("BP_FLEET_SLUG") or None,
            auto_scaling_group=env.get("BP_AUTO_SCALING_GROUP") or None,
            dev_node=env.get("BP_DEVNODE_NAME") or None,
            heartbeat_parameter=env.get("BP_HEARTBEAT_PARAMETER") or None,
            comfyui_url=env.get("BP_COMFYUI_URL") or cls.comfyui_url,
            bundle_state_dir=Path(env.get("BP_BUNDLE_STATE_DIR") or DEFAULT_STATE_DIR),
            poll_seconds=number("BP_AGENT_POLL_SECONDS", cls.poll_seconds),
            publish_seconds=number("BP_AGENT_PUBLISH_SECONDS", cls.publish_seconds),
            idle_grace_seconds=number("BP_AGENT_IDLE_GRACE_SECONDS", cls.idle_grace_seconds),
            heartbeat_seconds=number("BP_AGENT_HEARTBEAT_SECONDS", cls.heartbeat_seconds),
            lifecycle_hook=env.get("BP_LIFECYCLE_HOOK") or None,
            drain_timeout_seconds=number("BP_DRAIN_TIMEOUT_SECONDS", cls.drain_timeout_seconds),
            drain_file=Path(env.get("BP_DRAIN_FILE") or DEFAULT_DRAIN_FILE),
        )


class ScaleInProtection:
    """Protected while busy; cleared once idle for the grace period, and at shutdown.

    The state at start is unknown (an agent that crashed may have left it on): the first
    idle grace period clears it whatever it was."""

    def __init__(self, autoscaling: Any, group: str, instance_id: str, grace_seconds: float, now: float) -> None:
        self.autoscaling = autoscaling
        self.group = group
        self.instance_id = instance_id
        self.grace_seconds = grace_seconds
        self.protected: bool | None = None
        self.last_busy = now
        self._retry_at = 0.0
        self.changes = 0

    def update(self, busy: bool, now: float) -> None:
        if busy:
            self.last_busy = now
            if self.protected is not True:
                self._set(True, now)
        elif self.protected is not False and now - self.last_busy >= self.grace_seconds:
            self._set(False, now)

    def clear(self, now: float) -> None:
        if self.protected is not False:
            self._retry_at = 0.0
            self._set(False, now)

    def _set(self, protected: bool, now: float) -> None:
        if now < self._retry_at:
            return
        try:
            self.autoscaling.set_instance_protection(
                InstanceIds=[self.instance_id],
                AutoScalingGroupName=self.group,
                ProtectedFromScaleIn=protected,
            )
        except Exception as error:  # not InService yet, throttled, unreachable: tried again later
            self._retry_at = now + PROTECTION_RETRY_SECONDS
            log.warning("SetInstanceProtection %s failed: %s: %s", protected, type(error).__name__, error)
            return
        self.protected = protected
        self.changes += 1
        log.info("scale-in protection %s", "on: a prompt runs or waits" if protected else "off: idle")


class Heartbeat:
    """A dev node's ``last_heartbeat``: the last time its agent saw it in use, written at
    most once every ``every_seconds``."""

    def __init__(self, ssm: Any, parameter: str, every_seconds: float) -> None:
        self.ssm = ssm
        self.parameter = parameter
        self.every_seconds = every_seconds
        self.last_written: float | None = None
        self.writes = 0

    def beat(self, in_use: bool, now: float) -> None:
        if not in_use or (self.last_written is not None and now - self.last_written < self.every_seconds):
            return
        moment = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        try:
            self.ssm.put_parameter(Name=self.parameter, Value=moment, Type="String", Overwrite=True)
        except Exception as error:  # the next period tries again
            log.warning("heartbeat to %s failed: %s: %s", self.parameter, type(error).__name__, error)
            return
        self.last_written = now
        self.writes += 1


class Agent:
    """One node's agent. :meth:`step` is one look (and a publish when one is due);
    :meth:`run` steps until stopped, publishing from a thread of its own."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        instance_id: str,
        client: Callable[[str], Any],
        gpus: Gpus | None = None,
        clock: Callable[[], float] = time.time,
        metadata: InstanceMetadata | None = None,
    ) -> None:
        self.config = config
        self.instance_id = instance_id
        self.clock = clock
        now = clock()
        self.comfyui = ComfyUI(config.comfyui_url)
        self.tracker = PromptTracker(self.comfyui, since=now)
        self.gpus = gpus if gpus is not None else Gpus()
        self.publisher = Publisher(client("cloudwatch"), interval=config.publish_seconds, clock=clock)
        self.protection = (
            ScaleInProtection(
                client("autoscaling"), config.auto_scaling_group, instance_id, config.idle_grace_seconds, now
            )
            if config.fleet_slug
            else None
        )
        self.heartbeat = (
            Heartbeat(client("ssm"), config.heartbeat_parameter, config.heartbeat_seconds) if config.dev_node else None
        )
        self.drain = (
            Drain(
                metadata,
                client("autoscaling"),
                config.auto_scaling_group,
                instance_id,
                hook=config.lifecycle_hook,
                timeout_seconds=config.drain_timeout_seconds,
                drain_file=config.drain_file,
            )
            if config.fleet_slug and metadata is not None
            else None
        )
        self.period = Period(started_at=self._period_start(now))
        self.comfyui_problem: str | None = None

    def _period_start(self, now: float) -> float:
        return now - now % self.config.publish_seconds

    def dimension_sets(self) -> list[list[dict[str, str]]]:
        """Fleet and fleet+bundle for a fleet node (the bundle the installer recorded),
        the instance for a dev node."""
        if self.config.dev_node:
            return [[{"Name": "InstanceId", "Value": self.instance_id}]]
        fleet = [{"Name": "Stage", "Value": self.config.stage}, {"Name": "FleetSlug", "Value": self.config.fleet_slug}]
        bundle = read_state(self.config.bundle_state_dir).active_bundle_id or "none"
        return [fleet, [*fleet, {"Name": "BundleId", "Value": bundle}]]

    def sample(self) -> None:
        now = self.clock()
        if now >= self.period.started_at + self.config.publish_seconds:
            self.close_period(now)
        try:
            queued = self.comfyui.queued()
            finished = self.tracker.new()
        except ComfyUIUnavailable as error:
            if self.comfyui_problem is None:
                log.warning("ComfyUI does not answer (%s): the node counts as idle until it does", error)
            self.comfyui_problem = str(error)
            queued, finished = 0, []
        else:
            if self.comfyui_problem is not None:
                log.info("ComfyUI answers again")
            self.comfyui_problem = None
        self.period.prompts.extend(finished)
        self.period.busy |= queued > 0 or bool(finished)
        reading = self.gpus.read()
        if reading is not None:
            self.period.gpu.append(reading)
        leaving = self._drain(queued, now)
        if self.protection is not None:
            if leaving:  # a node on its way out holds nothing back
                self.protection.clear(now)
            else:
                self.protection.update(busy=queued > 0, now=now)

    def _drain(self, queued: int, now: float) -> bool:
        """One look at the notices; True once the node is leaving. The moment its drain
        ends, what it did is published at once: the node may be gone a second later."""
        if self.drain is None:
            return False
        ended_before = self.drain.outcome is not None
        leaving = self.drain.update(queued, now)
        if self.drain.outcome is not None and not ended_before:
            self.period.spot_notices = self.drain.spot_notices
            self.period.drained = (self.drain.outcome.seconds, self.drain.outcome.abandoned)
            self.close_period(now)
            self.publisher.publish()
        return leaving

    def close_period(self, now: float) -> None:
        period = self.period
        self.publisher.add(period.datums(self.dimension_sets()))
        if self.heartbeat is not None:
            gpu_busy = any(g.utilization_percent >= GPU_BUSY_PERCENT for g in period.gpu)
            self.heartbeat.beat(period.busy or gpu_busy, now)
        self.period = Period(started_at=self._period_start(now))

    def step(self) -> None:
        self.sample()
        if self.publisher.due():
            self.publisher.publish()

    def shutdown(self) -> None:
        """What stopping leaves behind: the period so far published (one try), and no
        scale-in protection."""
        now = self.clock()
        self.close_period(now)
        if self.protection is not None:
            self.protection.clear(now)
        if self.publisher.pending:
            self.publisher.publish()

    def run(self, stop: threading.Event) -> None:
        def publish_forever() -> None:
            while not stop.wait(1.0):
                if self.publisher.due():
                    self.publisher.publish()

        publishing = threading.Thread(target=publish_forever, name="bp-agent-publisher", daemon=True)
        publishing.start()
        log.info(
            "watching %s for %s, publishing every %.0f s",
            self.config.comfyui_url,
            f"{self.config.stage}/{self.config.fleet_slug}"
            if self.config.fleet_slug
            else f"dev node {self.config.dev_node}",
            self.config.publish_seconds,
        )
        while not stop.is_set():
            started = self.clock()
            self.sample()
            stop.wait(max(0.0, self.config.poll_seconds - (self.clock() - started)))
        publishing.join(timeout=5)
        self.shutdown()


def agent_from_env(
    env: dict[str, str], metadata: InstanceMetadata, *, endpoint_url: str | None = None, gpus: Gpus | None = None
) -> Agent:
    """The agent of the node ``env`` (``/etc/bp/worker.env``) and ``metadata`` (IMDSv2)
    describe: its instance id and region from the instance, AWS clients with short
    timeouts and botocore's standard retries (the publisher's backoff does the rest)."""
    import boto3
    from botocore.config import Config

    config = AgentConfig.from_env(env)
    session = boto3.session.Session(region_name=env.get("AWS_REGION") or metadata.region())
    settings = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})

    def client(service: str) -> Any:
        return session.client(service, config=settings, endpoint_url=endpoint_url)

    return Agent(config, instance_id=metadata.instance_id(), client=client, gpus=gpus, metadata=metadata)
