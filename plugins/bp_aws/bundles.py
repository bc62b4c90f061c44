"""Checking a bundle where it lives: the manifest and its assets in the models bucket."""

from __future__ import annotations

from gpu_worker import manifest
from include import ami_build


def check_bundle_in_bucket(aws_conn_id: str | None, bucket: str, prefix: str) -> manifest.Manifest:
    """:func:`include.ami_build.check_bundle` over S3: the manifest read, every asset HEADed.
    Raises :class:`include.ami_build.MissingInputs` listing every problem."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook(aws_conn_id=aws_conn_id)
    return ami_build.check_bundle(
        lambda key: s3.get_key(key, bucket).get()["Body"].read(),
        lambda key: (s3.head_object(key, bucket) or {}).get("ContentLength"),
        bucket,
        prefix,
    )
