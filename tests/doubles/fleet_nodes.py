"""The emulated GPU nodes, each running the real node agent (:mod:`gpu_worker.agent`):
loaded into the moto server beside :mod:`tests.doubles.gpu_node` by the local stack.

Every :data:`TICK_SECONDS` it looks at the emulator's state. Each InService instance of
a fleet's Auto Scaling group (``stage`` and ``fleet`` tags) and each running dev node
(``bp:role = dev-node``) gets what a real node has: a ComfyUI (:mod:`tests.doubles.comfyui`),
an instance metadata service (:mod:`tests.doubles.imds`), a GPU (:mod:`tests.doubles.nvml`),
the installer's record of its bundle (what :func:`tests.doubles.gpu_node.installed` says),
and an agent built from the same settings ``/etc/bp/worker.env`` gives it on EC2, which
publishes to the emulator over HTTP. An instance that leaves service stops its agent
(the agent's own shutdown). Agents here publish every 2 s instead of 60: a verdict reads
its window as soon as it ends, and the period still open then (published when it closes,
as on EC2) is then a small part of a test's 15-second bake window.

What a node's ComfyUI runs is the traffic the platform's backend would send it,
as its bundle makes it behave (:class:`tests.doubles.comfyui.Behaviour`):

* a healthy bundle: a prompt a second, none failing, 4 s at the median;
* a **degraded bundle**, planted by tagging its ``manifest.json`` in the models bucket
  ``emulator:degraded`` = ``errors`` (one prompt in three fails) or ``slow`` (12 s);
* a **quiet fleet**, planted by tagging its Auto Scaling group ``emulator:quiet`` (any
  value): nobody sends its nodes work, and their agents report ``JobCount`` 0;
* a **busy hour**, planted by tagging its Auto Scaling group ``emulator:rush`` (any
  value): every prompt of every node, old bundle or new, takes three times as long;
* **long prompts**, planted by tagging the group ``emulator:prompt-seconds`` = N: each
  node runs one prompt at a time for N real seconds (a very large N: one that never ends);
* a **leaving node**: a group with a termination hook (the fleet template's) holds the
  nodes it terminates in ``Terminating:Wait`` (devstack/emulator/lifecycle.py) and their
  agents drain them; a **Spot interruption** is planted by tagging an instance
  ``emulator:spot-interruption`` with the time EC2 takes it back
  (devstack/emulator/spot.py). A draining node's worker takes no new prompt while the
  agent's drain file exists; what runs, runs on;
* a **dev node** is quiet unless tagged ``emulator:busy`` (an engineer at work: a prompt
  every 5 s, its GPU at 85 %).

The agents' totals (nodes, PutMetricData calls, datums, drains: the longest wait, the
prompts left at a deadline, Spot notices) are written to the file named by
``BP_NODE_AGENT_STATS`` for the demo's summary. Nothing here publishes a metric itself.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends
from moto.s3.models import s3_backends
from moto.ssm.models import ssm_backends

from devstack.emulator import lifecycle, spot
from gpu_worker import layout
from gpu_worker.agent.gpu import Gpus
from gpu_worker.agent.imds import InstanceMetadata
from gpu_worker.agent.node import Agent, agent_from_env
from gpu_worker.bundle import ACTIVE_BUNDLE_FILE
from include.fleets.config import DRAIN_HOOK_MARGIN_SECONDS
from include.naming import platform
from include.naming.dev_node import DevNode
from tests.doubles import comfyui, gpu_node
from tests.doubles.imds import MetadataServer
from tests.doubles.nvml import FakeNvml

ACCOUNT, REGION = gpu_node.ACCOUNT, gpu_node.REGION
TICK_SECONDS = 2.0
#: the agents' settings here (worker.env's BP_AGENT_* on a node): the tests' short windows
AGENT_SETTINGS = {
    "BP_AGENT_POLL_SECONDS": "2",
    "BP_AGENT_PUBLISH_SECONDS": "2",
    "BP_AGENT_IDLE_GRACE_SECONDS": "30",
    "BP_AGENT_HEARTBEAT_SECONDS": "30",
}
DEGRADED_TAG = "emulator:degraded"
QUIET_TAG = "emulator:quiet"
RUSH_TAG = "emulator:rush"
PROMPT_SECONDS_TAG = "emulator:prompt-seconds"
#: how much longer every prompt takes in a rush (the queue behind each one)
RUSH_SLOWDOWN = 3.0
BUSY_TAG = "emulator:busy"
#: an engineer at work on a dev node
AT_WORK = replace(comfyui.HEALTHY, prompts_per_second=0.2)
#: GPU use while prompts run, and idle
GPU_BUSY, GPU_IDLE = 85.0, 1.0

log = logging.getLogger("bp.fleet_nodes")


@dataclass
class EmulatedNode:
    instance_id: str
    env: dict[str, str]
    agent: Agent
    comfyui: comfyui.Node
    gpu: FakeNvml
    state_dir: Path
    #: what its agent had done when last added to the totals
    counted: dict[str, int] = field(default_factory=dict)


def _tags(resource_tags: list[dict[str, str]], key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {tag[key]: tag[value] for tag in resource_tags}


def wanted_nodes() -> dict[str, dict[str, str]]:
    """Instance id -> the ``worker.env`` its user-data would write, for every node that
    runs now: InService fleet nodes and running dev nodes."""
    nodes = {}
    for group in list(autoscaling_backends[ACCOUNT][REGION].autoscaling_groups.values()):
        tags = _tags(group.tags)
        if platform.STAGE_TAG not in tags or platform.FLEET_TAG not in tags:
            continue
        hook = lifecycle.terminating_hook(group.autoscaling_backend, group.name)
        drain = (
            {"BP_LIFECYCLE_HOOK": hook.name, "BP_DRAIN_TIMEOUT_SECONDS": str(drain_timeout(hook.heartbeat_timeout))}
            if hook is not None
            else {}
        )
        for state in group.instance_states:
            if state.lifecycle_state in ("InService", lifecycle.WAITING):  # a draining node still runs
                nodes[state.instance.id] = {
                    "BP_FLEET_STAGE": tags[platform.STAGE_TAG],
                    "BP_FLEET_SLUG": tags[platform.FLEET_TAG],
                    "BP_AUTO_SCALING_GROUP": group.name,
                    **drain,
                }
    for reservation in list(ec2_backends[ACCOUNT][REGION].reservations.values()):
        for instance in reservation.instances:
            tags = _tags(instance.get_tags(), "key", "value")
            if instance.state != "running" or tags.get(platform.ROLE_TAG) != platform.DEV_NODE_ROLE:
                continue
            if platform.STAGE_TAG not in tags or platform.DEV_NODE_TAG not in tags:
                continue  # launched by hand, not by gpu_dev_node: no user-data starts an agent on it
            node = DevNode(tags[platform.STAGE_TAG], tags[platform.DEV_NODE_TAG])
            nodes[instance.id] = {
                "BP_FLEET_STAGE": node.stage,
                "BP_DEVNODE_NAME": node.name,
                "BP_HEARTBEAT_PARAMETER": node.registry_parameter("last_heartbeat"),
            }
    return nodes


def drain_timeout(heartbeat_timeout: int) -> int:
    """What the fleet template gives the agent: the hook's timeout less a minute, so that
    the agent, not the timeout, lets the group go on."""
    return max(5, int(heartbeat_timeout) - DRAIN_HOOK_MARGIN_SECONDS)


def _degradation(prefix: str) -> str | None:
    """The ``emulator:degraded`` tag of the bundle's manifest, if it has one."""
    bucket_name = ssm_backends[ACCOUNT][REGION].get_parameter(platform.models_bucket_parameter())
    bucket = s3_backends[ACCOUNT]["global"].buckets.get(bucket_name.value) if bucket_name else None
    key = bucket.keys.get(layout.manifest_key(prefix)) if bucket else None
    if key is None:
        return None
    return s3_backends[ACCOUNT]["global"].tagger.get_tag_dict_for_resource(key.arn).get(DEGRADED_TAG)


def behaviour(instance_id: str, env: dict[str, str]) -> comfyui.Behaviour:
    """What the node's ComfyUI is sent and does now (see the module's docstring)."""
    if env.get("BP_DEVNODE_NAME"):
        instance = ec2_backends[ACCOUNT][REGION].get_instance(instance_id)
        return AT_WORK if BUSY_TAG in _tags(instance.get_tags(), "key", "value") else comfyui.QUIET
    group = autoscaling_backends[ACCOUNT][REGION].autoscaling_groups.get(env["BP_AUTO_SCALING_GROUP"])
    group_tags = _tags(group.tags) if group is not None else {}
    if QUIET_TAG in group_tags:
        return comfyui.QUIET
    prefix = gpu_node.installed(instance_id)
    bundle = comfyui.HEALTHY
    if prefix != layout.NO_ACTIVE_BUNDLE:
        bundle = comfyui.DEGRADED.get(_degradation(prefix) or "", comfyui.HEALTHY)
    if PROMPT_SECONDS_TAG in group_tags:
        bundle = replace(bundle, hold_seconds=float(group_tags[PROMPT_SECONDS_TAG]))
    return replace(bundle, seconds=bundle.seconds * RUSH_SLOWDOWN) if RUSH_TAG in group_tags else bundle


def _record_bundle(state_dir: Path, instance_id: str) -> None:
    """What the installer records on the node: the bundle it installed (none: no file)."""
    prefix = gpu_node.installed(instance_id)
    target = state_dir / ACTIVE_BUNDLE_FILE
    if prefix == layout.NO_ACTIVE_BUNDLE:
        target.unlink(missing_ok=True)
        return
    written = state_dir / f".{ACTIVE_BUNDLE_FILE}.new"
    written.write_text(layout.bundle_id_of(prefix) + "\n")
    os.replace(written, target)


class EmulatedFleet:
    """Every running node's ComfyUI, metadata, GPU and agent."""

    def __init__(self, endpoint_url: str, stats_file: Path | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.stats_file = stats_file
        self.comfyui = comfyui.ComfyUIServer()
        self.metadata = MetadataServer(
            live={
                "autoscaling/target-lifecycle-state": lifecycle.target_lifecycle_state,
                "spot/instance-action": spot.notice,
            }
        )
        self.root = Path(tempfile.mkdtemp(prefix="bp-emulated-nodes-"))
        self.nodes: dict[str, EmulatedNode] = {}
        self.totals = {
            "nodes": 0,
            "metric_calls": 0,
            "datums": 0,
            "protection_changes": 0,
            "heartbeats": 0,
            "drains": 0,
            "drain_seconds_max": 0.0,
            "abandoned_jobs": 0,
            "spot_notices": 0,
        }

    def _start(self, instance_id: str, env: dict[str, str]) -> EmulatedNode:
        state_dir = self.root / instance_id
        state_dir.mkdir(parents=True, exist_ok=True)
        _record_bundle(state_dir, instance_id)
        gpu = FakeNvml(utilization=GPU_IDLE)
        settings = {
            **env,
            **AGENT_SETTINGS,
            "BP_COMFYUI_URL": self.comfyui.url(instance_id),
            "BP_BUNDLE_STATE_DIR": str(state_dir),
            "BP_DRAIN_FILE": str(state_dir / "drain"),
        }
        metadata = InstanceMetadata(self.metadata.add(instance_id))
        agent = agent_from_env(settings, metadata, endpoint_url=self.endpoint_url, gpus=Gpus(gpu))
        self.totals["nodes"] += 1
        return EmulatedNode(instance_id, settings, agent, self.comfyui.node(instance_id), gpu, state_dir)

    def _stop(self, node: EmulatedNode) -> None:
        node.agent.shutdown()
        self._count(node, final=True)
        self.comfyui.remove(node.instance_id)

    def _count(self, node: EmulatedNode, final: bool = False) -> None:
        """Add what the node's agent did since it was last counted to the totals."""
        agent = node.agent
        now = {
            "metric_calls": agent.publisher.calls,
            "datums": agent.publisher.published,
            "protection_changes": agent.protection.changes if agent.protection else 0,
            "heartbeats": agent.heartbeat.writes if agent.heartbeat else 0,
        }
        for key, value in now.items():
            self.totals[key] += value - node.counted.get(key, 0)
        node.counted.update(now)
        drain = agent.drain
        if drain is not None and drain.outcome is not None and not node.counted.get("drained"):
            node.counted["drained"] = 1
            self.totals["drains"] += 1
            self.totals["drain_seconds_max"] = max(self.totals["drain_seconds_max"], drain.outcome.seconds)
            self.totals["abandoned_jobs"] += drain.outcome.abandoned
            self.totals["spot_notices"] += drain.spot_notices

    def _step(self, node: EmulatedNode, now: float) -> None:
        _record_bundle(node.state_dir, node.instance_id)
        node.comfyui.behaviour = behaviour(node.instance_id, node.env)
        node.gpu.utilization = GPU_BUSY if node.comfyui.behaviour.prompts_per_second > 0 else GPU_IDLE
        node.comfyui.drive(now, accepting=not node.agent.config.drain_file.exists())
        node.agent.step()
        self._count(node)

    def tick(self) -> None:
        lifecycle.expire_everywhere()
        spot.reclaim_due()
        wanted = wanted_nodes()
        for instance_id in set(self.nodes) - set(wanted):
            self._stop(self.nodes.pop(instance_id))
        for instance_id, env in wanted.items():
            if instance_id not in self.nodes:
                self.nodes[instance_id] = self._start(instance_id, env)
        now = time.time()
        for node in list(self.nodes.values()):
            try:
                self._step(node, now)
            except Exception:  # one node's trouble is its own: the others go on
                log.exception("emulated node %s: its step failed", node.instance_id)
        if self.stats_file is not None:
            written = self.stats_file.with_suffix(".new")
            written.write_text(json.dumps({**self.totals, "running": len(self.nodes)}))
            os.replace(written, self.stats_file)

    def stop(self) -> None:
        for node in list(self.nodes.values()):
            self._stop(node)
        self.nodes.clear()
        self.comfyui.stop()
        self.metadata.stop()


def _tick_forever(fleet: EmulatedFleet, stop: threading.Event) -> None:
    while not stop.wait(TICK_SECONDS):
        try:
            fleet.tick()
        except Exception:  # one bad tick is logged; the nodes go on at the next
            log.exception("emulated nodes' tick failed")


def install() -> threading.Event:
    """Start the emulated nodes in the moto server's process (it sets ``BP_EMULATOR_URL``);
    set the returned event to stop them."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "emulator")  # the agents' clients; moto takes any
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "emulator")
    stats = os.environ.get("BP_NODE_AGENT_STATS")
    fleet = EmulatedFleet(os.environ["BP_EMULATOR_URL"], Path(stats) if stats else None)
    stop = threading.Event()
    threading.Thread(target=_tick_forever, args=(fleet, stop), name="emulated-nodes", daemon=True).start()
    return stop
