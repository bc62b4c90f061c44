"""The day's per-user groups, built by the database in one ``GROUP BY`` and streamed.

Per (user, feature, model, plan): the request and token sums, split by price tier, the
app's estimate, and each request's ``duration,minute,tokens`` as one aggregated string
(what the percentiles and the peaks per minute need, without a second pass). The groups
are read from a server-side cursor in chunks that hold every group of their users
(sorted by user), so :class:`include.economics.rollups.DayRollups` can count daily
active users chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.ledger import (
    AGGREGATE_MEMORY_BYTES,
    NO_PLAN,
    SUMS,
    DayWindow,
    ai_usage_logs,
    day_requests_select,
    user_plans,
)
from include.economics.prices import PriceBook

PRICED_TOKENS = ("input_tokens", "cached_input_tokens", "output_tokens")
LONG = "long_"
#: Groups read from the database per chunk (a chunk then grows to whole users).
CHUNK_GROUPS = 20_000
#: Each request's share of the aggregated string: duration, minute of day, total tokens.
REQUEST_FIELDS = 3
#: A request without a duration: counted everywhere, left out of the percentiles.
NO_DURATION = -1
#: The per-user query's columns, in order.
DB_COLUMNS = [
    "user_id",
    "feature_name_code",
    "model_name_code",
    "plan_code",
    *SUMS,
    *(LONG + c for c in PRICED_TOKENS),
    "estimated_cost",
    "requests_text",
]
#: MariaDB's largest GROUP_CONCAT result (its default, 1 MB, would cut a busy user's list).
MARIADB_MAX_CONCAT = 4_294_967_295
#: MariaDB only: the join buffer its hash join to the plans builds in.
JOIN_BUFFER_BYTES = 64 * 1024 * 1024


#: The per-user level's text keys, which the big ``GROUP BY`` groups by code instead.
CODED = ("feature_name", "model_name", "plan")
#: The release mix's keys and sums (``ai_release_daily``).
RELEASE_KEYS = ("feature_name", "model_name", "release")
RELEASE_SUMS = ("requests", "failures", "total_tokens")


def _whole(total: sa.ColumnElement) -> sa.ColumnElement:
    """A sum of integers as BIGINT: it is a DECIMAL on MariaDB and PostgreSQL, and the
    driver would build a Decimal object per value where an integer is all there is."""
    return sa.cast(total, sa.BigInteger)


@dataclass(frozen=True, eq=False)
class DayKeys:
    """The day's features, models and plans, numbered from 1 (0: none), and the day's
    release mix they were read from.

    The big ``GROUP BY`` groups by these small integers rather than by the text: MariaDB
    keeps its GROUP BY table in memory only with short rows, and wide VARCHAR keys send a
    million-row day to an on-disk table (18 s against 6 s on the bench's day).
    """

    values: dict[str, tuple]
    #: requests, failures and tokens per (feature, model, release): the ``ai_release_daily``
    #: rows, from the same scan of the day that finds its features and models
    mix: pd.DataFrame

    @classmethod
    def read(cls, engine: Engine, day: date) -> DayKeys:
        logs, plans = ai_usage_logs.c, user_plans.c
        window = DayWindow(day)
        keys = (logs.feature_name, logs.model_name, logs.release)
        with engine.connect() as connection:
            mix = pd.DataFrame(
                connection.execute(
                    sa.select(
                        *keys,
                        sa.func.count().label("requests"),
                        _whole(sa.func.sum(sa.case((logs.success.is_(True), 0), else_=1))).label("failures"),
                        _whole(sa.func.coalesce(sa.func.sum(logs.total_tokens), 0)).label("total_tokens"),
                    )
                    .where(logs.created_at >= window.start, logs.created_at < window.end)
                    .group_by(*keys)
                ).all(),
                columns=[*RELEASE_KEYS, *RELEASE_SUMS],
            )
            plan_names = connection.execute(sa.select(plans.plan).distinct()).scalars().all()
        mix = mix.astype({column: "int64" for column in RELEASE_SUMS}).astype({k: object for k in RELEASE_KEYS})
        return cls(
            {
                "feature_name": tuple(sorted(set(mix["feature_name"].dropna()))),
                "model_name": tuple(sorted(set(mix["model_name"].dropna()))),
                "plan": tuple(sorted({*plan_names, NO_PLAN} - {None})),
            },
            mix.sort_values(list(RELEASE_KEYS), na_position="first", ignore_index=True),
        )

    def code(self, key: str, column: sa.ColumnElement) -> sa.ColumnElement[int]:
        numbered = {value: number for number, value in enumerate(self.values[key], start=1)}
        return sa.case(numbered, value=column, else_=0) if numbered else sa.literal(0)

    def names(self, key: str) -> np.ndarray:
        """Every name of ``key`` at its code (None at 0)."""
        return np.array([None, *self.values[key]], dtype=object)


def day_groups_select(book: PriceBook, day: date, keys: DayKeys) -> sa.Select:
    """The per-user level as one ``GROUP BY``, sorted by user so chunks hold whole users."""
    requests = day_requests_select(book, day).subquery("day_requests")
    r = requests.c
    codes = [keys.code(key, r[key]).label(f"{key}_code") for key in CODED]
    long_tier = r.tier == "long"

    def text(column: sa.ColumnElement) -> sa.ColumnElement:
        return sa.cast(column, sa.String)

    one_request = (
        text(sa.func.coalesce(r.request_duration_ms, NO_DURATION))
        + ","
        + text(r.minute_of_day)
        + ","
        + text(sa.func.coalesce(r.total_tokens, 0))
    )
    return (
        sa.select(
            r.user_id,
            *codes,
            sa.func.count().label("requests"),
            _whole(sa.func.sum(sa.case((r.success.is_(True), 0), else_=1))).label("failures"),
            *(_whole(sa.func.coalesce(sa.func.sum(r[column]), 0)).label(column) for column in SUMS[2:]),
            *(
                _whole(sa.func.sum(sa.case((long_tier, r[column]), else_=0))).label(LONG + column)
                for column in PRICED_TOKENS
            ),
            sa.func.sum(r.estimated_cost).label("estimated_cost"),
            sa.func.aggregate_strings(one_request, ",").label("requests_text"),
        )
        .group_by(r.user_id, *(sa.literal_column(code.name) for code in codes))
        .order_by(r.user_id, *(sa.literal_column(code.name) for code in codes))
    )


def stream_groups(
    engine: Engine, book: PriceBook, day: date, keys: DayKeys, chunk_groups: int = CHUNK_GROUPS
) -> Iterator[pd.DataFrame]:
    """The day's groups in chunks, each holding every group of the users it has, read
    from a server-side cursor (no more than a chunk and one user's groups in memory)."""
    with engine.connect() as connection:
        if connection.dialect.name == "mysql":
            # in-memory GROUP BY tables for this session (at the 16 MB default they spill to
            # disk), a hash join to the plans (a B-tree lookup per request took 7 s of a
            # million-row day, the hash join 3 s), and room for a busy user's requests
            connection.exec_driver_sql(
                f"SET SESSION max_heap_table_size = {AGGREGATE_MEMORY_BYTES}, "
                f"tmp_table_size = {AGGREGATE_MEMORY_BYTES}, join_cache_level = 4, "
                f"join_buffer_size = {JOIN_BUFFER_BYTES}, group_concat_max_len = {MARIADB_MAX_CONCAT}"
            )
        result = connection.execution_options(stream_results=True, yield_per=chunk_groups).execute(
            day_groups_select(book, day, keys)
        )
        held: list = []
        for part in result.partitions():
            rows = held + part  # SQLAlchemy rows: sequences, zipped into columns as they are
            cut = len(rows)
            while cut and rows[cut - 1][0] == rows[-1][0]:
                cut -= 1  # the last user may go on in the next part: hold their groups back
            held = rows[cut:]
            if cut:
                yield _groups_frame(rows[:cut], keys)
        if held:
            yield _groups_frame(held, keys)


def _groups_frame(rows: list, keys: DayKeys) -> pd.DataFrame:
    """The rows as a frame: codes and sums as int64, names and money as Python objects
    (object columns: pandas' Arrow strings cost a conversion per value on the way out)."""
    columns = dict(zip(DB_COLUMNS, zip(*rows, strict=True), strict=True))
    frame = {"user_id": pd.Series(columns["user_id"], dtype=object)}
    for key in CODED:
        codes = np.array(columns[f"{key}_code"], dtype=np.int64)
        frame[f"{key}_code"] = codes
        frame[key] = pd.Series(keys.names(key)[codes], dtype=object)
    for column in [*SUMS, *(LONG + c for c in PRICED_TOKENS)]:
        frame[column] = np.array(columns[column], dtype=np.int64)
    for column in ("estimated_cost", "requests_text"):
        frame[column] = pd.Series(columns[column], dtype=object)
    return pd.DataFrame(frame)


def requests_of(chunk: pd.DataFrame) -> np.ndarray:
    """Every request of the chunk as (duration, minute, tokens) rows, in group order."""
    values = np.fromstring(",".join(chunk["requests_text"]), dtype=np.int64, sep=",")
    expected = REQUEST_FIELDS * int(chunk["requests"].sum())
    if len(values) != expected:
        raise RuntimeError(
            f"the database returned {len(values)} request values for {expected // REQUEST_FIELDS} requests: "
            "its aggregated string was cut (MariaDB: group_concat_max_len)"
        )
    return values.reshape(-1, REQUEST_FIELDS)
