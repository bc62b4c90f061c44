"""A provider without an API drops its bill at ``billing/<provider>/<day>.csv`` in the logs
bucket: the day's file of each provider is read, other days' files are not."""

from __future__ import annotations

from datetime import date

from bp_tasks.ai_billing_import import _csv_bills
from include.economics.bills import CSV_COLUMNS
from include.naming import platform

HEADER = ",".join(CSV_COLUMNS)
DAY = date(2026, 11, 29)


def test_each_providers_file_of_the_day_is_read(aws_http, baseline):
    s3, bucket = aws_http("s3"), platform.logs_bucket(baseline.account_id)
    bill = f"{HEADER}\nmistral-large,acct,1000,0,500,0.002,0,0.003,0,EUR\n"
    s3.put_object(Bucket=bucket, Key=f"billing/mistral/{DAY}.csv", Body=bill)
    s3.put_object(Bucket=bucket, Key="billing/mistral/2026-11-28.csv", Body=bill.replace("1000", "9"))
    s3.put_object(
        Bucket=bucket, Key=f"billing/cohere/{DAY}.csv", Body=f"{HEADER}\ncommand-r,acct,10,0,5,0.1,0,0.2,0,USD\n"
    )
    s3.put_object(Bucket=bucket, Key="billing/deepseek/2026-11-28.csv", Body=bill)

    lines = sorted(_csv_bills(DAY, "aws_default"), key=lambda line: line.provider)

    assert [(line.provider, line.model_name, line.tokens["input"]) for line in lines] == [
        ("cohere", "command-r", 10),
        ("mistral", "mistral-large", 1000),
    ]
