from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import TaskDeferred

from bp_aws.exceptions import AwsResourceNotFound, ImageNotAvailable, ImageRevoked
from bp_aws.operators.ami import AmiRetentionOperator, PromoteAmiOperator, TagImageOperator
from bp_aws.sensors.ami import ImageAvailableSensor
from include.amis import revocation
from include.naming.fleet import Fleet
from tests.plugins.conftest import resume, run_trigger

ACCOUNT, REGION = "123456789012", "us-east-1"
FLEET_TAGS = {"fleet_stage": "staging", "fleet_slug": "gpu-default"}
POINTER = Fleet("staging", "gpu-default").ami_pointer
#: the request gpu_ami_build_and_bake's restore gets (validated by its first task)
BAKE = {"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake", "instance_type": "g5.xlarge"}


def _backend_image(image_id):
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][REGION].amis[image_id]


def _register(aws_http, name, *, stage="staging", slug="gpu-default", days_ago=0):
    ec2 = aws_http("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)
    snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    image_id = ec2.register_image(
        Name=name,
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot}}],
    )["ImageId"]
    ec2.create_tags(
        Resources=[image_id], Tags=[{"Key": "fleet_stage", "Value": stage}, {"Key": "fleet_slug", "Value": slug}]
    )
    created = datetime.now(UTC) - timedelta(days=days_ago)
    _backend_image(image_id).creation_date = created
    # moto copies the snapshot into one of the image's own on register, as AWS does
    [mapping] = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"]
    return image_id, mapping["Ebs"]["SnapshotId"]


def _sensor(image_id, **kwargs):
    return ImageAvailableSensor(task_id="ami", image_id=image_id, poke_interval=0, timeout=30, **kwargs)


def test_the_sensor_waits_from_pending_to_available(aws_http, baseline):
    image_id, _ = _register(aws_http, "baking")
    _backend_image(image_id).state = "pending"
    sensor = _sensor(image_id)

    assert sensor.poke({}) is False
    _backend_image(image_id).state = "available"
    assert sensor.poke({}) is True


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_failed_image_fails_the_sensor_with_its_reason(aws_http, baseline, deferrable):
    image_id, _ = _register(aws_http, "broken")
    image = _backend_image(image_id)
    image.state = "failed"
    image.state_reason = {"Code": "Client.InternalError", "Message": "Snapshot creation failed"}
    sensor = _sensor(image_id, deferrable=deferrable)

    with pytest.raises(ImageNotAvailable, match=f"AMI {image_id} is failed: Snapshot creation failed"):
        resume(sensor)


def test_the_deferrable_sensor_resumes_when_the_image_is_available(aws_http, baseline):
    image_id, _ = _register(aws_http, "baking")
    _backend_image(image_id).state = "pending"
    sensor = _sensor(image_id, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    _backend_image(image_id).state = "available"

    event = run_trigger(deferred.value.trigger)

    assert event == {"status": "success", "image_id": image_id}
    assert sensor.execute_complete({}, event) == image_id


def test_a_deregistered_image_is_named(aws_http, baseline):
    image_id, _ = _register(aws_http, "gone")
    aws_http("ec2").deregister_image(ImageId=image_id)

    with pytest.raises(AwsResourceNotFound, match=f"AMI '{image_id}' does not exist"):
        _sensor(image_id).poke({})


def test_tagging_reaches_the_image_and_its_snapshots(aws_http, baseline):
    image_id, snapshot = _register(aws_http, "tagged")

    resources = TagImageOperator(task_id="tag", image_id=image_id, tags={"bundle_id": "b-1"}).execute({})

    assert resources == [image_id, snapshot]
    tags = aws_http("ec2").describe_tags(
        Filters=[{"Name": "key", "Values": ["bundle_id"]}, {"Name": "value", "Values": ["b-1"]}]
    )["Tags"]
    assert {t["ResourceId"] for t in tags} == {image_id, snapshot}


def test_retention_keeps_newest_and_used_images_and_deletes_the_rest(aws_http, baseline, capsys):
    ec2, ssm = aws_http("ec2"), aws_http("ssm")
    images = {days: _register(aws_http, f"gpu-default-{days}", days_ago=days) for days in (1, 2, 3, 4, 5, 6)}
    other_fleet, _ = _register(aws_http, "other", slug="other-fleet", days_ago=30)
    pointer = Fleet("staging", "gpu-default").ami_pointer
    ssm.put_parameter(Name=pointer, Value=images[6][0], Type="String", DataType="aws:ec2:image", Overwrite=True)
    ec2.create_launch_template(LaunchTemplateName="old-template", LaunchTemplateData={"ImageId": images[5][0]})
    ec2.run_instances(ImageId=images[4][0], MinCount=1, MaxCount=1)

    dry = AmiRetentionOperator(
        task_id="retain", image_tags=FLEET_TAGS, pointer_parameter=POINTER, keep_newest=2, dry_run=True
    ).execute({})
    assert dry == {
        "kept": [images[1][0], images[2][0], images[4][0], images[5][0], images[6][0]],
        "deleted": [images[3][0]],
        "dry_run": True,
    }
    assert (
        len(
            ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:fleet_slug", "Values": ["gpu-default"]}])[
                "Images"
            ]
        )
        == 6
    )

    result = AmiRetentionOperator(
        task_id="retain", image_tags=FLEET_TAGS, pointer_parameter=POINTER, keep_newest=2
    ).execute({})

    assert result["deleted"] == [images[3][0]]
    remaining = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert images[3][0] not in remaining
    assert {images[1][0], images[6][0], other_fleet} <= remaining
    snapshots = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert images[3][1] not in snapshots
    assert images[4][1] in snapshots
    log = capsys.readouterr().out
    assert f"{images[6][0]}" in log
    assert f"SSM pointer {pointer}" in log
    assert "launch template old-template v1" in log


def test_a_revoked_image_is_never_promoted_and_a_good_one_is(aws_http, baseline):
    good, _ = _register(aws_http, "good")
    bad, _ = _register(aws_http, "bad")
    aws_http("ec2").create_tags(
        Resources=[bad], Tags=[{"Key": k, "Value": v} for k, v in revocation.revoked_tags("cve", "manual__r").items()]
    )
    before = aws_http("ssm").get_parameter(Name=POINTER)["Parameter"]

    with pytest.raises(ImageRevoked, match=r"revoked by manual__r: cve\. It is never promoted again"):
        PromoteAmiOperator(task_id="promote_ami", name=POINTER, value=bad).execute({})
    assert aws_http("ssm").get_parameter(Name=POINTER)["Parameter"]["Version"] == before["Version"]

    promoted = PromoteAmiOperator(task_id="promote_ami", name=POINTER, value=good).execute({})
    assert promoted["changed"]
    assert aws_http("ssm").get_parameter(Name=POINTER)["Parameter"]["Value"] == good


def _failed_refresh_after_promotion(aws_http, previous: str, promoted: str):
    """The pointer held ``previous``; this run wrote ``promoted``; its refresh then failed."""
    from types import SimpleNamespace

    ssm = aws_http("ssm")
    ssm.put_parameter(Name=POINTER, Value=previous, Type="String", DataType="aws:ec2:image", Overwrite=True)
    written = ssm.put_parameter(Name=POINTER, Value=promoted, Type="String", DataType="aws:ec2:image", Overwrite=True)
    xcoms = {"promote_ami": {"changed": True, "version": written["Version"]}}
    return SimpleNamespace(xcom_pull=lambda task_ids: xcoms.get(task_ids))


def _bake_request():
    from include.amis.build import BuildRequest

    return BuildRequest.from_params({**BAKE, "start_instance_refresh": True})


def test_a_failed_refresh_points_the_fleet_back_at_the_ami_it_had(aws_http, baseline):
    from bp_tasks.gpu_ami_build_and_bake import restore_previous_ami

    previous, _ = _register(aws_http, "previous", days_ago=3)
    promoted, _ = _register(aws_http, "promoted")
    ti = _failed_refresh_after_promotion(aws_http, previous, promoted)

    said = restore_previous_ami.function(
        _bake_request(), {"current_ami": previous}, params={"aws_conn_id": "aws_default"}, ti=ti
    )

    assert said.startswith("the instance refresh failed: ")
    assert aws_http("ssm").get_parameter(Name=POINTER)["Parameter"]["Value"] == previous


def test_a_failed_refresh_never_points_the_fleet_back_at_an_ami_revoked_meanwhile(aws_http, baseline):
    from airflow.sdk.exceptions import AirflowFailException

    from bp_tasks.gpu_ami_build_and_bake import restore_previous_ami

    previous, _ = _register(aws_http, "previous", days_ago=3)
    promoted, _ = _register(aws_http, "promoted")
    ti = _failed_refresh_after_promotion(aws_http, previous, promoted)
    tags = revocation.revoked_tags("driver crash under load", "manual__revoke")
    aws_http("ec2").create_tags(Resources=[previous], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    with pytest.raises(AirflowFailException) as refused:
        restore_previous_ami.function(
            _bake_request(), {"current_ami": previous}, params={"aws_conn_id": "aws_default"}, ti=ti
        )

    assert f"but {previous}, the AMI the fleet had before, can't take its place: it is revoked by" in str(refused.value)
    assert "driver crash under load" in str(refused.value)
    assert aws_http("ssm").get_parameter(Name=POINTER)["Parameter"]["Value"] == promoted
