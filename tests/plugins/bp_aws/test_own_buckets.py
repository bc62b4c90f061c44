"""The platform's buckets are used only when this account owns them (the bucket owner
condition on every call), and a reused Lambda package is checked against its sha256."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from bp_aws.hooks.clients import aws_client_factory
from bp_aws.hooks.s3 import OwnBucketsS3Hook, require_bucket_owner
from include.fleets import provision
from include.naming import platform

ACCOUNT = "123456789012"


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _owners_sent(client) -> list[tuple[str, str | None]]:
    sent: list[tuple[str, str | None]] = []
    client.meta.events.register(
        "before-send.s3",
        lambda request, **_: sent.append((request.method, _text(request.headers.get("x-amz-expected-bucket-owner")))),
    )
    return sent


def test_every_call_of_the_hook_and_the_client_factory_expects_this_account(aws_http, baseline):
    hook = OwnBucketsS3Hook(aws_conn_id="aws_default")
    bucket = platform.logs_bucket(ACCOUNT)
    sent = _owners_sent(hook.conn)

    hook.load_string("record", "audit/x.json", bucket, replace=True)
    assert hook.check_for_key("audit/x.json", bucket)
    assert hook.head_object("audit/x.json", bucket)["ContentLength"] == 6
    factory_s3 = aws_client_factory("aws_default")("s3")
    factory_sent = _owners_sent(factory_s3)
    factory_s3.head_object(Bucket=bucket, Key="audit/x.json")

    assert sent == [("PUT", ACCOUNT), ("HEAD", ACCOUNT), ("HEAD", ACCOUNT)]
    assert factory_sent == [("HEAD", ACCOUNT)]


def test_a_bucket_another_account_owns_is_refused_403_and_nothing_is_written(aws_http, baseline):
    bucket = platform.logs_bucket(ACCOUNT)
    s3 = require_bucket_owner(aws_http("s3"), "999999999999")  # as if the name were someone else's

    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="audit/leak.json", Body=b"finance")

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "Contents" not in aws_http("s3").list_objects_v2(Bucket=bucket, Prefix="audit/leak")


def test_a_lambda_package_at_its_key_with_other_content_is_replaced(aws_http, baseline):
    from bp_tasks.gpu_fleet_provision import package_function

    package = provision.function_package()
    bucket = platform.logs_bucket(ACCOUNT)
    aws_http("s3").put_object(Bucket=bucket, Key=package.key, Body=b"not the function")

    request = provision.FleetRequest.from_params(
        {"fleet_stage": "staging", "fleet_slug": "gpu-default", "action": "apply"}
    )
    parameters = package_function.function(request, params={"aws_conn_id": "aws_default"})

    assert parameters["CodeKey"] == package.key
    stored = aws_http("s3").get_object(Bucket=bucket, Key=package.key)["Body"].read()
    assert provision.sha256_of(stored) == package.sha256
