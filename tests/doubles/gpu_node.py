"""A stand-in for the bundle installer on GPU nodes, which runs on EC2 instances that
can't boot here. It answers the Run Command documents of ``gpu-shared.yaml`` inside
the emulator (loaded into the moto server by the local stack, or into a test's
process), computing what the real ``gpu_worker.bundle`` CLI would print:

* at launch a node installs what its fleet's ``active_bundle`` pointer named at that
  moment (the ``bp-bundle-sync`` unit; its fleet comes from the instance's ``stage`` and
  ``fleet`` tags);
* ``bp-bundle-apply-<stage>`` installs the bundle the named pointer holds now; a prefix
  whose manifest is not in the models bucket fails with exit 1, as the CLI does, and
  the node keeps its previous bundle;
* ``bp-bundle-status-<stage>`` prints ``status --json``;
* ``bp-devnode-health-<stage>`` prints what the readiness probe prints once ComfyUI
  answers, or fails as it does when ComfyUI never comes up (an instance of an image
  planted with ``emulator:smoke-fail = comfyui``);
* ``bp-ami-smoke-<stage>`` prints what the smoke document's checks print on a good
  image, one line each; an instance launched from an image tagged
  ``emulator:smoke-fail = <check>`` (a planted bad image), or baked from one (its
  ``base_ami``: a broken driver stays broken in every bake on top of it), fails that
  check with what the real check prints when it fails; the bundle check compares the
  image's ``bundle_id`` tag (what Packer baked) with the bundle expected.

It never runs anything on the machine: it reads the emulator's SSM, S3 and EC2 state.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from moto.ec2.models import ec2_backends
from moto.s3.models import s3_backends
from moto.ssm.models import ssm_backends

from devstack.emulator.ssm import CommandResult, program_command
from gpu_worker import layout
from include.naming import platform
from include.naming.fleet import Fleet

ACCOUNT, REGION = "123456789012", "us-east-1"

#: Bundles installed by Run Command, by instance (boot installs are computed, not stored).
_applied: dict[str, str] = {}


def _tags(instance_id: str) -> dict[str, str]:
    instance = ec2_backends[ACCOUNT][REGION].get_instance(instance_id)
    return {tag["key"]: tag["value"] for tag in instance.get_tags()}


def _launched_at(instance_id: str) -> datetime:
    launched = ec2_backends[ACCOUNT][REGION].get_instance(instance_id).launch_time
    if isinstance(launched, str):
        return datetime.fromisoformat(launched.replace("Z", "+00:00"))
    return launched if launched.tzinfo else launched.replace(tzinfo=UTC)


def _booted_with(instance_id: str) -> str:
    """What the fleet's pointer held when the instance launched (``none`` outside a fleet)."""
    tags = _tags(instance_id)
    stage, fleet = tags.get(platform.STAGE_TAG), tags.get(platform.FLEET_TAG)
    if not stage or not fleet:
        return layout.NO_ACTIVE_BUNDLE
    versions = ssm_backends[ACCOUNT][REGION]._parameters.get(Fleet(stage, fleet).active_bundle) or []
    launched = _launched_at(instance_id)
    held = [v.value for v in versions if _utc(v.last_modified_date) <= launched]
    return held[-1] if held else layout.NO_ACTIVE_BUNDLE


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def installed(instance_id: str) -> str:
    return _applied.get(instance_id) or _booted_with(instance_id)


def _parameter(name: str) -> str | None:
    parameter = ssm_backends[ACCOUNT][REGION].get_parameter(name)
    return parameter.value if parameter is not None else None


def apply(instance_id: str, parameters: dict[str, list[str]]) -> CommandResult:
    bucket = _parameter(parameters["bucketParameter"][0])
    prefix = _parameter(parameters["prefixParameter"][0])
    if prefix in (None, layout.NO_ACTIVE_BUNDLE):
        return CommandResult(stdout="no active bundle for this fleet: nothing to install\n")
    key = f"{prefix}/manifest.json"
    objects = s3_backends[ACCOUNT]["global"].buckets[bucket].keys if bucket else {}
    if key not in objects:
        return CommandResult(
            status="Failed",
            response_code=1,
            stderr=f"error: s3://{bucket}/{key} does not exist; nothing was changed, "
            "the previous bundle is still installed\n",
        )
    if installed(instance_id) == prefix:
        return CommandResult(stdout=f"bundle {layout.bundle_id_of(prefix)} is already active: nothing to do\n")
    assets = json.loads(objects[key].value)["assets"]
    _applied[instance_id] = prefix
    return CommandResult(
        stdout=f"bundle {layout.bundle_id_of(prefix)} active: {len(assets)} file(s) installed, 0 already in place, "
        "0 of the previous bundle removed\n"
    )


def status(instance_id: str, parameters: dict[str, list[str]]) -> CommandResult:
    prefix = installed(instance_id)
    bundle_id = None if prefix == layout.NO_ACTIVE_BUNDLE else layout.bundle_id_of(prefix)
    return CommandResult(stdout=json.dumps({"active_bundle_id": bundle_id, "baked_bundle_id": None}) + "\n")


#: the tag that plants a bad image: the smoke check named by its value fails
PLANTED_SMOKE_FAILURE_TAG = "emulator:smoke-fail"
#: check -> (what it prints passing, what it prints failing), as the document's commands do
_SMOKE_LINES = {
    "gpu": ("NVIDIA A10G, 550.54.15", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."),
    "cuda": ("torch 2.4.0+cu121 CUDA 12.1 NVIDIA A10G", "AssertionError: torch.cuda.is_available() is False"),
    "comfyui": (
        "HTTP 200 from /system_stats",
        "curl: (7) Failed to connect to 127.0.0.1 port 8188 after 0 ms: Couldn't connect to server",
    ),
    "worker": ("gpu_worker imports", "ModuleNotFoundError: No module named 'gpu_worker'"),
    "agent": ("enabled", "disabled"),
    "owners": (
        "code under /opt/comfyui and /opt/worker is root's alone",
        "/opt/comfyui/venv/lib/python3.10/site-packages is not root's alone: a service user could change code "
        "that runs as root",
    ),
}


def _image_tags(image_id: str) -> dict[str, str]:
    image = ec2_backends[ACCOUNT][REGION].amis.get(image_id)
    return {tag["key"]: tag["value"] for tag in image.get_tags()} if image is not None else {}


def _planted_failure(instance_id: str) -> str | None:
    """The check an instance's image (or the base it was baked on) was planted to fail."""
    tags = _image_tags(ec2_backends[ACCOUNT][REGION].get_instance(instance_id).image_id)
    return tags.get(PLANTED_SMOKE_FAILURE_TAG) or _image_tags(tags.get("base_ami", "")).get(PLANTED_SMOKE_FAILURE_TAG)


def smoke(instance_id: str, parameters: dict[str, list[str]]) -> CommandResult:
    tags = _image_tags(ec2_backends[ACCOUNT][REGION].get_instance(instance_id).image_id)
    planted = _planted_failure(instance_id)
    lines, failed = [], False
    for check, (passing, failing) in _SMOKE_LINES.items():
        failed |= check == planted
        lines.append(f"FAIL {check}: {failing}" if check == planted else f"PASS {check}: {passing}")
    expected = parameters.get("expectedBundle", [layout.NO_ACTIVE_BUNDLE])[0]
    if expected != layout.NO_ACTIVE_BUNDLE:
        baked = tags.get("bundle_id", layout.NO_ACTIVE_BUNDLE)
        ok = baked == expected and planted != "bundle"
        failed |= not ok
        lines.append(f"{'PASS' if ok else 'FAIL'} bundle: baked bundle {baked} expected {expected}")
    return CommandResult(
        status="Failed" if failed else "Success", response_code=int(failed), stdout="\n".join(lines) + "\n"
    )


def health(instance_id: str, parameters: dict[str, list[str]]) -> CommandResult:
    passing, failing = _SMOKE_LINES["comfyui"]
    if _planted_failure(instance_id) == "comfyui":
        return CommandResult(status="Failed", response_code=7, stderr=failing + "\n")
    return CommandResult(stdout=f"ComfyUI ready: {passing}\n")


def install() -> None:
    _applied.clear()
    for stage in platform.STAGES:
        program_command(platform.bundle_apply_document(stage), apply)
        program_command(platform.bundle_status_document(stage), status)
        program_command(platform.ami_smoke_document(stage), smoke)
        program_command(platform.dev_node_health_document(stage), health)
