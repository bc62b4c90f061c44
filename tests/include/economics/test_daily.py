"""The whole day on each database: compute, publish, re-run, re-price, export."""

import io
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow.parquet as pq

from include.economics import daily, exports, infra_cost, warehouse
from include.economics.prices import DEFAULT_CATALOGUE, PriceBook
from tests.include.economics.fixture_day import BOOK, DAY

TABLES = list(warehouse.TABLES)
FLEETS = [
    infra_cost.FleetDay("staging", "gpu-default", 30.0, Decimal("6.768"), "estimate"),
    infra_cost.FleetDay("production", "gpu-video", 10.0, Decimal("3.232"), "estimate"),
]


def _published(engine):
    return {name: warehouse.read_days(engine, name, DAY, DAY).to_dict("records") for name in TABLES}


def test_a_day_publishes_and_a_rerun_gives_identical_tables(ledger_db):
    result = daily.compute_day(ledger_db, ledger_db, BOOK, DAY, fleets=FLEETS)
    assert result.gate.passed

    written = warehouse.publish(ledger_db, DAY, result.tables)
    first = _published(ledger_db)
    again = daily.compute_day(ledger_db, ledger_db, BOOK, DAY, fleets=FLEETS)
    warehouse.publish(ledger_db, DAY, again.tables)

    assert _published(ledger_db) == first
    assert written["ai_cost_daily"] == 4
    assert written["ai_margin_daily"] == 4  # free, none, pro, all
    [everything] = [r for r in first["ai_margin_daily"] if r["plan"] == "all"]
    assert (everything["ai_cost_usd"], everything["margin_usd"]) == (Decimal("1.585560"), Decimal("53.414440"))
    assert result.summary()["requests"] == 6
    assert [(r["fleet"], r["gpu_hours"], r["cost_usd"]) for r in first["ai_fleet_daily"]] == [
        ("gpu-default", 30.0, Decimal("6.768000")),
        ("gpu-video", 10.0, Decimal("3.232000")),
    ]
    assert everything["infra_cost_usd"] == Decimal("10.000000")  # the fleets' sum
    # the release mix: r1-r6 by (feature, model, release), from the same scan as the keys
    assert [
        (r["feature_name"], r["model_name"], r["release"], r["requests"], r["failures"], r["total_tokens"])
        for r in first["ai_release_daily"]
    ] == [
        ("chat", "gpt-4.1-mini", "2026.11.2", 3, 1, 5100),
        ("search", "text-embedding-3-small", "2026.11.2", 1, 0, 3000),
        ("video-effects", "claude-sonnet-4", "2026.11.2", 2, 0, 353_000),
    ]
    assert [(r["plan"], r["conversions"]) for r in first["ai_conversion_daily"]] == [("pro", 1), ("all", 1)]
    quality = first["ai_quality_daily"]
    assert len(quality) == len(result.gate.checks) > 10
    assert all(row["passed"] for row in quality if row["severity"] == "critical")


def test_a_price_change_recomputes_the_day(ledger_db, tmp_path):
    warehouse.publish(ledger_db, DAY, daily.compute_day(ledger_db, ledger_db, BOOK, DAY).tables)
    cheaper = tmp_path / "prices.csv"
    cheaper.write_text(
        DEFAULT_CATALOGUE.read_text().replace(
            "claude-sonnet-4,2026-01-01,USD,0.003,0.0003,0.015,200000,0.006,0.0006,0.0225",
            "claude-sonnet-4,2026-01-01,USD,0.0015,0.00015,0.0075,200000,0.003,0.0003,0.01125",
        )
    )

    warehouse.publish(ledger_db, DAY, daily.compute_day(ledger_db, ledger_db, PriceBook.from_csv(cheaper), DAY).tables)

    models = {r["model_name"]: r["cost_usd"] for r in _published(ledger_db)["ai_model_daily"]}
    assert models["claude-sonnet-4"] == Decimal("0.791250")  # half of 1.5825
    assert models["gpt-4.1-mini"] == Decimal("0.003000")  # untouched: 0.002832 + 0.000168


def test_a_failed_gate_computes_no_anomalies(ledger_db):
    from include.economics import ledger
    from tests.include.economics.fixture_day import request

    with ledger_db.begin() as connection:
        connection.execute(
            ledger.ai_usage_logs.insert(), [request("r1", 9, "x", "gpt-4.1", 1, 0, 1, datetime(2026, 11, 5, 3))]
        )

    result = daily.compute_day(ledger_db, ledger_db, BOOK, DAY)

    assert not result.gate.passed
    assert result.anomalies == []


def test_exports_are_stamped_at_the_day_and_keep_exact_money(ledger_db):
    result = daily.compute_day(ledger_db, ledger_db, BOOK, DAY)

    lines = exports.line_protocol(
        exports.influx_points(DAY, result.tables, {"pro": {"failed_payments": 2, "renewals": 5, "failed_renewals": 1}})
    ).splitlines()
    stamp = str(int(datetime(2026, 11, 5, tzinfo=UTC).timestamp()))
    assert all(line.endswith(" " + stamp) for line in lines)
    assert {line.split(",")[0].split(" ")[0] for line in lines} == {
        "ai_usage",
        "ai_feature",
        "ai_model",
        "ai_plan",
        "ai_margin",
        "ai_conversion",
        "ai_quality",
        "ai_payment",
    }
    assert "ai_payment,plan=pro failed_payments=2i,failed_renewals=1i,renewals=5i " + stamp in lines
    assert any(line.startswith("ai_feature,feature_name=video-effects ") and "requests=2i" in line for line in lines)

    table = pq.read_table(io.BytesIO(exports.parquet_bytes("ai_cost_daily", result.tables["ai_cost_daily"])))
    assert str(table.schema.field("cost_usd").type) == "decimal128(18, 6)"
    assert sum(table.column("cost_usd").to_pylist()) == Decimal("1.585560")
    assert (
        exports.parquet_key("economics/", "ai_cost_daily", DAY)
        == "economics/ai_cost_daily/day=2026-11-05/part-0.parquet"
    )


def test_an_anomaly_point_carries_its_release_as_a_tag_only_when_it_has_one():
    from include.economics import anomalies

    found = [
        anomalies.Anomaly(DAY, "tokens", "feature:chat", 9e6, 1e6, 40.0, "critical", release="2026.11.3"),
        anomalies.Anomaly(DAY, "cost", "feature:chat", 90.0, 10.0, 12.0, "critical"),
    ]
    lines = exports.line_protocol(
        exports.influx_points(DAY, {"ai_anomalies": anomalies.anomalies_table(found)})
    ).splitlines()

    assert lines[0].startswith("ai_anomaly,dimension=feature:chat,release=2026.11.3,severity=critical,signal=tokens ")
    assert lines[1].startswith("ai_anomaly,dimension=feature:chat,severity=critical,signal=cost ")
