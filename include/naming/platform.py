"""Names that belong to the platform or to a whole stage, not to one fleet.

SSM names follow the current infrastructure README (seed 004, "Secrets Reference");
buckets are named by account (``bp-models-<account>``, ``bp-logs-<account>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpu_worker import layout
from gpu_worker import metrics as worker_metrics
from include.errors import InvalidRequest

#: Fleet stages the platform knows. A stage scopes fleets, their secret and alarms.
STAGES: tuple[str, ...] = ("staging", "production")

#: The value of ``active_bundle`` when a fleet has no bundle (workers skip the sync).
NO_ACTIVE_BUNDLE = layout.NO_ACTIVE_BUNDLE
#: The value CDK left in fleet secrets; a fleet with it can't register workers.
UNSET_FLEET_SECRET = "CHANGE_ME_AFTER_DEPLOY"  # noqa: S105 - the public placeholder, not a secret

ROOT = "/bp"
FLEETS_ROOT = f"{ROOT}/fleets"
#: the dev-node registry: ``<root>/<stage>/<name>/<field>`` (:class:`include.naming.dev_node.DevNode`)
DEV_NODES_ROOT = f"{ROOT}/devnodes"
#: every fleet's AMI pointer lives below it (``<root>/<stage>/<slug>``, seed 004)
AMI_POINTERS_ROOT = f"{ROOT}/ami/fleets"

#: Cost-allocation tag keys on every fleet resource. Cost Explorer groups the GPU cost by
#: ``fleet`` (economics), and the scale-to-zero function recognizes its own stage's fleets
#: by both (``gpu-shared.yaml`` passes the same keys to it).
STAGE_TAG = "stage"
FLEET_TAG = "fleet"
#: A development node (a GPU instance outside any fleet's ASG that people iterate on) is
#: tagged ``bp:role = dev-node`` and its ``stage``: a dev_node rollout installs only there.
#: An EC2 instance type: family, optional generation/attributes, size (g4dn.xlarge, g5.12xlarge).
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
ROLE_TAG = "bp:role"
DEV_NODE_ROLE = "dev-node"
#: Cost-allocation tags of a dev node (issue 22): its name and the person it belongs to.
DEV_NODE_TAG = "devnode"
OWNER_TAG = "owner"
#: The DAG that builds a fleet's images (and creates its AMI pointer with mode=base): the
#: rollout triggers it, the provisioning and the preflight name it in what they say.
AMI_BUILD_DAG = "gpu_ami_build_and_bake"
#: An instance launched to smoke-test a candidate AMI before it is promoted: it lives for
#: one ``gpu_ami_build_and_bake`` run, whose id it carries (``airflow_run_id``).
AMI_SMOKE_ROLE = "ami-smoke"

#: Where the nodes and the backend publish the fleets' metrics (ADR-0005), and the metrics
#: themselves with their units: the contract is :mod:`gpu_worker.metrics`.
WORKER_METRICS_NAMESPACE = worker_metrics.NAMESPACE
WORKER_METRICS = {m.name: m.unit for m in worker_metrics.CONTRACT}


def tags_of(resource: Mapping[str, Any] | None) -> dict[str, str]:
    """The tags of a resource as EC2, Auto Scaling and the other Describe* calls answer it
    (a ``Tags`` list of ``Key``/``Value``), as a dict; none for a missing resource."""
    return {tag["Key"]: tag["Value"] for tag in (resource or {}).get("Tags") or ()}


def check_stage(stage: object) -> str:
    if stage not in STAGES:
        raise InvalidRequest(f"fleet_stage {stage!r} is not one of {', '.join(STAGES)}")
    return str(stage)


# --- platform-wide SSM parameters ---------------------------------------------------


def models_bucket_parameter() -> str:
    """Holds the name of the S3 bucket with content-addressed assets and bundle manifests."""
    return f"{ROOT}/models/bucket"


def packer_instance_profile() -> str:
    """Instance profile Packer attaches to its build instance (bake reads the bucket)."""
    return f"{ROOT}/packer/instance_profile"


def packer_subnet_id() -> str:
    """The private subnet the build instance runs in (no public address)."""
    return f"{ROOT}/packer/subnet_id"


def packer_security_group_id() -> str:
    """The build instance's security group: no inbound rule (Packer reaches it through
    Session Manager, never by SSH from the internet)."""
    return f"{ROOT}/packer/security_group_id"


def redis_endpoint() -> str:
    return f"{ROOT}/redis/endpoint"


def vpc_id() -> str:
    """VPC of the GPU fleets, published by the network baseline for the fleet stacks."""
    return f"{ROOT}/network/vpc_id"


def private_subnet_ids() -> str:
    """StringList of the private subnets GPU workers launch into."""
    return f"{ROOT}/network/private_subnet_ids"


def worker_security_group_id() -> str:
    return f"{ROOT}/network/worker_security_group_id"


def asset_ops_secret() -> str:
    """Secrets Manager secret (not SSM) shared with the backend's ops endpoint, which
    verifies the signature of each rollout audit record (seed 004, "Secrets Reference")."""
    return f"{ROOT}/asset-ops/secret"


# --- per stage ----------------------------------------------------------------------


def stage_root(stage: str) -> str:
    """Prefix of everything one stage's fleets own (used for GetParametersByPath)."""
    return f"{FLEETS_ROOT}/{check_stage(stage)}"


def fleet_secret(stage: str) -> str:
    """SecureString shared by the backend and the stage's workers for registration."""
    return f"{stage_root(stage)}/fleet-secret"


def shared_stack(stage: str) -> str:
    """The stage's scale-to-zero topic and function (seed 004's ``bp-gpu-shared``, per stage)."""
    return f"bp-gpu-shared-{check_stage(stage)}"


def bundle_apply_document(stage: str) -> str:
    """Run Command document installing a fleet's active bundle (``gpu-shared.yaml``)."""
    return f"bp-bundle-apply-{check_stage(stage)}"


def ami_smoke_document(stage: str) -> str:
    """Run Command document checking a candidate AMI's GPU, CUDA, ComfyUI, worker and
    baked bundle, one line per check (``gpu-shared.yaml``)."""
    return f"bp-ami-smoke-{check_stage(stage)}"


def dev_node_health_document(stage: str) -> str:
    """Run Command document that waits for ComfyUI to answer on a dev node (``gpu-shared.yaml``)."""
    return f"bp-devnode-health-{check_stage(stage)}"


def dev_node_instance_profile(stage: str) -> str:
    """The instance profile of a stage's dev nodes (``gpu-shared.yaml``): the only role a
    dev-node run may pass to EC2."""
    return f"bp-devnode-{check_stage(stage)}"


def bundle_status_document(stage: str) -> str:
    """Run Command document printing a node's installed bundle as JSON (``gpu-shared.yaml``)."""
    return f"bp-bundle-status-{check_stage(stage)}"


# --- buckets and what the DAGs keep in them -------------------------------------------


def models_bucket(account_id: str) -> str:
    return f"bp-models-{account_id}"


def logs_bucket(account_id: str) -> str:
    return f"bp-logs-{account_id}"


def ami_revocation_audit_key(image_id: str, run_id: str) -> str:
    """One immutable record per revocation of an image (every fleet it touched)."""
    return f"audit/ami-revocations/{image_id}/{run_id}.jsonl"


def weekly_report_key(week: str, filename: str) -> str:
    """Where a weekly review pack's file lives in the logs bucket (``week``: ``2026-W44``)."""
    return f"reports/weekly/{week}/{filename}"
