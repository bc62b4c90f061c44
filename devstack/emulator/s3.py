"""S3's bucket owner condition, which moto accepts and ignores.

AWS (GetObject and every other call that takes it, ``ExpectedBucketOwner``): "The
account ID of the expected bucket owner. If the account ID that you provide does not
match the actual owner of the bucket, the request fails with the HTTP status code 403
Forbidden (access denied)."

So: a request whose ``x-amz-expected-bucket-owner`` header names another account than the
bucket's is answered 403 AccessDenied before moto handles it.
"""

from __future__ import annotations

from typing import Any

from moto.s3.exceptions import MissingBucket
from moto.s3.responses import S3Response

OWNER_HEADER = "x-amz-expected-bucket-owner"
_DENIED = (
    403,
    {"content-type": "application/xml"},
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
)


def _not_the_owner(response: S3Response, request: Any, full_url: str) -> bool:
    expected = {k.lower(): v for k, v in request.headers.items()}.get(OWNER_HEADER)
    if not expected:
        return False
    response.setup_class(request)
    name = response.parse_bucket_name_from_url(request, full_url)
    if not name:
        return False
    try:
        bucket = response.backend.get_bucket(name)
    except MissingBucket:
        return False
    return bucket.account_id != expected


def _with_owner_condition(handler):
    def checked(self: S3Response, request: Any, full_url: str, headers: Any):
        if _not_the_owner(self, request, full_url):
            return _DENIED
        return handler(self, request, full_url, headers)

    return checked


def install() -> None:
    S3Response.bucket_response = _with_owner_condition(S3Response.bucket_response)
    S3Response.key_response = _with_owner_condition(S3Response.key_response)
