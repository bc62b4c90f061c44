"""The ledger on each database the project supports: SQLite (the demo's), and the
MariaDB and PostgreSQL servers running on this machine (production's kinds). Each test
gets a database of its own, dropped afterwards.

``BP_TEST_MARIADB_URL`` / ``BP_TEST_POSTGRES_URL`` point elsewhere if needed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date

import pytest
import sqlalchemy as sa

MARIADB = os.environ.get("BP_TEST_MARIADB_URL", "mysql+mysqldb://root@127.0.0.1:3306")
POSTGRES = os.environ.get("BP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def ledger_engine(request, tmp_path):
    name = f"bp_test_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        yield engine
        engine.dispose()
        return
    server = MARIADB if request.param == "mariadb" else POSTGRES
    admin_db = "" if request.param == "mariadb" else "/postgres"
    admin = sa.create_engine(f"{server}{admin_db}", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = sa.create_engine(f"{server}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            # GX keeps an engine of its own open; PostgreSQL drops with FORCE, MariaDB doesn't need it
            force = " WITH (FORCE)" if request.param == "postgresql" else ""
            connection.exec_driver_sql(f"DROP DATABASE {name}{force}")
        admin.dispose()


@pytest.fixture
def ledger_db(ledger_engine):
    """The hand-checked day (tests/include/economics/fixture_day.py) loaded into the ledger."""
    from tests.include.economics import fixture_day

    fixture_day.load_into(ledger_engine)
    return ledger_engine


#: A Monday: the review fixtures' last full ISO week is 2026-W47 (16 to 22 November).
REVIEW_LAST_DAY = date(2026, 11, 23)
REVIEW_FIRST_DAY = date(2026, 11, 2)


@pytest.fixture(scope="session")
def review_warehouse_file(tmp_path_factory):
    """Three weeks (2026-W45 to W47) of the synthetic ledger, published day after day by
    the same function the daily DAG calls, into a SQLite warehouse file."""
    import pandas as pd

    from devstack import aws_bill, economics_demo, synthetic
    from include.economics import aws_spend, warehouse
    from include.economics.prices import PriceBook

    folder = tmp_path_factory.mktemp("review")
    window = synthetic.Window(REVIEW_LAST_DAY)
    book = PriceBook.from_csv(synthetic.write_catalogue(folder / "prices.csv", window))
    ledger_engine = sa.create_engine(f"sqlite:///{folder / 'ledger.db'}")
    synthetic.generate(ledger_engine, window, book)
    warehouse_engine = sa.create_engine(f"sqlite:///{folder / 'warehouse.db'}")
    days = [day for day in window.dates() if REVIEW_FIRST_DAY <= day < REVIEW_LAST_DAY]
    economics_demo.seed_history(ledger_engine, warehouse_engine, book, days)
    spend = aws_bill.spend_lines(days[-1])  # and the demo's AWS bill (aws_spend_daily), day after day
    for day in days[-aws_bill.DAYS :]:
        rows = pd.DataFrame(aws_spend.rows(day, spend), columns=[c.name for c in warehouse.aws_spend_daily.columns])
        warehouse.publish(warehouse_engine, day, {"aws_spend_daily": rows})
    ledger_engine.dispose()
    warehouse_engine.dispose()
    return folder / "warehouse.db"


@pytest.fixture
def review_warehouse(review_warehouse_file, tmp_path):
    """A copy of the three weeks that a test may change."""
    copy = tmp_path / "warehouse.db"
    shutil.copyfile(review_warehouse_file, copy)
    engine = sa.create_engine(f"sqlite:///{copy}")
    yield engine
    engine.dispose()
