"""SQLAlchemy engines from Airflow connections, for the domain code in ``include/``.

The economics code takes an Engine so it stays testable without Airflow; this is where
an Airflow connection (``ai_ledger``, ``ai_warehouse``) becomes one. Supported:
``sqlite`` (host or schema is the file path), ``mysql`` (MariaDB/MySQL, through
mysqlclient, a C driver: on a big day the pure-Python PyMySQL spent more time decoding
rows than the database spent grouping them) and ``postgres``.
"""

from __future__ import annotations

import sqlalchemy as sa
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

DRIVERS = {"mysql": "mysql+mysqldb", "postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2"}


class UnsupportedConnection(AirflowException):
    """A connection that can't become an engine: its type, or a SQLite one without a file."""


def engine_for(conn_id: str) -> sa.engine.Engine:
    connection = BaseHook.get_connection(conn_id)
    kind = connection.conn_type
    if kind == "sqlite":
        path = connection.host or connection.schema
        if not path:
            raise UnsupportedConnection(f"connection {conn_id!r} (sqlite) names no database file in its host")
        return sa.create_engine(f"sqlite:///{path}")
    if kind not in DRIVERS:
        raise UnsupportedConnection(
            f"connection {conn_id!r} is of type {kind!r}; use sqlite, mysql (MariaDB) or postgres"
        )
    url = sa.engine.URL.create(
        DRIVERS[kind],
        username=connection.login or None,
        password=connection.password or None,
        host=connection.host or None,
        port=connection.port or None,
        database=connection.schema or None,
    )
    return sa.create_engine(url, pool_pre_ping=True)
