"""The day streamed in chunks (issue 23): chunks hold whole users, any chunk size gives
the same tables, the per-user level goes through Parquet and into the warehouse a chunk
at a time, and a cut aggregated string is an error, never a wrong number."""

import io
from datetime import datetime

import pandas as pd
import pyarrow.parquet as pq
import pytest

from include.economics import day_groups, exports, ledger, rollups, warehouse
from tests.include.economics.fixture_day import BOOK, DAY, request


def _tables(engine, chunk_groups):
    keys = day_groups.DayKeys.read(engine, DAY)
    day_rollups = rollups.DayRollups(BOOK, DAY, keys)
    chunks = list(day_groups.stream_groups(engine, BOOK, DAY, keys, chunk_groups=chunk_groups))
    per_user = rollups.in_key_order([day_rollups.add(chunk) for chunk in chunks])
    return chunks, per_user, day_rollups.tables()


def test_any_chunk_size_gives_the_same_tables_and_chunks_hold_whole_users(ledger_db):
    one_chunk, per_user, tables = _tables(ledger_db, 10_000)
    chunks, small_per_user, small_tables = _tables(ledger_db, 1)

    assert len(chunks) > len(one_chunk)
    users = [set(chunk["user_id"]) for chunk in chunks]
    assert all(not (a & b) for n, a in enumerate(users) for b in users[n + 1 :]), users
    pd.testing.assert_frame_equal(small_per_user, per_user)
    assert small_tables.keys() == tables.keys()
    for name, table in tables.items():
        pd.testing.assert_frame_equal(small_tables[name], table, check_like=True)


def test_a_request_without_a_duration_counts_everywhere_but_in_the_percentiles(ledger_db):
    at = datetime(2026, 11, 5, 9, 0)
    rows = [
        request("d1", 42, "search", "gpt-4.1", 10, 0, 5, at, duration=100),
        request("d2", 42, "search", "gpt-4.1", 10, 0, 5, at, duration=300),
        {**request("d3", 42, "search", "gpt-4.1", 10, 0, 5, at), "request_duration_ms": None},
    ]
    with ledger_db.begin() as connection:
        connection.execute(ledger.ai_usage_logs.insert(), rows)

    groups, tables = rollups.compute_rollups(ledger_db, BOOK, DAY)

    [user] = groups[groups["user_id"] == 42].to_dict("records")
    assert (user["requests"], user["p50_ms"], user["p95_ms"]) == (3, 200.0, 290.0)
    [search] = tables["ai_feature_daily"][tables["ai_feature_daily"]["feature_name"] == "search"].to_dict("records")
    assert search["requests"] == 4  # with the fixture day's r6


def test_a_cut_aggregated_string_is_an_error_naming_the_setting():
    chunk = pd.DataFrame({"requests": [2], "requests_text": ["100,5,15"]})  # one request's values of two

    with pytest.raises(RuntimeError, match=r"group_concat_max_len"):
        day_groups.requests_of(chunk)


def test_the_per_user_level_round_trips_through_parquet_chunks_and_publishes_chunk_by_chunk(ledger_db):
    groups, _ = rollups.compute_rollups(ledger_db, BOOK, DAY)
    buffer = io.BytesIO()
    writer = exports.ParquetChunks("ai_cost_daily", buffer)
    for start in range(0, len(groups), 3):
        writer.write(groups.iloc[start : start + 3])
    writer.close()
    buffer.seek(0)

    assert writer.rows == len(groups) == pq.read_metadata(buffer).num_rows
    assert pq.read_metadata(buffer).num_row_groups == -(-len(groups) // 3)
    buffer.seek(0)
    written = warehouse.publish(ledger_db, DAY, {"ai_cost_daily": exports.parquet_chunks(buffer, batch_rows=2)})

    assert written == {"ai_cost_daily": len(groups)}
    published = warehouse.read_days(ledger_db, "ai_cost_daily", DAY, DAY)
    expected = pq.read_table(io.BytesIO(exports.parquet_bytes("ai_cost_daily", groups))).to_pandas()
    key = ["user_id", "feature_name", "model_name", "plan"]
    assert published.sort_values(key)["cost_usd"].tolist() == expected.sort_values(key)["cost_usd"].tolist()
    assert published["requests"].sum() == groups["requests"].sum()
