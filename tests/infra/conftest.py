"""Reading the CloudFormation templates as data, intrinsic functions included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from include.fleets import provision as fleet_provision


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: ``!Ref X`` -> ``{"Ref": "X"}``,
    ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub ...`` -> ``{"Fn::Sub": ...}``."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@pytest.fixture(scope="session")
def shared_template() -> dict[str, Any]:
    return load_template(fleet_provision.SHARED_TEMPLATE)


@pytest.fixture(scope="session")
def fleet_template() -> dict[str, Any]:
    return load_template(fleet_provision.FLEET_TEMPLATE)
