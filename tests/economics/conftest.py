"""The ledger on each database the project supports: SQLite (the demo's), and the
MariaDB and PostgreSQL servers running on this machine (production's kinds). Each test
gets a database of its own, dropped afterwards.

``BP_TEST_MARIADB_URL`` / ``BP_TEST_POSTGRES_URL`` point elsewhere if needed.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

MARIADB = os.environ.get("BP_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
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
    """The hand-checked day (tests/economics/fixture_day.py) loaded into the ledger."""
    from include.economics import ledger
    from tests.economics import fixture_day

    ledger.create_ledger_schema(ledger_engine)
    with ledger_engine.begin() as connection:
        connection.execute(ledger.ai_usage_logs.insert(), fixture_day.REQUESTS)
        connection.execute(ledger.user_plans.insert(), fixture_day.PLANS)
        connection.execute(ledger.revenue_events.insert(), fixture_day.REVENUE)
        connection.execute(ledger.fx_rates.insert(), fixture_day.FX)
    return ledger_engine
