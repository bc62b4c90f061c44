"""The LLM providers' usage and cost APIs, through Airflow http connections whose password
is the organization's admin key: ``openai_admin`` (host ``https://api.openai.com``) and
``anthropic_admin`` (host ``https://api.anthropic.com``). Each returns the day's pages as
the provider documents them (:mod:`include.economics.bills` reads them), following
``next_page`` until the last; None when its connection is not configured."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException

OPENAI_CONN = "openai_admin"
ANTHROPIC_CONN = "anthropic_admin"


def _pages(conn_id: str, endpoint: str, params: Mapping[str, Any], headers: Mapping[str, str]) -> list[dict] | None:
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id=conn_id)
    try:
        key = hook.get_connection(conn_id).password
    except AirflowNotFoundException:
        return None
    pages, page = [], None
    while True:
        query = {**params, **({"page": page} if page else {})}
        response = hook.run(endpoint, data=query, headers={k: v.format(key=key) for k, v in headers.items()})
        pages.append(response.json())
        page = pages[-1].get("next_page") if pages[-1].get("has_more") else None
        if not page:
            return pages


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def openai_day(day: date) -> tuple[list[dict], list[dict]] | None:
    """Usage (by model and project) and costs (by line item and project) of ``day``."""
    start, end = (int(moment.timestamp()) for moment in _bounds(day))
    headers = {"Authorization": "Bearer {key}"}
    window = {"start_time": start, "end_time": end, "bucket_width": "1d"}
    usage = _pages(
        OPENAI_CONN, "/v1/organization/usage/completions", {**window, "group_by": ["model", "project_id"]}, headers
    )
    if usage is None:
        return None
    costs = _pages(OPENAI_CONN, "/v1/organization/costs", {**window, "group_by": ["line_item", "project_id"]}, headers)
    return usage, costs or []


def anthropic_day(day: date) -> tuple[list[dict], list[dict]] | None:
    """Messages usage (by model and workspace) and the cost report (by description) of ``day``."""
    start, end = (moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in _bounds(day))
    headers = {"x-api-key": "{key}", "anthropic-version": "2023-06-01"}
    window = {"starting_at": start, "ending_at": end, "bucket_width": "1d"}
    usage = _pages(ANTHROPIC_CONN, "/v1/organizations/usage_report/messages",
                   {**window, "group_by[]": ["model", "workspace_id"]}, headers)  # fmt: skip
    if usage is None:
        return None
    costs = _pages(
        ANTHROPIC_CONN,
        "/v1/organizations/cost_report",
        {**window, "group_by[]": ["workspace_id", "description"]},
        headers,
    )
    return usage, costs or []
