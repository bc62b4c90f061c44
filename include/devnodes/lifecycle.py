"""The dev-node lifecycle as plain rules: which action a node in a given state takes,
what the registry and AWS disagree on, when a termination waits for a person, and the
immutable event every action leaves behind.

States are EC2's (``pending``, ``running``, ``stopping``, ``stopped``, ``shutting-down``,
``terminated``): AWS is the truth, the registry (:data:`include.naming.dev_node.REGISTRY_FIELDS`)
is what the platform last saw, and ``status`` reports where they differ.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from include import approvals
from include.errors import InvalidRequest
from include.naming import platform
from include.naming.dev_node import COMFYUI_PORT, REGISTRY_FIELDS, DevNode
from include.naming.fleet import Fleet
from include.versions import refuse_newer

ACTIONS = ("create", "start", "stop", "restart", "status", "terminate")
#: An owner is a user id or an e-mail address: it becomes a tag value and an alert route.
OWNER_PATTERN = r"^[a-z0-9][a-z0-9._@+-]{0,63}$"
#: What a run may say about itself (the idle stop says why it stopped a node).
REASON_PATTERN = r"^[A-Za-z0-9 .,:;()%/_@+=#-]{0,200}$"
IDLE_STOP_MINUTES = (1, 24 * 60)
DEFAULT_IDLE_STOP_MINUTES = 60
#: A node younger than this is terminated only after an Approve (a typo costs a fresh setup).
YOUNG_NODE = timedelta(hours=1)
#: Readiness: ComfyUI must answer on the node within this many seconds of its status checks.
READINESS_TIMEOUT_SECONDS = 600

#: action -> (the EC2 states it acts on, the states in which it has nothing to do)
_ACTS_ON: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "start": (("stopped",), ("pending", "running")),
    "stop": (("pending", "running"), ("stopped",)),
    "restart": (("running",), ()),
    "terminate": (("pending", "running", "stopping", "stopped"), ("shutting-down", "terminated")),
    "status": ((), ()),
}


@dataclass(frozen=True)
class DevNodeRequest:
    action: str
    node: DevNode
    owner: str | None
    source_fleet: Fleet | None
    instance_type: str | None
    idle_stop_minutes: int
    reason: str

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DevNodeRequest:
        action = params.get("action")
        if action not in ACTIONS:
            raise InvalidRequest(f"action {action!r} is not one of {', '.join(ACTIONS)}")
        node = DevNode.of(params)
        owner = params.get("owner") or None
        if owner is not None and not re.fullmatch(OWNER_PATTERN, str(owner)):
            raise InvalidRequest(
                f"owner {owner!r} must be a user id or an e-mail address in lowercase (letters, digits, . _ @ + -)"
            )
        reason = str(params.get("reason") or "")
        if not re.fullmatch(REASON_PATTERN, reason):
            raise InvalidRequest("reason must be one line of at most 200 letters, digits, spaces and .,:;()%/_@+=#-")
        if action != "create":
            return cls(action, node, owner, None, None, DEFAULT_IDLE_STOP_MINUTES, reason)
        if owner is None:
            raise InvalidRequest("owner is required to create a dev node (its cost and its idle alerts go there)")
        if not params.get("fleet_slug"):
            raise InvalidRequest("fleet_slug is required to create a dev node: its AMI and bundle come from that fleet")
        source_fleet = Fleet(node.stage, params["fleet_slug"])
        minutes = params.get("idle_stop_minutes", DEFAULT_IDLE_STOP_MINUTES)
        low, high = IDLE_STOP_MINUTES
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not low <= minutes <= high:
            raise InvalidRequest(f"idle_stop_minutes must be a whole number from {low} to {high}, got {minutes!r}")
        instance_type = params.get("instance_type") or None
        if instance_type is None:
            raise InvalidRequest("instance_type is required to create a dev node (one its fleet's template allows)")
        return cls(action, node, owner, source_fleet, instance_type, minutes, reason)

    #: the form :meth:`serialize` writes; :meth:`deserialize` refuses a newer one
    __version__ = 1

    def serialize(self) -> dict[str, Any]:
        """The request as it travels between tasks (Airflow's serde, in XCom): checked once
        by :meth:`from_params` in the run's first task, taken back as it is by
        :meth:`deserialize` in every later one."""
        return {
            "action": self.action,
            "fleet_stage": self.node.stage,
            "name": self.node.name,
            "owner": self.owner,
            "fleet_slug": self.source_fleet.slug if self.source_fleet else None,
            "instance_type": self.instance_type,
            "idle_stop_minutes": self.idle_stop_minutes,
            "reason": self.reason,
        }

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> DevNodeRequest:
        refuse_newer(DevNodeRequest, version)
        stage, slug = data["fleet_stage"], data["fleet_slug"]
        return DevNodeRequest(
            data["action"],
            DevNode(stage, data["name"]),
            data["owner"],
            Fleet(stage, slug) if slug else None,
            data["instance_type"],
            data["idle_stop_minutes"],
            data["reason"],
        )

    @property
    def lock(self) -> str:
        """The node's lock (:attr:`DevNode.lock`): one action per node at a time."""
        return self.node.lock

    def wiring(self) -> dict[str, Any]:
        """What the DAG's operators take from the request (``validate_request``
        pushes those its DAG reads as XCom keys beside the request): the action and the node's names."""
        return {"action": self.action, **self.node.names()}


def instance_type_problem(instance_type: str, allowed: tuple[str, ...], fleet: Fleet) -> str | None:
    if instance_type in allowed:
        return None
    return f"instance_type {instance_type!r} is not allowed by fleet {fleet}'s template (allowed: {', '.join(allowed)})"


@dataclass(frozen=True)
class Registration:
    """What the registry holds for one node (every field a string, as SSM keeps them)."""

    instance_id: str
    state: str
    endpoint: str
    owner: str
    last_heartbeat: str
    source_fleet: str
    instance_type: str
    idle_stop_minutes: str
    created_at: str

    @classmethod
    def from_parameters(cls, node: DevNode, values: dict[str, str]) -> Registration | None:
        """The node's registration from a GetParametersByPath of its root, None when absent."""
        fields = {field: values.get(node.registry_parameter(field), "") for field in REGISTRY_FIELDS}
        return cls(**fields) if fields["instance_id"] else None

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def registered_in(stage: str, read_path: Callable[[str], dict[str, str]]) -> list[tuple[DevNode, Registration]]:
    """Every dev node of ``stage`` the registry holds, by name. ``read_path`` returns the
    parameters under a path, name -> value (``SsmParameterHook.parameters_under``)."""
    prefix = DevNode.stage_root(stage) + "/"
    values = read_path(DevNode.stage_root(stage))
    names = sorted({name[len(prefix) :].split("/", 1)[0] for name in values if name.startswith(prefix)})
    found = []
    for name in names:
        node = DevNode(stage, name)
        registration = Registration.from_parameters(node, values)
        if registration is not None:
            found.append((node, registration))
    return found


def registry_values(
    *,
    instance: dict[str, Any],
    owner: str,
    source_fleet: str,
    idle_stop_minutes: int | str,
    created_at: str,
    heartbeat: str | None,
    previous: Registration | None,
) -> dict[str, str]:
    """The registry after an action: AWS's view of the instance, and what the platform knows."""
    state = (instance.get("State") or {}).get("Name", "unknown")
    address = instance.get("PrivateIpAddress")
    return {
        "instance_id": instance["InstanceId"],
        "state": state,
        "endpoint": f"http://{address}:{COMFYUI_PORT}" if address and state == "running" else "none",
        "owner": owner,
        "last_heartbeat": heartbeat or (previous.last_heartbeat if previous else "") or "never",
        "source_fleet": source_fleet,
        "instance_type": instance.get("InstanceType", ""),
        "idle_stop_minutes": str(idle_stop_minutes),
        "created_at": created_at,
    }


def state_of(instance: dict[str, Any] | None) -> str:
    return (instance or {}).get("State", {}).get("Name", "absent") if instance else "absent"


def refusal(request: DevNodeRequest, registration: Registration | None, instance: dict[str, Any] | None) -> str | None:
    """Why ``request`` may not act on the node as AWS has it now, or None."""
    node = request.node
    if request.action == "create":
        if registration is not None and state_of(instance) not in ("absent", "terminated"):
            return (
                f"dev node {node} exists already ({registration.instance_id}, {state_of(instance)}): "
                "start, stop or terminate it instead"
            )
        return None
    if registration is None:
        return f"no dev node {node} is registered (under {node.root}/): create it first"
    state = state_of(instance)
    acts_on, nothing_to_do = _ACTS_ON[request.action]
    if request.action == "status" or state in acts_on or state in nothing_to_do:
        return None
    if state in ("absent", "terminated", "shutting-down"):
        return f"dev node {node}'s instance {registration.instance_id} is {state}: create the node again"
    return f"{request.action} acts on a node that is {' or '.join(acts_on)}; {registration.instance_id} is {state}"


def nothing_to_do(action: str, state: str) -> bool:
    """The node is already where the action would take it (a re-run, or a repeated click)."""
    return state in _ACTS_ON.get(action, ((), ()))[1]


#: Run Command invocation states that have not ended (SSM's ListCommandInvocations).
UNFINISHED_COMMAND_STATES = ("Pending", "InProgress", "Delayed")


def busy_commands_problem(node: DevNode, instance_id: str, invocations: list[dict[str, Any]]) -> str | None:
    """Why the node may not stop now: a bundle apply still runs on it (the node would stop
    half-installed), or None."""
    running = [i for i in invocations if i.get("Status") in UNFINISHED_COMMAND_STATES]
    if not running:
        return None
    listed = ", ".join(f"{i['CommandId']} ({i.get('DocumentName', '?')}, {i['Status']})" for i in running)
    return f"a bundle apply runs on {node} ({instance_id}): {listed}; stop it once the apply has ended"


def terminate_needs_approval(node: DevNode, registration: Registration, now: datetime) -> str | None:
    """Why terminating needs a person's Approve, or None."""
    reasons = []
    if approvals.needs_approval(node.stage):
        reasons.append(f"it is in {node.stage}")
    created = parse_time(registration.created_at)
    if created is not None and now - created < YOUNG_NODE:
        reasons.append(f"it was created {int((now - created).total_seconds() // 60)} minute(s) ago")
    return " and ".join(reasons) or None


def drift(node: DevNode, registration: Registration | None, instance: dict[str, Any] | None) -> list[str]:
    """Where the registry and AWS disagree (a node changed in the console, a lost update)."""
    if registration is None:
        return []
    if instance is None:
        return [f"the registry names {registration.instance_id}, which EC2 does not know"]
    found = []
    state = state_of(instance)
    if registration.state != state:
        found.append(f"state: the registry says {registration.state}, EC2 says {state}")
    tags = platform.tags_of(instance)
    if tags.get(platform.DEV_NODE_TAG) != node.name or tags.get(platform.STAGE_TAG) != node.stage:
        found.append(
            f"tags: {registration.instance_id} is tagged devnode={tags.get(platform.DEV_NODE_TAG)!r} "
            f"stage={tags.get(platform.STAGE_TAG)!r}, not {node.name!r} and {node.stage!r}"
        )
    if tags.get(platform.OWNER_TAG) != registration.owner:
        found.append(f"owner: the registry says {registration.owner}, the tag says {tags.get(platform.OWNER_TAG)}")
    if instance.get("InstanceType") and instance.get("InstanceType") != registration.instance_type:
        found.append(
            f"instance type: the registry says {registration.instance_type}, EC2 says {instance['InstanceType']}"
        )
    return found


def lifecycle_event(
    request: DevNodeRequest,
    *,
    run_id: str,
    actor: str | None,
    instance_id: str | None,
    instance_type: str | None,
    owner: str | None,
    from_state: str,
    to_state: str,
    result: str,
    started_at: datetime,
    ended_at: datetime,
    ready_seconds: float | None = None,
    detail: str = "",
) -> dict[str, Any]:
    """One action on one node, as the audit record and the cost of dev nodes read it."""
    return {
        "event": f"devnode.{request.action}",
        "run_id": run_id,
        "actor": actor or "scheduler",
        "reason": request.reason,
        "stage": request.node.stage,
        "name": request.node.name,
        "owner": owner,
        "instance_id": instance_id,
        "instance_type": instance_type,
        "action": request.action,
        "from_state": from_state,
        "to_state": to_state,
        "result": result,
        "started_at": started_at.isoformat(),
        "ended_at": ended_at.isoformat(),
        "duration_seconds": round((ended_at - started_at).total_seconds(), 1),
        "ready_seconds": None if ready_seconds is None else round(ready_seconds, 1),
        "detail": detail,
    }


def user_data(node: DevNode) -> str:
    """The node's user-data: its agent's settings in ``/etc/bp/worker.env``, then the
    node's services configured and started by the image's ``configure-node`` (baked by
    ``packer/scripts/install-node-agent.sh``). Stage and name are validated slugs, written
    inside a quoted here-document: nothing in them reaches the shell."""
    settings = "".join(f"{key}={value}\n" for key, value in node.agent_env().items())
    return (
        "#!/bin/bash\nset -euo pipefail\ninstall -d -m 0755 /etc/bp\n"
        f"cat >/etc/bp/worker.env <<'ENV'\n{settings}ENV\n"
        "chmod 0644 /etc/bp/worker.env\n/opt/worker/bin/configure-node\n"
    )


def port_forward_command(instance_id: str, local_port: int = COMFYUI_PORT) -> str:
    """How an engineer opens ComfyUI on the node: Session Manager port forwarding (the
    node's security group has no inbound rule)."""
    return (
        f"aws ssm start-session --target {instance_id} --document-name AWS-StartPortForwardingSession "
        f'--parameters \'{{"portNumber":["{COMFYUI_PORT}"],"localPortNumber":["{local_port}"]}}\''
    )


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
