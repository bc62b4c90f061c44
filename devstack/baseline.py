"""Seed the platform baseline into an AWS account: what CDK's network and data stacks
and the admin UI would have left there before any DAG of this project runs.

Used by ``make demo``/``make up`` against the local emulator and by the tests (moto
in-process). Seeding is idempotent: existing buckets, images and parameters are kept,
so a secret someone rotated is never reset by a second run.

What it creates (seed 004, "Secrets Reference" and "S3 layout"):

* buckets ``bp-models-<account>`` and ``bp-logs-<account>``;
* a VPC with two private subnets and the worker security group, published to SSM;
* a base GPU AMI, promoted as the AMI pointer of every seeded fleet;
* a sample bundle: content-addressed assets and a manifest v1;
* SSM: models bucket, packer instance profile, redis endpoint, a SecureString fleet
  secret per stage, and for each fleet its ``active_bundle`` (``none``) and
  ``desired_config``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from gpu_worker import layout
from include.naming import platform
from include.naming.fleet import Fleet

ClientFactory = Callable[[str], Any]
"""``factory("ssm")`` returns a boto3 client for that service (moto or real AWS)."""

#: The fleet every fresh environment has (seed 004 examples use ``gpu-default``).
DEFAULT_FLEETS: tuple[tuple[str, str], ...] = (("staging", "gpu-default"),)
#: What ``make up`` and ``make demo`` seed: a production fleet too (its desired_config and
#: AMI pointer, no stack), so a production apply, rollout, approval and rejection can be
#: tried on the local stack straight from the README.
LOCAL_STACK_FLEETS: tuple[tuple[str, str], ...] = (*DEFAULT_FLEETS, ("production", "gpu-default"))

DEFAULT_DESIRED_CONFIG: dict[str, Any] = {
    "template_slug": "sdxl-standard",
    "instance_types": ["g4dn.xlarge", "g5.xlarge"],
    "max_size": 2,
    "warmup_seconds": 300,
    "backlog_target": 2,
    "scale_to_zero_minutes": 15,
}

BASE_AMI_NAME = "bp-gpu-base-ubuntu-22.04"
PACKER_INSTANCE_PROFILE = "bp-packer-build"
REDIS_ENDPOINT = "bp-redis.local:6379"

#: A fixed namespace so the sample bundle has the same id in every environment.
_SAMPLE_BUNDLE_NAMESPACE = uuid.UUID("6f1d1f0e-2b8a-4c57-9a55-1d1b7c2f0b01")


@dataclass(frozen=True)
class SampleAsset:
    kind: str
    original_filename: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def target_path(self) -> str:
        return layout.KIND_TARGET_DIRS[self.kind] + self.original_filename


SAMPLE_ASSETS: tuple[SampleAsset, ...] = (
    SampleAsset("checkpoint", "sdxl-tiny.safetensors", b"\x00safetensors-checkpoint\x00" * 64),
    SampleAsset("lora", "film-grain.safetensors", b"\x01safetensors-lora\x01" * 32),
    SampleAsset("vae", "sdxl-vae.safetensors", b"\x02safetensors-vae\x02" * 16),
)


@dataclass
class Baseline:
    """What was seeded, for the demo's summary and for tests to break on purpose."""

    account_id: str
    region: str
    models_bucket: str
    logs_bucket: str
    vpc_id: str
    private_subnet_ids: list[str]
    worker_security_group_id: str
    base_ami_id: str
    sample_bundle_id: str
    fleets: list[tuple[str, str]] = field(default_factory=list)

    @property
    def sample_bundle_prefix(self) -> str:
        return layout.bundle_prefix(self.sample_bundle_id)


def sample_bundle_id(release: str = "v1") -> str:
    """The sample bundle's id; another ``release`` names another bundle of the same assets
    (what an admin creates to roll out)."""
    return str(uuid.uuid5(_SAMPLE_BUNDLE_NAMESPACE, f"sample-bundle-{release}"))


def sample_manifest(bundle_id: str) -> dict[str, Any]:
    """A manifest v1 exactly in the seed 004 schema, referencing :data:`SAMPLE_ASSETS`."""
    return {
        "manifest_version": layout.MANIFEST_VERSION,
        "bundle_id": bundle_id,
        "name": "Sample SDXL bundle",
        "created_at": "2026-11-01T00:00:00Z",
        "notes": "Seeded by include.baseline for the local stack",
        "assets": [
            {
                "asset_id": number,
                "kind": asset.kind,
                "sha256": asset.sha256,
                "size_bytes": len(asset.content),
                "asset_s3_key": layout.asset_key(asset.kind, asset.sha256),
                "original_filename": asset.original_filename,
                "target_path": asset.target_path,
                "action": "copy",
            }
            for number, asset in enumerate(SAMPLE_ASSETS, start=1)
        ],
    }


def seed_baseline(
    client: ClientFactory,
    *,
    fleets: tuple[tuple[str, str], ...] = DEFAULT_FLEETS,
) -> Baseline:
    """Create (or find) every baseline resource and return what is there."""
    region = client("sts").meta.region_name
    account_id = client("sts").get_caller_identity()["Account"]
    s3, ssm, ec2 = client("s3"), client("ssm"), client("ec2")

    models_bucket = platform.models_bucket(account_id)
    logs_bucket = platform.logs_bucket(account_id)
    for bucket in (models_bucket, logs_bucket):
        _ensure_bucket(s3, bucket, region)

    vpc_id, subnet_ids, security_group_id = _ensure_network(ec2)
    base_ami_id = _ensure_base_ami(ec2)
    bundle_id = sample_bundle_id()
    upload_sample_bundle(s3, models_bucket, bundle_id)

    params = _Params(ssm)
    params.ensure(platform.models_bucket_parameter(), models_bucket)
    params.ensure(platform.packer_instance_profile(), PACKER_INSTANCE_PROFILE)
    params.ensure(platform.packer_subnet_id(), subnet_ids[0])
    params.ensure(platform.packer_security_group_id(), _ensure_security_group(ec2, vpc_id, "bp-packer-build"))
    params.ensure(platform.redis_endpoint(), REDIS_ENDPOINT)
    params.ensure(platform.vpc_id(), vpc_id)
    params.ensure(platform.private_subnet_ids(), ",".join(subnet_ids), type_="StringList")
    params.ensure(platform.worker_security_group_id(), security_group_id)
    for stage in platform.STAGES:
        params.ensure(platform.fleet_secret(stage), secrets.token_hex(32), type_="SecureString")
    for stage, slug in fleets:
        params.ensure(Fleet(stage, slug).active_bundle, platform.NO_ACTIVE_BUNDLE)
        params.ensure(Fleet(stage, slug).desired_config, json.dumps(DEFAULT_DESIRED_CONFIG))
        params.ensure(Fleet(stage, slug).ami_pointer, base_ami_id, data_type="aws:ec2:image")

    return Baseline(
        account_id=account_id,
        region=region,
        models_bucket=models_bucket,
        logs_bucket=logs_bucket,
        vpc_id=vpc_id,
        private_subnet_ids=subnet_ids,
        worker_security_group_id=security_group_id,
        base_ami_id=base_ami_id,
        sample_bundle_id=bundle_id,
        fleets=list(fleets),
    )


class _Params:
    def __init__(self, ssm: Any) -> None:
        self._ssm = ssm

    def ensure(self, name: str, value: str, *, type_: str = "String", data_type: str = "text") -> None:
        try:
            self._ssm.put_parameter(Name=name, Value=value, Type=type_, DataType=data_type, Overwrite=False)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ParameterAlreadyExists":
                raise


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise


def _tag_spec(resource_type: str, name: str) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": resource_type,
            "Tags": [{"Key": "Name", "Value": name}, {"Key": "bp:baseline", "Value": "true"}],
        }
    ]


def _find_tagged(describe: Callable[..., dict], key: str, name: str) -> list[dict]:
    response = describe(
        Filters=[{"Name": "tag:Name", "Values": [name]}, {"Name": "tag:bp:baseline", "Values": ["true"]}]
    )
    return response[key]


def _ensure_network(ec2: Any) -> tuple[str, list[str], str]:
    vpcs = _find_tagged(ec2.describe_vpcs, "Vpcs", "bp-network")
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
    else:
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=_tag_spec("vpc", "bp-network"))["Vpc"][
            "VpcId"
        ]

    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnet_ids = []
    for index, zone in enumerate(zones):
        name = f"bp-private-{index + 1}"
        found = _find_tagged(ec2.describe_subnets, "Subnets", name)
        if found:
            subnet_ids.append(found[0]["SubnetId"])
            continue
        subnet_ids.append(
            ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=f"10.0.{128 + index}.0/24",
                AvailabilityZone=zone,
                TagSpecifications=_tag_spec("subnet", name),
            )["Subnet"]["SubnetId"]
        )

    return vpc_id, subnet_ids, _ensure_security_group(ec2, vpc_id, "bp-gpu-worker")


def _ensure_security_group(ec2: Any, vpc_id: str, name: str) -> str:
    """A security group with no inbound rule (egress only), found by its Name tag."""
    groups = _find_tagged(ec2.describe_security_groups, "SecurityGroups", name)
    if groups:
        return groups[0]["GroupId"]
    return ec2.create_security_group(
        GroupName=name,
        Description=f"{name}: egress only, no inbound",
        VpcId=vpc_id,
        TagSpecifications=_tag_spec("security-group", name),
    )["GroupId"]


def _ensure_base_ami(ec2: Any) -> str:
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [BASE_AMI_NAME]}])["Images"]
    if images:
        return images[0]["ImageId"]
    volume = ec2.create_volume(AvailabilityZone=_first_zone(ec2), Size=100, Encrypted=True)
    snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"], Description=f"root volume of {BASE_AMI_NAME}")
    image_id = ec2.register_image(
        Name=BASE_AMI_NAME,
        Description="Ubuntu 22.04 + NVIDIA driver + ComfyUI + gpu_worker (base, no bundle)",
        Architecture="x86_64",
        RootDeviceName="/dev/sda1",
        VirtualizationType="hvm",
        EnaSupport=True,
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/sda1",
                "Ebs": {"SnapshotId": snapshot["SnapshotId"], "VolumeSize": 100, "VolumeType": "gp3"},
            }
        ],
    )["ImageId"]
    ec2.create_tags(
        Resources=[image_id, snapshot["SnapshotId"]],
        Tags=[{"Key": "bp:image_kind", "Value": "base"}, {"Key": "bundle_id", "Value": "none"}],
    )
    ec2.delete_volume(VolumeId=volume["VolumeId"])
    return image_id


def _first_zone(ec2: Any) -> str:
    return ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]


def upload_sample_bundle(s3: Any, bucket: str, bundle_id: str) -> None:
    for asset in SAMPLE_ASSETS:
        s3.put_object(Bucket=bucket, Key=layout.asset_key(asset.kind, asset.sha256), Body=asset.content)
    s3.put_object(
        Bucket=bucket,
        Key=layout.manifest_key(layout.bundle_prefix(bundle_id)),
        Body=json.dumps(sample_manifest(bundle_id), indent=2).encode(),
        ContentType="application/json",
    )
