"""S3 on the platform's own buckets, with the bucket owner condition on every call.

The buckets have predictable names (``bp-logs-<account>``, ``bp-models-<account>``):
if one is deleted, anybody may create a bucket of that name and receive what the
platform writes (rollout audit records, finance packs, node output). Every call that
takes ``ExpectedBucketOwner`` carries the connection's own account, so S3 answers 403
instead of reading or writing a bucket that someone else owns.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

OWNER_PARAMETER = "ExpectedBucketOwner"


def require_bucket_owner(client: Any, account_id: str) -> Any:
    """Make every call of the S3 ``client`` that names a bucket expect ``account_id`` as
    its owner (unless the call sets one itself); returns the client."""

    def add_owner(params: dict[str, Any], model: Any, **_: Any) -> None:
        if OWNER_PARAMETER in model.input_shape.members and "Bucket" in params:
            params.setdefault(OWNER_PARAMETER, account_id)

    client.meta.events.register("before-parameter-build.s3", add_owner)
    return client


class OwnBucketsS3Hook(S3Hook):
    """:class:`S3Hook` whose client and resource expect the connection's account to own
    every bucket they touch.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.s3.S3Hook`
    """

    @cached_property
    def bucket_owner(self) -> str:
        return self.account_id

    def get_client_type(self, *args: Any, **kwargs: Any) -> Any:
        return require_bucket_owner(super().get_client_type(*args, **kwargs), self.bucket_owner)

    def get_resource_type(self, *args: Any, **kwargs: Any) -> Any:
        resource = super().get_resource_type(*args, **kwargs)
        require_bucket_owner(resource.meta.client, self.bucket_owner)
        return resource

    def put_object(self, bucket: str, key: str, body: bytes, content_type: str, *, only_new: bool = False) -> bool:
        """Write an object with its Content-Type (S3Hook's ``load_bytes`` sets none). With
        ``only_new``: written only if nothing is at ``key`` yet (``If-None-Match: *``), False
        when something was. .. seealso:: S3.Client.put_object"""
        arguments = {"IfNoneMatch": "*"} if only_new else {}
        try:
            self.conn.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **arguments)
        except ClientError as error:
            if only_new and error.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True
