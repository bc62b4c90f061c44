"""Pictures of the three provisioned dashboards (``docs/dashboards/<name>.png``) for a
reader with no Grafana at hand: ``python -m devstack.dashboard_pictures`` (``make
dashboard-pictures``).

No Grafana or InfluxDB runs on the development machine, so this is not a screenshot. Each
panel's query, as provisioned (``infra/grafana/provisioning/dashboards``), is run by a small
reader of the Flux this project writes (:func:`run`) over the points the platform would
have written: ``ai_economics_daily``'s own points (:func:`include.economics.exports.influx_points`),
``aws_spend_daily``'s over the demo's AWS bill (:mod:`devstack.aws_bill`)
for each day of the synthetic month the demo seeds, and the demo fleet's hourly
``ComfyUI/Workers`` metrics of the last day as Telegraf names them. Panels fed by
Airflow's StatsD say "no data here", as Grafana would. Each panel is drawn in the
dashboard's own grid, with its title and unit.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from matplotlib.figure import Figure

from devstack import aws_bill, economics_demo, synthetic
from devstack.stack import REPO_ROOT
from include.economics import aws_spend, exports
from include.economics.prices import PriceBook
from include.observability import build, catalogue
from include.tables import format_table

PICTURES = REPO_ROOT / "docs" / "dashboards"
#: one Grafana grid unit (24 across, a panel 8 high) in inches
UNIT = 0.62
#: grid units above the first row, for the picture's title
HEADER = 2
Point = dict[str, Any]

_MEASUREMENT = re.compile(r'r\._measurement == "([^"]+)"')
_FIELDS = re.compile(r'r\._field == "([^"]+)"')
_EXACT = re.compile(r'r\.(\w+) == "([^"]+)"')
_WINDOW = re.compile(r"aggregateWindow\(every: (\w+|v\.windowPeriod), fn: (\w+)")
_RATIO = re.compile(r"float\(v: r\.(\w+)\) / float\(v: r\.(\w+)\)")


def economics_points(last_day: date, days: int = 29) -> list[Point]:
    """What ``ai_economics_daily`` writes for the last ``days`` days of the synthetic month."""
    window = synthetic.Window(last_day)
    with tempfile.TemporaryDirectory() as folder:
        book = PriceBook.from_csv(synthetic.write_catalogue(Path(folder) / "prices.csv", window))
        ledger, store = sa.create_engine(f"sqlite:///{folder}/ledger.db"), sa.create_engine("sqlite://")
        synthetic.generate(ledger, window, book)
        results = economics_demo.seed_history(ledger, store, book, window.dates()[-days:])
    return [
        _plain(point.to_line_protocol())
        for day, result in results.items()
        for point in exports.influx_points(day, result.tables, result.revenue.payments())
    ]


def spend_points(last_day: date, days: int = 29) -> list[Point]:
    """What ``aws_spend_daily`` writes for the last ``days`` days of the demo's AWS bill."""
    lines = aws_bill.spend_lines(last_day)
    first = last_day - timedelta(days=days - 1)
    return [
        _plain(point.to_line_protocol())
        for offset in range(days)
        for point in aws_spend.influx_points(first + timedelta(days=offset), lines)
    ]


def fleet_points(day: date) -> list[Point]:
    """The demo fleet's hourly metrics of ``day``, as Telegraf's CloudWatch input writes them."""
    fleet = economics_demo.FLEET
    tags = {"stage": fleet["stage"], "fleet_slug": fleet["slug"]}
    return [
        {
            "_measurement": catalogue.FLEET_MEASUREMENT,
            "_field": catalogue.cloudwatch_field(metric, statistic),
            "_value": float(value),
            "_time": datetime.combine(day, time(hour, 30), tzinfo=UTC),
            **tags,
        }
        for hour, metrics in enumerate(economics_demo.fleet_hours(day))
        for metric, value in metrics.items()
        for statistic in catalogue.CLOUDWATCH_STATISTICS
    ]


def _plain(line: str) -> Point:
    """One line of line protocol (no spaces or commas inside values: our tags are checked)."""
    head, fields, stamp = line.rsplit(" ", 2)
    measurement, *tags = head.split(",")
    point = dict(tag.split("=", 1) for tag in tags)
    values = {}
    for field in fields.split(","):
        name, value = field.split("=", 1)
        values[name] = value.strip('"') if value.startswith('"') else float(value.rstrip("i"))
    point |= {"_measurement": measurement, "_time": datetime.fromtimestamp(int(stamp), UTC), "_values": values}
    return point


def _rows(points: list[Point]) -> list[Point]:
    """Line-protocol points as Flux rows: one per field."""
    rows = []
    for point in points:
        if "_values" not in point:
            rows.append(point)
            continue
        base = {k: v for k, v in point.items() if k != "_values"}
        rows += [base | {"_field": name, "_value": value} for name, value in point["_values"].items()]
    return rows


def run(query: str, points: list[Point]) -> dict[str, list[tuple[datetime, Any]]]:
    """The series a query of this project's shapes (:class:`include.observability.flux.Flux`)
    returns: name -> [(time, value)]. Variables select every value (Grafana's "All")."""
    rows = _rows(points)
    measurement = _MEASUREMENT.search(query)
    fields = _FIELDS.findall(query)
    rows = [r for r in rows if measurement and r["_measurement"] == measurement.group(1) and r["_field"] in fields]
    for tag, value in _EXACT.findall(query):
        if not tag.startswith("_"):
            rows = [r for r in rows if r.get(tag) == value]
    tags = sorted({k for r in rows for k in r if not k.startswith("_")})
    series: dict[str, list[tuple[datetime, Any]]] = defaultdict(list)
    ratio = _RATIO.search(query)
    if ratio:  # pivot on _field, then numerator / denominator per time and tags
        pivoted: dict[tuple, dict[str, float]] = defaultdict(dict)
        for r in rows:
            pivoted[(tuple(r.get(t, "") for t in tags), r["_time"])][r["_field"]] = r["_value"]
        for (key, when), values in sorted(pivoted.items(), key=lambda item: item[0][1]):
            top, bottom = values.get(ratio.group(1), 0.0), values.get(ratio.group(2), 0.0)
            series[" ".join(key)].append((when, top / bottom if bottom else 0.0))
        return dict(series)
    for r in sorted(rows, key=lambda r: r["_time"]):
        name = " ".join([*(str(r.get(t, "")) for t in tags), r["_field"] if len(fields) > 1 else ""]).strip()
        series[name or r["_field"]].append((r["_time"], r["_value"]))
    window = _WINDOW.search(query)
    if window and window.group(1) == "1d":  # one point per day: sum or last of the day's points
        for name, values in series.items():
            days: dict[date, list] = defaultdict(list)
            for when, value in values:
                days[when.date()].append(value)
            pick = sum if window.group(2) == "sum" else (lambda found: found[-1])
            series[name] = [(datetime.combine(d, time.min, tzinfo=UTC), pick(v)) for d, v in sorted(days.items())]
    if "|> last()" in query:
        series = {name: values[-1:] for name, values in series.items()}
    return dict(series)


#: why a panel of a measurement shows nothing in the picture
NO_DATA = {
    catalogue.FLEET_MEASUREMENT: "No data in the demo fleet's history (its nodes' agents publish it live)",
    "airflow": "No data here (Airflow's StatsD, through Telegraf: none runs on this machine)",
}


def _draw(axes, panel: dict, query: str, found: dict[str, list], unit: str) -> None:
    axes.set_title(panel["title"], fontsize=9, loc="left")
    if not any(found.values()):
        why = NO_DATA[catalogue.FLEET_MEASUREMENT if catalogue.FLEET_MEASUREMENT in query else "airflow"]
        axes.text(0.5, 0.5, why, ha="center", va="center", fontsize=8, color="#64748b")
        axes.set_axis_off()
        return
    if panel["type"] == "stat":
        value = next(iter(found.values()))[-1][1]
        text = f"${value:,.2f}" if unit == "currencyUSD" else f"{value:,.2f}%" if unit == "percent" else f"{value:,.0f}"
        axes.text(0.5, 0.45, text, ha="center", va="center", fontsize=22, weight="bold", color="#10b981")
        axes.set_axis_off()
        return
    if panel["type"] == "table":
        rows = sorted(((str(w.date()), name, f"{v:,.2f}") for name, values in found.items() for w, v in values))[-6:]
        axes.text(0, 1, format_table(("day", "series", "value"), rows), family="monospace", fontsize=6, va="top")
        axes.set_axis_off()
        return
    for name, values in sorted(found.items()):
        axes.plot([w for w, _ in values], [v for _, v in values], label=name or None, linewidth=1.2)
    axes.tick_params(labelsize=6)
    axes.set_ylabel(unit, fontsize=7)
    axes.grid(alpha=0.3)
    if len(found) > 1:
        axes.legend(fontsize=5, ncols=2, loc="upper left", frameon=False)


def picture(board: dict, points: list[Point], path: Path) -> None:
    """The dashboard in its grid, each panel drawn from its provisioned query."""
    panels = board["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + HEADER

    def top(y: float) -> float:  # a grid row's top edge, as a fraction of the figure
        return 1 - (y + HEADER) / height

    figure = Figure(figsize=(24 * UNIT, height * UNIT / 2.4), dpi=90)
    title = f"{board['title']}: as provisioned, over the synthetic month (opens on {board['time']['from']} to now)"
    figure.text(0.01, 1 - 0.9 / height, title, fontsize=12)
    for panel in panels:
        grid = panel["gridPos"]
        if panel["type"] == "row":
            figure.text(0.01, top(grid["y"] + 0.9), panel["title"], fontsize=10, weight="bold")
            continue
        bottom = top(grid["y"] + grid["h"]) + 0.6 / height
        box = [grid["x"] / 24 + 0.035, bottom, grid["w"] / 24 - 0.05, (grid["h"] - 1.7) / height]
        axes = figure.add_axes(box)
        query = (panel.get("targets") or [{}])[0].get("query", "")
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit", "")
        _draw(axes, panel, query, run(query, points), unit)
    figure.savefig(path)


def main() -> int:
    last_day = date(2026, 11, 30)  # fixed: the pictures change only when the dashboards do
    points = [*economics_points(last_day), *spend_points(last_day), *fleet_points(last_day)]
    boards, _ = build.provisioned()
    PICTURES.mkdir(parents=True, exist_ok=True)
    for name, board in boards.items():
        path = PICTURES / f"{name}.png"
        picture(board, points, path)
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
