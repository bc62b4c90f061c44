"""The weekly review as files people open: one self-contained HTML page (styles and
charts inside it, nothing fetched), a PDF of that same page, and a Markdown summary for
chat and e-mail.

Charts are drawn with matplotlib's object API (no pyplot: no global state, no display)
and embedded as PNG data URIs. The PDF is WeasyPrint's rendering of the HTML with its
print styles: A4, one section per page, so a forwarded PDF reads like the page.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure

from include.economics.review_model import Metric, Regression, Review
from include.money import NOTHING, usd

TEMPLATES = Path(__file__).with_name("templates")
#: The PDF's pages, in order: each section of the page starts a new one.
SECTIONS = (
    "Headline",
    "Model mix",
    "Cost per feature and plan",
    "Regressions and anomalies",
    "GPU fleets",
    "Data quality and actions",
)
COLOURS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b", "#ec4899")


@dataclass(frozen=True)
class Pack:
    html: Path
    pdf: Path
    markdown: Path
    data: Path

    def files(self) -> list[Path]:
        return [self.html, self.pdf, self.markdown, self.data]


# --- formatting ---------------------------------------------------------------------


def count(value: float | int | None) -> str:
    if value is None:
        return NOTHING
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.1f}"


def shown(metric: Metric, value: float | Decimal | None) -> str:
    """A headline value in its unit."""
    if value is None:
        return NOTHING
    if metric.unit == "usd":
        return usd(value)
    if metric.unit == "pct":
        return f"{float(value):.2f}%"
    if metric.unit == "ratio":
        return f"{float(value) * 100:.2f}%"
    if metric.unit == "ms":
        return f"{float(value):,.0f} ms"
    return count(value)


def change(metric: Metric) -> str:
    if metric.change is None:
        return "n/a"
    return f"{metric.change:+.{2 if metric.change_unit == 'pp' else 1}f} {metric.change_unit}".replace(" %", "%")


def points(value: float | None) -> str:
    """A shift in percentage points; a shift that rounds to nothing shows no sign."""
    if value is None:
        return "n/a"
    return "0.0 pp" if abs(value) < 0.05 else f"{value:+.1f} pp"


def regression_value(regression: Regression, value: float) -> str:
    if regression.metric == "failure_rate":
        return f"{value * 100:.2f}%"
    if regression.metric == "p95_ms":
        return f"{value:,.0f} ms"
    return usd(value, 5)


def anomaly_value(signal: str, value: Decimal) -> str:
    """An anomaly's peak or baseline in its signal's unit."""
    return {
        "cost": lambda: usd(value),
        "latency": lambda: f"{count(value)} ms",
        "failure_rate": lambda: f"{float(value) * 100:.2f}%",
    }.get(signal, lambda: count(value))()


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        # HTML is escaped; the Markdown summary is plain text for chat and e-mail (no entities)
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        usd=usd,
        count=count,
        shown=shown,
        change=change,
        points=points,
        regression_value=regression_value,
        anomaly_value=anomaly_value,
    )
    return environment


# --- charts -------------------------------------------------------------------------


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(height: float = 2.8) -> tuple[Figure, object]:
    figure = Figure(figsize=(7.2, height))
    axes = figure.subplots()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", alpha=0.3)
    return figure, axes


def _daily_chart(review: Review) -> str:
    figure, axes = _figure()
    daily = review.daily
    # days drawn at positions, labelled: day names as categories would be parsed as dates
    positions = list(range(len(daily)))
    axes.set_xticks(positions, [f"{d:%a}\n{d:%d %b}" for d in daily["day"]])
    ai = [0.0 if pd.isna(v) else float(v) for v in daily["ai_cost_usd"]]  # a missing day draws no bar
    infra = [0.0 if pd.isna(v) else float(v) for v in daily["infra_cost_usd"]]
    revenue = [None if pd.isna(v) else float(v) for v in daily["revenue_usd"]]
    axes.bar(positions, ai, color=COLOURS[0], label="AI cost")
    axes.bar(positions, infra, bottom=ai, color=COLOURS[1], label="GPU infrastructure")
    known = [(position, value) for position, value in zip(positions, revenue, strict=True) if value is not None]
    # the line is what the legend shows; its day points are drawn apart, unlabelled
    axes.plot([p for p, _ in known], [v for _, v in known], color=COLOURS[2], label="Revenue")
    axes.plot([p for p, _ in known], [v for _, v in known], color=COLOURS[2], linestyle="none", marker="o")
    for position, day in zip(positions, daily["day"], strict=True):
        if day in review.coverage.missing:
            axes.annotate("missing", (position, 0), ha="center", va="bottom", color=COLOURS[3], fontsize=8)
    axes.set_ylabel("USD per day")
    axes.legend(frameon=False, fontsize=8, ncols=3, loc="upper left")
    return _png(figure)


def _mix_chart(review: Review) -> str:
    figure, axes = _figure(0.5 + 0.35 * max(len(review.model_mix), 1))
    models = [row.model for row in review.model_mix][::-1]
    now = [row.cost_share for row in review.model_mix][::-1]
    before = [row.previous_cost_share or 0 for row in review.model_mix][::-1]
    positions = range(len(models))
    axes.barh([p + 0.2 for p in positions], now, height=0.4, color=COLOURS[0], label=str(review.week))
    axes.barh([p - 0.2 for p in positions], before, height=0.4, color=COLOURS[5], label="week before")
    axes.set_yticks(list(positions), models)
    axes.set_xlabel("share of AI cost (%)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(frameon=False, fontsize=8)
    return _png(figure)


def _feature_chart(review: Review) -> str:
    figure, axes = _figure(0.5 + 0.35 * max(len(review.features), 1))
    names = [row.name for row in review.features][::-1]
    costs = [float(row.cost_usd) for row in review.features][::-1]
    axes.barh(names, costs, color=COLOURS[0])
    axes.set_xlabel("AI cost over the week (USD)")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def _fleet_chart(review: Review) -> str:
    figure, axes = _figure(2.4)
    frame = review.fleet_days
    days = review.week.days()
    positions = list(range(len(days)))
    axes.set_xticks(positions, [f"{d:%a}" for d in days])
    bottom = [0.0] * len(days)
    for index, ((stage, fleet), rows) in enumerate(frame.groupby(["stage", "fleet"])):
        by_day = {row["day"]: row["gpu_hours"] or 0.0 for row in rows.to_dict("records")}
        hours = [float(by_day.get(day, 0.0)) for day in days]
        axes.bar(positions, hours, bottom=bottom, color=COLOURS[index % len(COLOURS)], label=f"{stage}/{fleet}")
        bottom = [b + h for b, h in zip(bottom, hours, strict=True)]
    axes.set_ylabel("GPU-hours")
    axes.legend(frameon=False, fontsize=8)
    return _png(figure)


def charts(review: Review) -> dict[str, str]:
    """Chart name -> PNG data URI; a chart with nothing to draw is left out."""
    drawn = {"daily": _daily_chart(review)}
    if review.model_mix:
        drawn["model_mix"] = _mix_chart(review)
    if review.features:
        drawn["features"] = _feature_chart(review)
    if not review.fleet_days.empty:
        drawn["fleets"] = _fleet_chart(review)
    return drawn


# --- the pack -----------------------------------------------------------------------


def render_html(review: Review, generated_at: str) -> str:
    return (
        _environment()
        .get_template("weekly_review.html.j2")
        .render(review=review, charts=charts(review), sections=SECTIONS, generated_at=generated_at)
    )


def render_markdown(review: Review, generated_at: str) -> str:
    return (
        _environment().get_template("weekly_review.md.j2").render(review=review, generated_at=generated_at).strip()
        + "\n"
    )


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def review_data(review: Review) -> dict:
    """The review's figures as JSON-ready data (``review.json``: for tools, and for diffing two packs)."""
    return {
        "week": str(review.week),
        "days_missing": [d.isoformat() for d in review.coverage.missing],
        "headline": {
            m.key: {"value": m.value, "previous": m.previous, "change": m.change, "unit": m.change_unit}
            for m in review.headline
        },
        "model_mix": [asdict(row) for row in review.model_mix],
        "features": [asdict(row) for row in review.features],
        "plans": [asdict(row) for row in review.plans],
        "regressions": [asdict(row) for row in review.regressions],
        "anomalies": [asdict(row) for row in review.anomalies],
        "fleets": [asdict(row) for row in review.fleets],
        "quality_findings": [asdict(row) for row in review.quality_findings],
        "bills": [asdict(row) for row in review.bills],
        "aws_spend": [asdict(row) | {"change_pct": row.change_pct} for row in review.aws_spend],
        "actions": [asdict(row) for row in review.actions],
    }


#: Libraries that narrate every step at INFO (WeasyPrint's layout steps, font subsetting):
#: the task log keeps their warnings and errors only.
CHATTY_LIBRARIES = ("weasyprint", "fontTools", "matplotlib")


def write_pack(review: Review, folder: Path, generated_at: str) -> Pack:
    """Write the HTML, its PDF, the Markdown summary and ``review.json`` into ``folder``."""
    from weasyprint import HTML  # imported here: it loads Pango, which only this step needs

    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)

    folder.mkdir(parents=True, exist_ok=True)
    name = f"weekly-review-{review.week}"
    pack = Pack(
        html=folder / f"{name}.html",
        pdf=folder / f"{name}.pdf",
        markdown=folder / f"{name}.md",
        data=folder / "review.json",
    )
    html = render_html(review, generated_at)
    pack.html.write_text(html, encoding="utf-8")
    HTML(string=html, base_url=str(folder)).write_pdf(pack.pdf)
    pack.markdown.write_text(render_markdown(review, generated_at), encoding="utf-8")
    pack.data.write_text(json.dumps(review_data(review), indent=2, default=_plain), encoding="utf-8")
    return pack
