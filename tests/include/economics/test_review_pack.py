"""The weekly review pack as its readers get it: the HTML page in a real browser (Debian's
Chromium, headless), the PDF's pages, the Markdown summary.

``make test`` installs Chromium (``make browser``); ``BP_CHROMIUM`` points elsewhere. The
page's screenshot is kept in ``BP_TEST_ARTIFACTS`` (default ``.local/test-artifacts``).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from include.economics import review_pack, warehouse
from include.economics.calendar import IsoWeek
from include.economics.review import build_review
from include.economics.week_reads import load_week
from include.money import usd
from tests.conftest import ARTIFACTS
from tests.include.economics.week_sums import drop_day, week_sums

W47 = IsoWeek(2026, 47)
GENERATED = "2026-11-23 06:00 UTC"


def _pack(engine, folder: Path) -> review_pack.Pack:
    review = build_review(load_week(engine, W47), load_week(engine, W47.previous()))
    return review_pack.write_pack(review, folder, GENERATED)


def _open(browser, html: Path):
    """The page once loaded, with every console error and uncaught exception it raised."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    page.goto(html.as_uri(), wait_until="load")
    return page, errors


def test_the_page_loads_cleanly_with_every_chart_and_the_warehouse_sums(browser, review_warehouse, tmp_path):
    pack = _pack(review_warehouse, tmp_path / "pack")
    sums = week_sums(review_warehouse, W47)

    page, errors = _open(browser, pack.html)

    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => ({src: i.src.slice(0, 22), ok: i.complete && i.naturalWidth > 0}))"
    )
    assert len(images) == 4  # daily, model mix, features, fleets
    assert all(image["ok"] and image["src"] == "data:image/png;base64," for image in images), images
    shown = {
        metric: page.get_attribute(f'tr[data-metric="{metric}"] td[data-value]', "data-value")
        for metric in ("ai_cost_usd", "infra_cost_usd", "revenue_usd", "margin_usd", "requests")
    }
    for money in ("ai_cost_usd", "infra_cost_usd", "revenue_usd", "margin_usd"):
        assert Decimal(shown[money]) == pytest.approx(sums[money], abs=Decimal("0.000001")), money
    assert int(shown["requests"]) == sums["requests"]
    assert page.inner_text('tr[data-metric="requests"] td[data-value]') == f"{sums['requests']:,}"
    assert page.inner_text("#coverage").startswith("All 7 days of 2026-W47 are in the warehouse.")
    actions = page.inner_text("#actions")
    assert "feature:image-gen (and model:gemini-2.5-pro: the same requests)" in actions
    assert "p95 latency +" in actions
    dev_nodes = page.inner_text("#fleets")
    assert "Dev nodes" in dev_nodes
    assert "staging/bob-flux\tbob\tg5.xlarge" in dev_nodes
    spend = page.inner_text("#aws-spend").splitlines()
    week = warehouse.read_days(review_warehouse, "aws_spend_daily", W47.first_day, W47.last_day)
    gpu = week[(week["stage"] == "production") & (week["hotspot"] == "gpu_instances")]["cost_usd"].sum()
    assert spend[1].split("\t")[:3] == ["production", "EC2 GPU instances", usd(gpu)]  # the biggest first
    assert spend[1].endswith("USE1-SpotUsage:g4dn.xlarge")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "weekly-review-2026-W47.png", full_page=True)
    assert errors == []


def test_the_page_needs_nothing_from_the_network(review_warehouse, tmp_path):
    html = _pack(review_warehouse, tmp_path / "pack").html.read_text()

    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html


def test_the_pdf_has_one_page_per_section_in_order(review_warehouse, tmp_path):
    pdf = PdfReader(_pack(review_warehouse, tmp_path / "pack").pdf)

    assert len(pdf.pages) == len(review_pack.SECTIONS) == 6
    for number, (page, section) in enumerate(zip(pdf.pages, review_pack.SECTIONS, strict=True), start=1):
        text = page.extract_text()
        assert section in text, f"page {number} lacks {section!r}"
        assert f"page {number} of 6" in text
    assert "Weekly review 2026-W47" in pdf.pages[0].extract_text()


def test_a_missing_day_is_said_in_the_headline_of_every_format(browser, review_warehouse, tmp_path):
    missing = W47.first_day.replace(day=18)
    drop_day(review_warehouse, missing)
    pack = _pack(review_warehouse, tmp_path / "pack")
    said = "Only 6 of 7 days of 2026-W47 are in the warehouse: Wed 2026-11-18 is missing"

    page, errors = _open(browser, pack.html)

    assert page.inner_text("#coverage").startswith(said)
    assert said in pack.markdown.read_text()
    assert said in " ".join(PdfReader(pack.pdf).pages[0].extract_text().split())
    assert errors == []


def test_the_markdown_summary_has_the_headline_and_the_actions(review_warehouse, tmp_path):
    markdown = _pack(review_warehouse, tmp_path / "pack").markdown.read_text()
    sums = week_sums(review_warehouse, W47)

    assert markdown.startswith("# Weekly review 2026-W47\n")
    assert f"| Requests | {sums['requests']:,} |" in markdown
    assert "## Actions\n1. **high** Plan free earned no revenue" in markdown
    assert "**medium** Investigate feature:image-gen (and model:gemini-2.5-pro: the same requests)" in markdown


def test_the_markdown_summary_is_plain_text_without_html_entities(review_warehouse, tmp_path):
    drop_day(review_warehouse, W47.first_day)
    markdown = _pack(review_warehouse, tmp_path / "pack").markdown.read_text()

    assert "the week's totals leave it out" in markdown
    assert "&#39;" not in markdown
    assert "&amp;" not in markdown


def test_a_latency_anomaly_reads_in_milliseconds_and_a_cost_one_in_dollars(review_warehouse, tmp_path):
    import re

    import pandas as pd

    cost = {"day": W47.last_day, "signal": "cost", "dimension": "feature:chat", "value": Decimal("31"),
            "baseline": Decimal("4"), "severity": "warning", "release": None}  # fmt: skip
    with review_warehouse.begin() as connection:
        connection.execute(
            warehouse.ai_anomalies.insert(), warehouse.records(warehouse.ai_anomalies, pd.DataFrame([cost]))
        )

    html = _pack(review_warehouse, tmp_path / "pack").html.read_text()

    # image-gen's planted regression: its p95 latency is an anomaly every day of the week
    latency = r'<td>latency</td><td>feature:image-gen</td><td>2026-11-16, [^<]*</td><td class="num">[\d,]+ ms</td>'
    assert re.search(latency + r'<td class="num">[\d,]+ ms</td>', html)
    assert '<td>cost</td><td>feature:chat</td><td>2026-11-22</td><td class="num">$31.00</td>' in html
