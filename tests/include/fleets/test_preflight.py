import json

import pytest

from gpu_worker import layout
from include.errors import InvalidRequest
from include.fleets import preflight
from include.fleets.preflight import Scope, Severity
from include.naming import platform
from include.naming.fleet import Fleet

STAGING, SLUG = "staging", "gpu-default"


def _critical(findings):
    return [(f.check, f.resource, f.detail) for f in findings if f.severity is Severity.CRITICAL]


def test_seeded_baseline_has_no_deploy_blocker(aws, seeded):
    findings = preflight.inspect_platform(aws)

    assert _critical(findings) == []
    checked = {(f.check, f.resource) for f in findings}
    assert ("ami pointer", Fleet(STAGING, SLUG).ami_pointer) in checked
    assert ("active bundle", Fleet(STAGING, SLUG).active_bundle) in checked
    assert ("fleet secret", platform.fleet_secret("production")) in checked
    preflight.raise_for_critical(findings)  # must not raise


def _put(aws, name, value, type_="String"):
    aws("ssm").put_parameter(Name=name, Value=value, Type=type_, Overwrite=True)


def _placeholder_secret(aws, seeded):
    _put(aws, platform.fleet_secret(STAGING), platform.UNSET_FLEET_SECRET, "SecureString")
    return "fleet secret", platform.fleet_secret(STAGING), "still the deploy placeholder CHANGE_ME_AFTER_DEPLOY"


def _missing_secret(aws, seeded):
    aws("ssm").delete_parameter(Name=platform.fleet_secret(STAGING))
    return "fleet secret", platform.fleet_secret(STAGING), "parameter is missing"


def _bucket_gone(aws, seeded):
    _put(aws, platform.models_bucket_parameter(), "bp-models-typo")
    return (
        "models bucket",
        platform.models_bucket_parameter(),
        "points to bucket 'bp-models-typo', which does not exist",
    )


def _ami_deregistered(aws, seeded):
    aws("ec2").deregister_image(ImageId=seeded.base_ami_id)
    return "ami pointer", Fleet(STAGING, SLUG).ami_pointer, f"points to {seeded.base_ami_id}, which does not exist"


def _bundle_manifest_missing(aws, seeded):
    _put(aws, Fleet(STAGING, SLUG).active_bundle, "bundles/0000-not-uploaded")
    key = "bundles/0000-not-uploaded/manifest.json"
    return "active bundle", Fleet(STAGING, SLUG).active_bundle, f"s3://{seeded.models_bucket}/{key}"


def _desired_config_not_json(aws, seeded):
    _put(aws, Fleet(STAGING, SLUG).desired_config, "{'max_size': 2,}")
    return "desired_config", Fleet(STAGING, SLUG).desired_config, "is not valid JSON"


@pytest.mark.parametrize(
    "break_one_item",
    [
        _placeholder_secret,
        _missing_secret,
        _bucket_gone,
        _ami_deregistered,
        _bundle_manifest_missing,
        _desired_config_not_json,
    ],
)
def test_each_broken_item_is_one_precise_critical_finding(aws, seeded, break_one_item):
    check, resource, detail_part = break_one_item(aws, seeded)

    findings = preflight.inspect_platform(aws)

    critical = _critical(findings)
    assert len(critical) == 1, critical
    assert critical[0][:2] == (check, resource)
    assert detail_part in critical[0][2]
    with pytest.raises(preflight.PreflightFailed, match=f"1 deploy blocker\\(s\\) found: {check} {resource}"):
        preflight.raise_for_critical(findings)


def test_every_problem_is_reported_not_just_the_first(aws, seeded):
    _placeholder_secret(aws, seeded)
    _ami_deregistered(aws, seeded)
    _desired_config_not_json(aws, seeded)

    findings = preflight.inspect_platform(aws)

    assert {c[0] for c in _critical(findings)} == {"fleet secret", "ami pointer", "desired_config"}
    table = preflight.render_table(findings)
    assert table.splitlines()[0].split() == ["SEVERITY", "CHECK", "RESOURCE", "DETAIL"]
    assert [line.split()[0] for line in table.splitlines()[1:4]] == ["CRITICAL"] * 3


def test_an_ami_pointer_to_an_unknown_image_is_critical(aws, seeded):
    ec2 = aws("ec2")
    ec2.deregister_image(ImageId=seeded.base_ami_id)
    _put(aws, Fleet(STAGING, SLUG).ami_pointer, "ami-00000000000000000")

    critical = _critical(preflight.inspect_platform(aws))

    assert critical == [
        ("ami pointer", Fleet(STAGING, SLUG).ami_pointer, "points to ami-00000000000000000, which does not exist")
    ]


def test_a_desired_config_that_is_json_but_not_an_object_is_critical(aws, seeded):
    _put(aws, Fleet(STAGING, SLUG).desired_config, json.dumps(["g5.xlarge"]))

    assert _critical(preflight.inspect_platform(aws)) == [
        ("desired_config", Fleet(STAGING, SLUG).desired_config, "is JSON list, not an object")
    ]


def test_a_desired_config_the_fleet_templates_refuse_is_critical_with_every_reason(aws, seeded):
    config = {"template_slug": "sdxl-standard", "instance_types": ["p5.48xlarge"], "max_size": 40}
    _put(aws, Fleet(STAGING, SLUG).desired_config, json.dumps(config))

    [(check, name, message)] = _critical(preflight.inspect_platform(aws))

    assert (check, name) == ("desired_config", Fleet(STAGING, SLUG).desired_config)
    assert message.startswith("instance type p5.48xlarge is not allowed by template sdxl-standard")
    assert message.endswith("; max_size 40 is out of bounds for template sdxl-standard (1..10)")


def test_a_missing_ami_pointer_is_a_warning_that_names_the_dag_to_run(aws, seeded):
    aws("ssm").delete_parameter(Name=Fleet(STAGING, SLUG).ami_pointer)

    findings = preflight.inspect_platform(aws)

    assert _critical(findings) == []
    [warning] = [f for f in findings if f.check == "ami pointer"]
    assert warning.severity is Severity.WARNING
    assert "gpu_ami_build_and_bake" in warning.detail


def test_the_placeholder_in_a_stage_without_fleets_is_only_a_warning(aws, seeded):
    _put(aws, platform.fleet_secret("production"), platform.UNSET_FLEET_SECRET, "SecureString")

    findings = preflight.inspect_platform(aws)

    assert _critical(findings) == []
    [finding] = [f for f in findings if f.resource == platform.fleet_secret("production")]
    assert finding.severity is Severity.WARNING


def test_an_active_bundle_whose_manifest_exists_is_ok(aws, seeded):
    _put(aws, Fleet(STAGING, SLUG).active_bundle, seeded.sample_bundle_prefix)

    findings = preflight.inspect_platform(aws)

    [bundle] = [f for f in findings if f.check == "active bundle"]
    assert bundle.severity is Severity.OK
    assert layout.manifest_key(seeded.sample_bundle_prefix) in bundle.detail


def test_scope_limits_the_checks_to_one_stage_and_fleet(aws, seeded):
    _put(aws, Fleet("production", "other-fleet").desired_config, "not json")

    everything = preflight.inspect_platform(aws)
    staging_only = preflight.inspect_platform(aws, Scope("staging", "gpu-default"))

    assert Fleet("production", "other-fleet") in preflight.discover_fleets(aws("ssm"))
    assert [c[:2] for c in _critical(everything)] == [
        ("desired_config", Fleet("production", "other-fleet").desired_config)
    ]
    assert _critical(staging_only) == []
    assert all("production" not in f.resource for f in staging_only)


def test_a_fleet_named_in_scope_but_absent_is_reported(aws, seeded):
    findings = preflight.inspect_platform(aws, Scope("staging", "never-created"))

    missing = {f.check: f.severity for f in findings if "never-created" in f.resource}
    assert missing == {
        "desired_config": Severity.WARNING,
        "ami pointer": Severity.WARNING,
        "active bundle": Severity.WARNING,
    }


def test_secret_values_go_to_the_mask_hook_and_never_into_findings(aws, seeded):
    masked = []
    secrets = {
        stage: aws("ssm").get_parameter(Name=platform.fleet_secret(stage), WithDecryption=True)["Parameter"]["Value"]
        for stage in platform.STAGES
    }

    findings = preflight.inspect_platform(aws, on_secret=masked.append)

    assert sorted(masked) == sorted(secrets.values())
    table = preflight.render_table(findings)
    assert not any(secret in table for secret in secrets.values())


def test_an_invalid_scope_is_refused_before_any_call():
    with pytest.raises(InvalidRequest):
        Scope("staging", "Bad Slug")
    with pytest.raises(InvalidRequest):
        Scope("qa", None)
