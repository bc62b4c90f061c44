"""Putting a pointer back after a failed change, only over this run's own write."""

import pytest

from include.rollouts import pointers


def test_restore_puts_the_previous_value_back_only_over_its_own_write():
    writes = []

    def write(name, value, **kwargs):
        writes.append((name, value, kwargs["data_type"]))
        return 6

    def restore(read, written):
        return pointers.restore(read, write, name="/p", previous="ami-old", written=written, data_type="aws:ec2:image")

    ours = {"Value": "ami-new", "Version": 5}
    assert "restored to ami-old (version 6)" in restore(lambda n: ours, {"changed": True, "version": 5})
    assert writes == [("/p", "ami-old", "aws:ec2:image")]

    with pytest.raises(pointers.PointerMoved, match="changed after this run"):
        restore(lambda n: {"Value": "ami-x", "Version": 7}, {"changed": True, "version": 5})
    assert "nothing to restore" in restore(lambda n: ours, None)
    assert "nothing to restore" in restore(lambda n: ours, {"changed": False, "version": 5})
    assert len(writes) == 1
