"""The warehouse follows its definitions: missing tables are created, a column a table
gained is added to a warehouse created before it, on every engine."""

from datetime import date

import pytest
import sqlalchemy as sa

from include.economics import warehouse


def test_a_warehouse_from_before_the_release_column_gains_it_and_keeps_its_rows(ledger_engine):
    old = sa.MetaData()
    columns = [c.copy() for c in warehouse.ai_anomalies.columns if c.name != "release"]
    sa.Table("ai_anomalies", old, *columns).create(ledger_engine)
    row = {"day": date(2026, 11, 5), "signal": "cost", "dimension": "feature:chat", "value": 9, "baseline": 4}
    with ledger_engine.begin() as connection:
        connection.execute(old.tables["ai_anomalies"].insert(), [row | {"severity": "warning"}])

    assert warehouse.migrate(ledger_engine) == ["ai_anomalies.release"]
    assert warehouse.migrate(ledger_engine) == []  # a second run adds nothing

    with ledger_engine.connect() as connection:
        [kept] = connection.execute(sa.select(warehouse.ai_anomalies)).mappings().all()
    assert (kept["dimension"], kept["release"]) == ("feature:chat", None)
    assert set(warehouse.TABLES) <= set(sa.inspect(ledger_engine).get_table_names())


def test_a_new_not_null_column_is_refused_rather_than_guessed(tmp_path, monkeypatch):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    warehouse.migrate(engine)
    grown = sa.Table(
        "ai_usage_daily_grown",
        sa.MetaData(),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("region", sa.String(20), nullable=False),
    )
    sa.Table("ai_usage_daily_grown", sa.MetaData(), sa.Column("day", sa.Date)).create(engine)
    monkeypatch.setitem(warehouse.TABLES, "ai_usage_daily_grown", grown)
    with pytest.raises(RuntimeError, match=r"ai_usage_daily_grown\.region is NOT NULL"):
        warehouse.migrate(engine)
