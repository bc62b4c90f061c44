"""Task bodies of ``weekly_review_pack``, with Airflow's Variables, connections and
hooks; the review itself is :mod:`include.economics.review`, its files
:mod:`include.economics.review_pack`.

``build_pack`` writes the pack into object storage (:mod:`bp_tasks.storage`, a folder
of this run's try); ``publish_pack`` copies it to
``s3://bp-logs-<account>/reports/weekly/<YYYY-Www>/`` and ``announce`` sends presigned
links. Re-running a week replaces the same keys: a week has one pack.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from airflow.sdk import Variable, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret

from bp_tasks.common import report_outcome, validated
from bp_tasks.economics_settings import WAREHOUSE_CONN, Settings
from bp_tasks.storage import try_folder
from include.economics import calendar
from include.economics.calendar import IsoWeek
from include.naming import platform
from include.tables import format_table

log = logging.getLogger("bp.weekly_review")

#: SigV4 presigned URLs live at most 7 days: the pack is read in the week it is sent.
LINK_EXPIRY_SECONDS = 7 * 24 * 3600
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".pdf": "application/pdf",
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
}


def rules(settings: Settings):
    """Variable ``weekly_review_rules`` (JSON, any subset of the rules), with the margin
    floor of the daily alerts (Variable ``margin_floor_pct``) unless it sets its own."""
    from include.economics.review_model import Rules

    overrides = json.loads(Variable.get("weekly_review_rules", default="{}"))
    floor = {"margin_floor_pct": float(settings.margin_floor_pct)}
    try:
        return Rules.from_mapping({**floor, **overrides})
    except (TypeError, ValueError) as error:
        raise AirflowFailException(f"Variable weekly_review_rules is invalid: {error}. No pack was built.") from None


@task(retries=0)
def resolve_week(params: dict | None = None, logical_date=None, dag_run=None, dag=None) -> str:
    """Validate the request before the warehouse or AWS is touched."""
    week = validated(
        lambda p: calendar.week_to_review(p["week"], logical_date or getattr(dag_run, "run_after", None)),
        params,
        "No pack was built.",
        dag_run=dag_run,
        dag=dag,
    )
    log.info("Reviewing %s (%s to %s) against %s", week, week.first_day, week.last_day, week.previous())
    return str(week)


@task(multiple_outputs=False)
def check_coverage(week: str, params: dict | None = None) -> dict[str, Any]:
    """Which days of the week (and of the week before) the warehouse has; fail when strict."""
    from bp_data.engines import engine_for
    from include.economics.week_reads import coverage as week_coverage

    engine = engine_for(WAREHOUSE_CONN)
    the_week = IsoWeek.parse(week)
    coverages = [week_coverage(engine, w) for w in (the_week, the_week.previous())]
    log.info(
        "Days in the warehouse (%s):\n%s",
        WAREHOUSE_CONN,
        format_table(
            ("WEEK", "DAYS", "MISSING"),
            ((str(c.week), len(c.published), ", ".join(map(str, c.missing)) or "-") for c in coverages),
        ),
    )
    coverage = coverages[0]
    if not coverage.complete and params["require_all_days"]:
        days = [d.isoformat() for d in coverage.missing]
        raise AirflowFailException(
            f"{coverage.sentence()} require_all_days is on, so no pack was built and nothing was uploaded. "
            f"Re-run ai_economics_daily for {', '.join(days)} (e.g. trigger it with conf "
            f'{{"day": "{days[0]}"}}), then clear this run.'
        )
    if not coverage.complete:
        log.warning("%s The pack says so in its headline.", coverage.sentence())
    return {"week": week, "missing": [d.isoformat() for d in coverage.missing]}


@task(multiple_outputs=False)
def read_fleet_metrics(coverage: dict, params: dict | None = None) -> dict[str, dict[str, Any]]:
    """``<stage>/<fleet>`` -> the week's CloudWatch figures, for each fleet in Variable economics_fleets."""
    from bp_aws.hooks.costs import FleetMetricsHook
    from include.economics.review import FLEET_METRICS, fleet_week_figures

    week = IsoWeek.parse(coverage["week"])
    hook = FleetMetricsHook(aws_conn_id=params["aws_conn_id"])
    figures = {}
    for fleet in Settings.load().fleets:
        daily = hook.daily_statistics(week.first_day, week.last_day, fleet["stage"], fleet["slug"], FLEET_METRICS)
        figures[f"{fleet['stage']}/{fleet['slug']}"] = fleet_week_figures(daily)
    log.info(
        "CloudWatch ComfyUI/Workers over %s:\n%s",
        week,
        format_table(
            ("FLEET", *next(iter(figures.values()), {}).keys()), ((k, *v.values()) for k, v in figures.items())
        ),
    )
    return figures


@task(multiple_outputs=False)
def build_pack(coverage: dict, metrics: dict, ti=None) -> dict[str, Any]:
    """Read the warehouse, build the review, write the pack into this try's storage folder."""
    import tempfile
    from pathlib import Path

    from bp_data.engines import engine_for
    from include.economics import review_pack
    from include.economics.review import build_review
    from include.economics.week_reads import load_week

    week = IsoWeek.parse(coverage["week"])
    settings = Settings.load()
    engine = engine_for(WAREHOUSE_CONN)
    review = build_review(load_week(engine, week), load_week(engine, week.previous()), metrics, rules(settings))
    generated_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    folder = try_folder("weekly_review_pack", str(week), ti.run_id, ti.try_number)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:  # WeasyPrint and matplotlib write local files
        pack = review_pack.write_pack(review, Path(scratch), generated_at)
        for path in pack.files():
            (folder / path.name).write_bytes(path.read_bytes())
        summary = pack.markdown.read_text(encoding="utf-8")
        names = [path.name for path in pack.files()]
    log.info(
        "Headline of %s:\n%s",
        week,
        format_table(
            ("METRIC", week, "CHANGE"),
            ((m.label, review_pack.shown(m, m.value), review_pack.change(m)) for m in review.headline),
        ),
    )
    report_outcome(f"{len(review.actions)} action(s); the pack of {week} written to {folder}/ ({', '.join(names)})")
    return {
        "week": str(week),
        "location": str(folder),
        "files": names,
        "summary": summary,
        "actions": len(review.actions),
        "days_missing": [d.isoformat() for d in review.coverage.missing],
    }


@task(multiple_outputs=False)
def publish_pack(built: dict, params: dict | None = None) -> dict[str, str]:
    """Upload the pack's files, replacing the week's earlier pack; file name -> s3:// URI.
    Only into the logs bucket this account owns (a finance pack never lands in a bucket
    someone else created under the predictable name)."""
    from airflow.sdk import ObjectStoragePath

    from bp_aws.hooks.s3 import OwnBucketsS3Hook

    s3 = OwnBucketsS3Hook(aws_conn_id=params["aws_conn_id"])
    bucket = platform.logs_bucket(s3.account_id)
    folder = ObjectStoragePath(built["location"])
    uploaded = {}
    for name in built["files"]:
        key = platform.weekly_report_key(built["week"], name)
        content_type = CONTENT_TYPES.get(PurePath(name).suffix, "application/octet-stream")
        s3.put_object(bucket, key, (folder / name).read_bytes(), content_type)
        uploaded[name] = f"s3://{bucket}/{key}"
    report_outcome(*(f"Uploaded {name} to {uri}" for name, uri in uploaded.items()))
    return uploaded


@task
def announce(built: dict, uploaded: dict, params: dict | None = None, dag_run=None) -> list[str]:
    """Announce the pack: its Markdown summary and presigned links to the HTML and the PDF.

    A presigned link lets anyone who holds it read the pack for 7 days: it goes to the
    report topic's subscribers only, is masked in this task's log and is never an XCom.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    from bp_aws.notifiers.ops_alert import run_link, send_notice

    aws_conn_id = params["aws_conn_id"]
    link_to_run = run_link({"dag_run": dag_run})
    # Signature Version 4 (version 2 is deprecated); its links live 7 days at most
    s3 = S3Hook(aws_conn_id=aws_conn_id, config=Config(signature_version="s3v4"))
    links = []
    for name, uri in uploaded.items():
        if not name.endswith((".html", ".pdf")):
            continue
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        link = s3.generate_presigned_url(
            "get_object", params={"Bucket": bucket, "Key": key}, expires_in=LINK_EXPIRY_SECONDS
        )
        mask_secret(link)
        links.append(f"{name}: {link}")
    message = "\n".join(
        [
            built["summary"],
            "Open the pack (links valid 7 days):",
            *links,
            *([f"Run: {link_to_run}"] if link_to_run else []),
        ]
    )
    missing = f" ({len(built['days_missing'])} day(s) missing)" if built["days_missing"] else ""
    return send_notice(f"Weekly review {built['week']} is ready{missing}", message, aws_conn_id=aws_conn_id)
