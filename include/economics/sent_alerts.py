"""Which economics alerts a day has already sent: re-running a day (a backfill, a
cleared task) republishes its numbers but does not page anyone again for the same
finding. An alert is the same when its day, title (signal and dimension), metric and
value are; a changed value is news and is sent.

The log is a table of the warehouse, beside the day's tables but not one of them: a
re-run replaces the day's numbers, never what was already sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.alerts import Alert

metadata = sa.MetaData()
ai_alerts_sent = sa.Table(
    "ai_alerts_sent",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("sent_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("day", "fingerprint", name="uq_ai_alerts_sent_day_fingerprint"),
)


def fingerprint(day: date, alert: Alert) -> str:
    identity = [day.isoformat(), alert.title, alert.metric, str(alert.value), sorted(alert.dimensions.items())]
    return hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()


def already_sent(engine: Engine, day: date, alerts: Iterable[Alert]) -> dict[str, datetime]:
    """fingerprint -> when it was sent, for those of ``alerts`` the day already sent."""
    metadata.create_all(engine, checkfirst=True)
    wanted = [fingerprint(day, alert) for alert in alerts]
    table = ai_alerts_sent
    query = sa.select(table.c.fingerprint, table.c.sent_at).where(table.c.day == day, table.c.fingerprint.in_(wanted))
    with engine.connect() as connection:
        return dict(connection.execute(query).all())


def record(engine: Engine, day: date, alert: Alert) -> None:
    """Note that ``alert`` was sent for ``day``."""
    row = {
        "day": day,
        "fingerprint": fingerprint(day, alert),
        "severity": alert.severity,
        "title": alert.title[:300],
        "sent_at": datetime.now(UTC).replace(tzinfo=None),
    }
    with engine.begin() as connection:
        connection.execute(ai_alerts_sent.insert(), [row])
