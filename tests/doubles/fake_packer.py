"""A stand-in for the ``packer`` binary, which can't run here (it would launch a real
EC2 build instance).

``packer init`` succeeds. ``packer build -machine-readable -var k=v ... TEMPLATE``
registers an image in whatever AWS the environment points at (the emulator, via
``AWS_ENDPOINT_URL``), tags the image and its snapshot with the ``-var`` values the
template would use as provenance tags, prints Packer's machine-readable lines
(ui messages and ``artifact 0 id <region>:<ami>``) and writes the manifest
post-processor's ``packer-manifest.json``.

Knobs for failure tests, through the environment:
``PACKER_DOUBLE_FAIL=<message>`` exits 1 after an error line;
``PACKER_DOUBLE_SLEEP=<seconds>`` sleeps mid-build (timeouts, on_kill), after writing
``PACKER_DOUBLE_PIDFILE`` (its own pid and a child's, to check the group is killed);
``PACKER_DOUBLE_ENV_DUMP=<path>`` writes the names of the variables it was given there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3

PROVENANCE = (
    "fleet_stage",
    "fleet_slug",
    "bundle_id",
    "base_ami",
    "git_sha",
    "airflow_run_id",
    "input_fingerprint",
    "base_image",
)


def out(target: str, kind: str, *data: str) -> None:
    fields = [value.replace(",", "%!(PACKER_COMMA)") for value in data]
    print(",".join([str(int(time.time())), target, kind, *fields]), flush=True)


def build(args: list[str]) -> int:
    variables: dict[str, str] = {}
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-var", "-var-file"):
            value = args.pop(0)
            if flag == "-var":
                key, _, val = value.partition("=")
                variables[key] = val
    template = args[0] if args else "."
    target = "amazon-ebs.comfyui-worker"
    region = os.environ.get("AWS_REGION", "us-east-1")
    out("", "ui", "say", f"==> {target}: Prepare: template {template} with {len(variables)} variable(s)")
    out(
        "",
        "ui",
        "message",
        f"    {target}: Launching a source instance ({variables.get('instance_type', 'g4dn.xlarge')})",
    )

    if os.environ.get("PACKER_DOUBLE_ENV_DUMP"):
        Path(os.environ["PACKER_DOUBLE_ENV_DUMP"]).write_text(json.dumps(sorted(os.environ)))
    if os.environ.get("PACKER_DOUBLE_SLEEP"):
        child = subprocess.Popen(["sleep", "600"])
        pidfile = os.environ.get("PACKER_DOUBLE_PIDFILE")
        if pidfile:
            Path(pidfile).write_text(f"{os.getpid()} {child.pid}")
        time.sleep(float(os.environ["PACKER_DOUBLE_SLEEP"]))
    if os.environ.get("PACKER_DOUBLE_FAIL"):
        out("", "ui", "error", f"Build '{target}' errored after 12 seconds: {os.environ['PACKER_DOUBLE_FAIL']}")
        return 1

    ec2 = boto3.client("ec2", region_name=region)
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    volume = ec2.create_volume(AvailabilityZone=zone, Size=100, Encrypted=True)
    snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    name = f"bp-gpu-{variables.get('fleet_slug', 'worker')}-{time.time_ns()}"
    image_id = ec2.register_image(
        Name=name,
        Architecture="x86_64",
        RootDeviceName="/dev/sda1",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot, "VolumeSize": 100}}],
    )["ImageId"]
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    # the template tags base_ami with {{ .SourceAMI }}: the bake's source (a base build's is Canonical's)
    variables.setdefault("base_ami", variables.get("source_ami", ""))
    tags = [{"Key": key, "Value": variables[key]} for key in PROVENANCE if variables.get(key)]
    if tags:
        ec2.create_tags(Resources=[image_id, *snapshots], Tags=tags)
    ec2.delete_volume(VolumeId=volume["VolumeId"])
    out("", "ui", "say", f"==> {target}: AMI: {image_id}")
    artifact = f"{region}:{image_id}"
    out(target, "artifact-count", "1")
    out(target, "artifact", "0", "builder-id", "mitchellh.amazonebs")
    out(target, "artifact", "0", "id", artifact)
    out(target, "artifact", "0", "string", f"AMIs were created:\n{region}: {image_id}")
    Path("packer-manifest.json").write_text(
        json.dumps({"builds": [{"name": "comfyui-worker", "builder_type": "amazon-ebs", "artifact_id": artifact}]})
    )
    out("", "ui", "say", f"Build '{target}' finished after 3 minutes 12 seconds.")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print("Usage: packer [--version] <command> [<args>]", file=sys.stderr)
        return 1
    command, rest = argv[0], argv[1:]
    if command == "init":
        print("Installed plugin github.com/hashicorp/amazon v1.3.2 in the plugin cache")
        return 0
    if command == "build":
        return build(rest)
    if command in ("version", "--version"):
        print("Packer v1.11.2 (test double)")
        return 0
    print(f"packer: unknown command {command!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
