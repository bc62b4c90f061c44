"""A dev node: a developer's own GPU instance, outside every fleet's Auto Scaling group.

A dev node is a ``(stage, name)`` pair, validated once. It owns its registry in SSM
(``/bp/devnodes/<stage>/<name>/<field>``, kept by every ``gpu_dev_node`` action), its
change lock, its security group and its lifecycle events in the logs bucket, next to
the fleets' rollout audit records. It is made from a fleet (that fleet's AMI pointer and
bundle) but never joins it: it carries no ``fleet`` tag, so neither the fleet's metrics
nor its guardrails count it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from include.naming import platform
from include.naming.fleet import check_slug

#: The registry's fields: each one an SSM parameter under the node's root.
REGISTRY_FIELDS = (
    "instance_id",
    "state",
    "endpoint",
    "owner",
    "last_heartbeat",
    "source_fleet",
    "instance_type",
    "idle_stop_minutes",
    "created_at",
)
#: The port ComfyUI listens on, on the node only: engineers reach it through Session Manager.
COMFYUI_PORT = 8188
#: On a node's ``last_heartbeat`` parameter: the instance whose node agent may write it
#: (the dev-node role's ``ssm:PutParameter`` is conditioned on it, ``gpu-shared.yaml``).
HEARTBEAT_WRITER_TAG = "bp:instance-id"


@dataclass(frozen=True)
class DevNode:
    stage: str
    name: str

    def __post_init__(self) -> None:
        platform.check_stage(self.stage)
        check_slug(self.name, "name")

    @classmethod
    def of(cls, value: dict[str, Any]) -> DevNode:
        """The node named by params (``fleet_stage``, ``name``)."""
        return cls(value.get("fleet_stage"), value.get("name"))

    def __str__(self) -> str:
        return f"{self.stage}/{self.name}"

    # --- the registry (SSM) -------------------------------------------------------------

    @staticmethod
    def stage_root(stage: str) -> str:
        """Every dev node of a stage lives below it (GetParametersByPath, recursive)."""
        return f"{platform.DEV_NODES_ROOT}/{platform.check_stage(stage)}"

    @property
    def root(self) -> str:
        return f"{self.stage_root(self.stage)}/{self.name}"

    def registry_parameter(self, field: str) -> str:
        if field not in REGISTRY_FIELDS:
            raise KeyError(f"{field!r} is not a dev-node registry field ({', '.join(REGISTRY_FIELDS)})")
        return f"{self.root}/{field}"

    @property
    def heartbeat_parameter(self) -> str:
        """Written by the node's agent while the node is in use (and by each action that
        finds it ready): what idle stop reads."""
        return self.registry_parameter("last_heartbeat")

    def agent_env(self) -> dict[str, str]:
        """What the node's agent reads from ``/etc/bp/worker.env`` (the launch's user-data)."""
        return {
            "BP_FLEET_STAGE": self.stage,
            "BP_DEVNODE_NAME": self.name,
            "BP_HEARTBEAT_PARAMETER": self.heartbeat_parameter,
        }

    @property
    def active_bundle(self) -> str:
        """The bundle a ``dev_node`` rollout installed on it (a bundle prefix, as a fleet's
        ``active_bundle`` holds one): its own, so an install on it never moves a fleet's."""
        return f"{self.root}/active_bundle"

    @property
    def lock(self) -> str:
        """One action per node at a time (the fleets' lock protocol, :mod:`include.fleets.lock`)."""
        return f"{self.root}/change_lock"

    # --- AWS resources ------------------------------------------------------------------

    @property
    def resource_name(self) -> str:
        """The instance's ``Name`` and its security group's name."""
        return f"bp-devnode-{self.stage}-{self.name}"

    @property
    def instance_profile(self) -> str:
        return platform.dev_node_instance_profile(self.stage)

    @property
    def health_document(self) -> str:
        return platform.dev_node_health_document(self.stage)

    def tags(self, owner: str) -> dict[str, str]:
        """Cost allocation (``devnode``, ``owner``, ``stage``) and the role a dev_node
        rollout looks for; the operator policy acts only on instances carrying them."""
        return {
            "Name": self.resource_name,
            **self.identity_tags(),
            platform.OWNER_TAG: owner,
            platform.ROLE_TAG: platform.DEV_NODE_ROLE,
        }

    def identity_tags(self) -> dict[str, str]:
        """The tags that find this node's instance, whoever owns it (a retried launch, a
        create that failed after its launch)."""
        return {platform.DEV_NODE_TAG: self.name, platform.STAGE_TAG: self.stage}

    # --- what the DAGs keep in the logs bucket ------------------------------------------

    @staticmethod
    def lifecycle_stage_prefix(stage: str) -> str:
        return f"audit/devnodes/{platform.check_stage(stage)}/"

    @property
    def lifecycle_prefix(self) -> str:
        return f"{self.lifecycle_stage_prefix(self.stage)}{self.name}/"

    def lifecycle_event_key(self, run_id: str) -> str:
        """One immutable JSON-lines object per action (a run), next to ``audit/rollouts/``."""
        return f"{self.lifecycle_prefix}{run_id}.jsonl"

    def names(self) -> dict[str, Any]:
        return {
            "fleet_stage": self.stage,
            "name": self.name,
            "registry_root": self.root,
            "lock": self.lock,
            "resource_name": self.resource_name,
            "instance_profile": self.instance_profile,
            "health_document": self.health_document,
        }
