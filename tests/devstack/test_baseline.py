import hashlib
import json

from devstack import baseline
from gpu_worker import layout
from include.naming import platform
from include.naming.fleet import Fleet


def _value(aws, name, decrypt=False):
    return aws("ssm").get_parameter(Name=name, WithDecryption=decrypt)["Parameter"]


def test_baseline_seeds_buckets_parameters_network_and_ami(aws, seeded):
    buckets = {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert {"bp-models-123456789012", "bp-logs-123456789012"} <= buckets

    assert _value(aws, platform.models_bucket_parameter())["Value"] == seeded.models_bucket
    assert _value(aws, platform.packer_instance_profile())["Value"] == baseline.PACKER_INSTANCE_PROFILE
    assert _value(aws, platform.redis_endpoint())["Value"] == baseline.REDIS_ENDPOINT
    for stage in platform.STAGES:
        secret = _value(aws, platform.fleet_secret(stage), decrypt=True)
        assert secret["Type"] == "SecureString"
        assert len(secret["Value"]) == 64
        assert secret["Value"] != platform.UNSET_FLEET_SECRET

    assert _value(aws, Fleet("staging", "gpu-default").active_bundle)["Value"] == "none"
    config = json.loads(_value(aws, Fleet("staging", "gpu-default").desired_config)["Value"])
    assert config["backlog_target"] == 2
    assert config["instance_types"]
    ami = _value(aws, Fleet("staging", "gpu-default").ami_pointer)
    assert ami["Value"] == seeded.base_ami_id
    assert ami["DataType"] == "aws:ec2:image"
    image = aws("ec2").describe_images(ImageIds=[seeded.base_ami_id])["Images"][0]
    assert image["State"] == "available"

    subnets = _value(aws, platform.private_subnet_ids())["Value"].split(",")
    assert subnets == seeded.private_subnet_ids
    assert len(subnets) == 2
    described = aws("ec2").describe_subnets(SubnetIds=subnets)["Subnets"]
    assert {s["VpcId"] for s in described} == {seeded.vpc_id}
    assert _value(aws, platform.worker_security_group_id())["Value"] == seeded.worker_security_group_id


def test_sample_bundle_is_content_addressed_and_complete(aws, seeded):
    s3 = aws("s3")
    manifest_key = layout.manifest_key(seeded.sample_bundle_prefix)
    manifest = json.loads(s3.get_object(Bucket=seeded.models_bucket, Key=manifest_key)["Body"].read())
    assert manifest["manifest_version"] == 1
    assert manifest["bundle_id"] == seeded.sample_bundle_id
    assert len(manifest["assets"]) == len(baseline.SAMPLE_ASSETS)
    for asset in manifest["assets"]:
        assert asset["asset_s3_key"] == f"assets/{asset['kind']}/{asset['sha256']}"
        assert asset["target_path"].startswith(layout.KIND_TARGET_DIRS[asset["kind"]])
        body = s3.get_object(Bucket=seeded.models_bucket, Key=asset["asset_s3_key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == asset["sha256"]
        assert len(body) == asset["size_bytes"]


def test_seeding_twice_changes_nothing_and_keeps_a_rotated_secret(aws, seeded):
    ssm = aws("ssm")
    name = platform.fleet_secret("staging")
    ssm.put_parameter(Name=name, Value="rotated-by-an-operator", Type="SecureString", Overwrite=True)

    again = baseline.seed_baseline(aws)

    assert again == seeded
    assert _value(aws, name, decrypt=True)["Value"] == "rotated-by-an-operator"
    assert len(aws("ec2").describe_images(Owners=["self"])["Images"]) == 1
    assert len([v for v in aws("ec2").describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.0.0.0/16"]) == 1
