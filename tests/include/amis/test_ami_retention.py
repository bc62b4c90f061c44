import pytest

from include.amis.retention import plan_retention


def _image(image_id, created, snapshot=None):
    mappings = [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot}}] if snapshot else []
    return {"ImageId": image_id, "CreationDate": created, "Name": image_id, "BlockDeviceMappings": mappings}


IMAGES = [
    _image("ami-1", "2026-10-01T00:00:00.000Z", "snap-1"),
    _image("ami-2", "2026-10-02T00:00:00.000Z", "snap-2"),
    _image("ami-3", "2026-10-03T00:00:00.000Z", "snap-3"),
    _image("ami-4", "2026-10-04T00:00:00.000Z"),
    _image("ami-5", "2026-10-05T00:00:00.000Z", "snap-5"),
]


def test_the_newest_and_the_used_are_kept_the_rest_deleted():
    plan = plan_retention(IMAGES, keep_newest=2, in_use={"ami-1": "SSM pointer /x", "ami-3": "instance i-1"})

    assert [(d.image_id, d.keep, d.reason) for d in plan.decisions] == [
        ("ami-5", True, "among the newest 2"),
        ("ami-4", True, "among the newest 2"),
        ("ami-3", True, "instance i-1"),
        ("ami-2", False, "older than the newest 2 and not in use"),
        ("ami-1", True, "SSM pointer /x"),
    ]
    assert [(d.image_id, d.snapshot_ids) for d in plan.to_delete] == [("ami-2", ("snap-2",))]


def test_nothing_is_deleted_when_everything_is_new_or_used():
    assert plan_retention(IMAGES, keep_newest=5, in_use={}).to_delete == []


def test_the_newest_image_can_never_be_deleted():
    with pytest.raises(ValueError, match="keep_newest must be at least 1"):
        plan_retention(IMAGES, keep_newest=0, in_use={})
