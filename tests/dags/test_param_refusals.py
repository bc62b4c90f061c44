"""A refused param reads as one line, as Airflow's api-server refuses it."""

from __future__ import annotations

import pytest

from include.form_params import NEWLINE_GUARD, one_line_refusal


def _refuse(dag, name: str, value):
    """Airflow's api-server check of one param of the DAG as it holds it (serialized)."""
    from airflow.serialization.definitions.param import SerializedParamsDict
    from airflow.serialization.serialized_objects import DagSerialization

    params = DagSerialization.from_dict(DagSerialization.to_dict(dag)).params.deep_merge({name: value})
    SerializedParamsDict({name: params.get_param(name)}).validate()


def _patterned_params(dag_bag):
    for dag in sorted(dag_bag.dags.values(), key=lambda d: d.dag_id):
        for name in dag.params:
            if "pattern" in dag.params.get_param(name).schema:
                yield dag, name


def test_every_patterned_param_refuses_a_trailing_newline_in_one_line(dag_bag):
    from airflow.exceptions import ParamValidationError

    checked = []
    for dag, name in _patterned_params(dag_bag):
        default = dag.params.get_param(name).value
        good = default if isinstance(default, str) and default else "x"
        with pytest.raises(ParamValidationError) as refused:
            _refuse(dag, name, f"{good}\n")
        line = one_line_refusal(str(refused.value))

        assert "\n" not in line, (dag.dag_id, name, line)
        assert line.startswith(f"param {name}: ")
        assert NEWLINE_GUARD not in line
        assert "does not match the pattern ^" in line or " is not one of [" in line  # an enum is checked first
        assert one_line_refusal(f"Invalid input for {line}") == line
        checked.append(f"{dag.dag_id}.{name}")
    assert "gpu_bundle_rollout.fleet_slug" in checked
    assert "weekly_review_pack.week" in checked


def test_a_refusal_names_what_the_param_is_for(dag_bag):
    from airflow.exceptions import ParamValidationError

    dag = dag_bag.dags["gpu_bundle_rollout"]
    with pytest.raises(ParamValidationError) as refused:
        _refuse(dag, "fleet_slug", "Bad Slug")

    assert one_line_refusal(str(refused.value)) == (
        "param fleet_slug: 'Bad Slug' does not match the pattern ^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$ "
        "(The fleet, e.g. `gpu-default`.)"
    )


def test_a_message_that_is_no_param_refusal_keeps_its_first_line():
    assert one_line_refusal("DAG 'x' is paused\nmore") == "DAG 'x' is paused"
