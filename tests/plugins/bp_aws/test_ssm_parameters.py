import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from airflow.sdk.log import redact

from bp_aws.exceptions import AwsResourceNotFound, ParameterVersionConflict, ParameterWriteRejected
from bp_aws.hooks.ssm_parameters import SsmParameterHook
from bp_aws.operators.ssm_parameters import PutSsmParameterOperator
from bp_aws.sensors.ssm_parameters import SsmParameterSensor
from include.naming import platform
from include.naming.fleet import Fleet
from tests.plugins.conftest import resume, run_trigger

POINTER = Fleet("staging", "gpu-default").active_bundle


def _put(value, **kwargs):
    return PutSsmParameterOperator(task_id="put", name=kwargs.pop("name", POINTER), value=value, **kwargs)


def _value(aws_http, name=POINTER):
    return aws_http("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]


def test_a_write_over_the_version_read_succeeds_and_returns_what_it_replaced(aws_http, baseline):
    result = _put("bundles/new", expected_version=1).execute({})

    assert result == {
        "name": POINTER,
        "version": 2,
        "previous_version": 1,
        "previous_value": "none",
        "changed": True,
    }
    assert _value(aws_http)["Value"] == "bundles/new"


def test_expected_version_0_means_the_parameter_must_not_exist(aws_http, baseline):
    name = Fleet("staging", "new-fleet").active_bundle

    assert _put("none", name=name, expected_version=0, tags={"fleet": "new-fleet"}).execute({})["version"] == 1
    tags = aws_http("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    assert tags == [{"Key": "fleet", "Value": "new-fleet"}]
    with pytest.raises(ParameterVersionConflict, match="expected version 0, found 1"):
        _put("bundles/other", name=name, expected_version=0).execute({})


def test_a_write_after_someone_else_moved_the_pointer_is_refused(aws_http, baseline):
    read_version = _value(aws_http)["Version"]
    aws_http("ssm").put_parameter(Name=POINTER, Value="bundles/theirs", Type="String", Overwrite=True)

    with pytest.raises(ParameterVersionConflict, match=f"expected version {read_version}, found 2") as refused:
        _put("bundles/ours", expected_version=read_version).execute({})

    assert "Nothing was written" in str(refused.value)
    assert _value(aws_http)["Value"] == "bundles/theirs"


def test_a_race_inside_the_read_write_window_is_detected(aws_http, baseline):
    operator = _put("bundles/ours", expected_version=1)
    other_writer = aws_http("ssm")

    def someone_writes_first(**_):
        other_writer.put_parameter(Name=POINTER, Value="bundles/theirs", Type="String", Overwrite=True)

    operator.hook.conn.meta.events.register_first("before-call.ssm.PutParameter", someone_writes_first)

    with pytest.raises(ParameterVersionConflict, match=r"written by someone else .* became version 3, not 2"):
        operator.execute({})


def test_re_running_a_finished_write_is_a_no_op(aws_http, baseline):
    first = _put("bundles/new", expected_version=1).execute({})
    again = _put("bundles/new", expected_version=1).execute({})

    assert again == {**first, "changed": False}
    assert _value(aws_http)["Version"] == 2


def test_an_ami_pointer_is_written_as_aws_ec2_image(aws_http, baseline):
    name = Fleet("staging", "gpu-default").ami_pointer

    result = _put(baseline.base_ami_id, name=name, data_type="aws:ec2:image").execute({})

    assert result["changed"] is False  # the baseline already promoted that image
    image = aws_http("ec2").register_image(Name="next", RootDeviceName="/dev/sda1", BlockDeviceMappings=[])["ImageId"]
    result = _put(image, name=name, data_type="aws:ec2:image", expected_version=1).execute({})
    assert result["previous_value"] == baseline.base_ami_id
    stored = _value(aws_http, name)
    assert (stored["Value"], stored["DataType"]) == (image, "aws:ec2:image")


@pytest.mark.parametrize("bad_image", ["ami-0123456789abcdef0", "not-an-ami"])
def test_an_ami_aws_rejects_asynchronously_fails_the_task(aws_http, baseline, bad_image):
    name = Fleet("staging", "gpu-default").ami_pointer

    with pytest.raises(ParameterWriteRejected, match=f"still holds {baseline.base_ami_id} \\(version 1\\)"):
        _put(bad_image, name=name, data_type="aws:ec2:image", image_validation_timeout=0).execute({})

    assert _value(aws_http, name)["Value"] == baseline.base_ami_id


def test_secure_values_are_masked_and_kept_out_of_xcom(aws_http, baseline, capsys):
    name = platform.fleet_secret("staging")
    old = _value(aws_http, name)["Value"]

    result = _put("n3w-s3cr3t-value", name=name, parameter_type="SecureString").execute({})

    assert result["previous_value"] is None
    assert _value(aws_http, name)["Value"] == "n3w-s3cr3t-value"
    assert redact("token n3w-s3cr3t-value") == "token ***"
    assert redact(f"old {old}") == "old ***"
    output = capsys.readouterr()
    assert "n3w-s3cr3t-value" not in output.out + output.err


def test_a_secure_value_is_masked_when_rendered_before_the_ui_stores_it(aws_http, baseline):
    """Airflow serializes the rendered fields (redacted) right after rendering, before
    execute(): the mask must already be there."""
    from airflow.sdk.execution_time.task_runner import _serialize_rendered_fields

    secret = "r3nd3red-s3cr3t-4711"
    operator = _put("{{ params.secret }}", name=platform.fleet_secret("staging"), parameter_type="SecureString")

    operator.render_template_fields({"params": {"secret": secret}})

    assert operator.value == secret
    assert secret not in str(_serialize_rendered_fields(operator))


def test_a_missing_parameter_is_named(aws_http, baseline):
    with pytest.raises(AwsResourceNotFound, match="SSM parameter '/bp/fleets/staging/nope/active_bundle' does not"):
        SsmParameterHook().require(Fleet("staging", "nope").active_bundle)


def _sensor(**kwargs):
    kwargs.setdefault("poke_interval", 0)
    return SsmParameterSensor(task_id="wait", name=kwargs.pop("name", POINTER), **kwargs)


def test_the_sensor_waits_for_the_parameter_to_exist(aws_http, baseline):
    name = Fleet("staging", "new-fleet").desired_config
    sensor = _sensor(name=name)

    assert sensor.poke({}) is False
    aws_http("ssm").put_parameter(Name=name, Value="{}", Type="String")
    assert sensor.poke({}) is True


@pytest.mark.parametrize(
    ("conditions", "before", "after"),
    [
        ({"equals": "bundles/b2"}, "bundles/b1", "bundles/b2"),
        ({"pattern": r"bundles/[0-9a-f-]{36}"}, "none", "bundles/9ff33ead-2b27-59c7-9820-1caf453c25b8"),
        ({"newer_than_version": 2}, "bundles/b1", "bundles/b3"),
    ],
)
def test_the_sensor_checks_value_pattern_and_version(aws_http, baseline, conditions, before, after):
    ssm = aws_http("ssm")
    ssm.put_parameter(Name=POINTER, Value=before, Type="String", Overwrite=True)
    sensor = _sensor(**conditions)

    assert sensor.poke({}) is False
    ssm.put_parameter(Name=POINTER, Value=after, Type="String", Overwrite=True)
    assert sensor.poke({}) is True


def test_the_deferrable_sensor_resumes_with_the_version(aws_http, baseline):
    ssm = aws_http("ssm")
    sensor = _sensor(equals="bundles/b2", deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    ssm.put_parameter(Name=POINTER, Value="bundles/b2", Type="String", Overwrite=True)

    event = run_trigger(deferred.value.trigger)

    assert event == {"status": "success", "name": POINTER, "version": 2}
    assert sensor.execute_complete({}, event) == 2


def test_the_deferrable_sensor_fails_when_the_condition_never_holds(aws_http, baseline):
    sensor = _sensor(equals="bundles/never", deferrable=True, timeout=2, poke_interval=1)

    expected = rf"SSM parameter {POINTER} did not meet the condition after 3 poll\(s\) over 2 s"
    with pytest.raises(AirflowException, match=expected):
        resume(sensor)


def test_the_sensor_masks_a_secure_value_it_reads(aws_http, baseline, capsys):
    name = platform.fleet_secret("staging")
    secret = _value(aws_http, name)["Value"]

    assert _sensor(name=name, pattern="[0-9a-f]{64}").poke({}) is True

    assert redact(secret) == "***"
    assert secret not in capsys.readouterr().out


def test_a_rendered_max_wait_bounds_the_deferred_wait(aws_http, baseline):
    """A DAG param bounds the wait through the templated max_wait_seconds ("0": one look)."""
    name = Fleet("staging", "never-created").desired_config
    sensor = _sensor(name=name, deferrable=True, timeout=3600, poke_interval=5, max_wait_seconds="0")

    with pytest.raises(AirflowException, match=rf"{name} did not meet the condition after 1 poll\(s\) over 0 s"):
        resume(sensor)
    assert sensor.timeout == 0
