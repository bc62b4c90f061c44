"""The daily rollup tables, from one streamed pass over the day's ledger.

The database does the heavy part, one ``GROUP BY`` per (user, feature, model, plan)
read in chunks of whole users (:mod:`include.economics.day_groups`); per chunk, with
numpy, :class:`DayRollups`:

* prices each group exactly (Decimal, one vectorized step per model) and takes its
  p50/p95 from its own durations: the ``ai_cost_daily`` rows, handed on chunk by chunk
  (to a Parquet file in the DAG), never all held at once;
* adds the chunk into the coarse levels (feature, model, plan, the whole day): sums,
  DAU (a chunk holds whole users, so distinct users add up across chunks), a duration
  histogram per key, and tokens per (feature, model, plan, minute of day) for the peaks.

Memory is set by the chunk size and the number of distinct keys and durations, not by
the size of the day (``bench/economics_day.py``). Percentiles are ``percentile_cont``
(linear interpolation over the ranked durations, NULL durations left out), exact: the
rank arithmetic is integer arithmetic on the quantiles as fractions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from include.economics.day_groups import CODED, LONG, NO_DURATION, PRICED_TOKENS, DayKeys, requests_of, stream_groups
from include.economics.ledger import SUMS
from include.economics.prices import PriceBook, PriceRow

#: Rollup level -> its grouping columns. ``usage`` is the whole day.
LEVELS: dict[str, list[str]] = {
    "cost": ["user_id", "feature_name", "model_name", "plan"],
    "feature": ["feature_name"],
    "model": ["model_name"],
    "plan": ["plan"],
    "usage": [],
}
TABLES = {
    "cost": "ai_cost_daily",
    "feature": "ai_feature_daily",
    "model": "ai_model_daily",
    "plan": "ai_plan_daily",
    "usage": "ai_usage_daily",
}
#: Quantiles as exact fractions, so the rank arithmetic is integer arithmetic.
QUANTILES = {"p50_ms": Fraction(1, 2), "p95_ms": Fraction(19, 20)}
#: The release mix of the day (read with its keys, :class:`DayKeys`).
RELEASE_TABLE = "ai_release_daily"
MINUTES_PER_DAY = 24 * 60
COST_COLUMNS = ["day", *LEVELS["cost"], *SUMS, "cost_usd", *QUANTILES]


def _percentiles(codes: np.ndarray, values: np.ndarray, counts: np.ndarray, n_codes: int) -> pd.DataFrame:
    """p50_ms and p95_ms per code ``0..n_codes-1`` of ``values`` weighted by ``counts``;
    the entries sorted by (code, value). NaN for a code without values."""
    totals = np.zeros(n_codes, dtype=np.int64)
    np.add.at(totals, codes, counts)
    running = np.cumsum(counts)
    before = np.cumsum(totals) - totals  # entries' weight before each code's first
    bounds = {"ranked": totals}
    for name, q in QUANTILES.items():
        index = q.numerator * (totals - 1) // q.denominator  # floor(q(n-1))
        for suffix, shift in (("low", 0), ("high", 1)):
            rank = index + shift
            exists = (totals > 0) & (rank < totals)
            found = np.full(n_codes, np.nan)
            at = np.searchsorted(running, before[exists] + rank[exists], side="right")
            found[exists] = values[at]
            bounds[f"{name}_{suffix}"] = found
    return _interpolate(pd.DataFrame(bounds))


def _interpolate(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn the low/high bounds into the percentile_cont values, in place of the bounds."""
    ranked = frame.pop("ranked").astype("int64")
    for name, q in QUANTILES.items():
        low = frame.pop(f"{name}_low").astype(float)
        high = frame.pop(f"{name}_high").astype(float).fillna(low)  # no next rank: q(n-1) is whole
        fraction = (q.numerator * (ranked - 1) % q.denominator) / q.denominator
        frame[name] = (low + fraction * (high - low)).round(1)
    return frame


def _price(frame: pd.DataFrame, rows: dict[str, PriceRow]) -> pd.Series:
    """Exact cost per group: the standard rates on its standard-tier token sums plus
    the long-context rates on its long-tier sums (cost is linear in the sums), added in
    integer units of the finer tier's precision: one Decimal per group."""
    cost = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for model, index in frame.groupby("model_name").indices.items():
        row = rows.get(model)
        if row is None:
            continue
        part = frame.iloc[index]
        # Python ints in object arrays: exact, and no int64 overflow on huge sums
        long = [part[LONG + column].to_numpy(dtype=object) for column in PRICED_TOKENS]
        everything = [part[column].to_numpy(dtype=object) for column in PRICED_TOKENS]
        standard = [total - in_long for total, in_long in zip(everything, long, strict=True)]
        tiers = [(row.standard, standard)] + ([(row.long, long)] if row.long is not None else [])
        exponent = max(rates.exponent for rates, _ in tiers)
        units = sum(rates.units(*sums) * 10 ** (exponent - rates.exponent) for rates, sums in tiers)
        cost.iloc[index] = [Decimal(int(value)).scaleb(-exponent) for value in units]
    return cost


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with zero rows added up to ``rows``."""
    extra = rows - len(array)
    return np.concatenate([array, np.zeros((extra, *array.shape[1:]), dtype=array.dtype)]) if extra else array


@dataclass
class _Level:
    """One coarse level's running DAU and duration histogram, by key code."""

    dau: np.ndarray
    #: (code << 32 | duration, requests), sorted
    histogram: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    )


#: A coarse level -> the key it groups by (the day as a whole: none).
LEVEL_KEY = {level: keys[0] if keys else None for level, keys in LEVELS.items() if level != "cost"}


class DayRollups:
    """The day's rollups, built chunk by chunk from :func:`stream_groups`.

    :meth:`add` returns the chunk's ``ai_cost_daily`` rows; :meth:`tables` the coarse
    levels once every chunk is in; :attr:`totals`, :attr:`unpriced_rows` and
    :meth:`reconciliation_rows` are what the gate and the reconciliation read.
    """

    def __init__(self, book: PriceBook, day: date, keys: DayKeys) -> None:
        self.day = day
        self.keys = keys
        self.rates = book.rows_for_day(day)
        self.levels = {level: _Level(np.zeros(self._codes(key), dtype=np.int64)) for level, key in LEVEL_KEY.items()}
        self.unpriced_rows = 0
        self.unpriced_models: set[str] = set()
        self._by_model: dict[str, tuple[Decimal, Decimal]] = {}
        #: combination code (its feature, model and plan codes in one integer) -> row below
        self._combo_row: dict[int, int] = {}
        self._combo_sums = np.zeros((0, len(SUMS)), dtype=np.int64)
        self._combo_cost: list[Decimal] = []
        self._minute_tokens = np.zeros((0, MINUTES_PER_DAY), dtype=np.int64)

    def _codes(self, key: str | None) -> int:
        return len(self.keys.values[key]) + 1 if key else 1

    @property
    def totals(self) -> dict[str, int]:
        """Requests and token sums over every group (the gate checks them against the ledger)."""
        sums = self._combo_sums.sum(axis=0)
        return {column: int(sums[SUMS.index(column)]) for column in ("requests", *SUMS[2:])}

    def add(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """Take one chunk of whole users; return its ``ai_cost_daily`` rows (with the app's
        ``estimated_cost``, which the table does not keep)."""
        chunk = chunk.reset_index(drop=True)
        chunk["cost_usd"] = _price(chunk, self.rates)
        requests = requests_of(chunk)
        group_of = np.repeat(np.arange(len(chunk)), chunk["requests"].to_numpy())
        self._add_models(chunk)
        self._add_combos(chunk, group_of, requests)
        self._add_levels(chunk, group_of, requests)
        durations = requests[:, 0]
        timed = durations != NO_DURATION
        codes, values = group_of[timed], durations[timed]
        order = np.lexsort((values, codes))
        percentiles = _percentiles(codes[order], values[order], np.ones(len(order), dtype=np.int64), len(chunk))
        rows = chunk[[*LEVELS["cost"], *SUMS, "cost_usd", "estimated_cost"]].join(percentiles)
        rows.insert(0, "day", self.day)
        return rows

    def _add_models(self, chunk: pd.DataFrame) -> None:
        unpriced = chunk["cost_usd"].isna().to_numpy()
        self.unpriced_rows += int(unpriced.sum())
        self.unpriced_models |= set(chunk.loc[unpriced, "model_name"].dropna())
        for model, part in chunk[~unpriced].groupby("model_name_code"):
            name = self.keys.names("model_name")[model]
            cost, estimate = self._by_model.get(name, (Decimal(0), Decimal(0)))
            self._by_model[name] = (
                cost + sum(part["cost_usd"], Decimal(0)),
                estimate + sum((Decimal(v) for v in part["estimated_cost"] if v is not None), Decimal(0)),
            )

    def _add_combos(self, chunk: pd.DataFrame, group_of: np.ndarray, requests: np.ndarray) -> None:
        sizes = [self._codes(key) for key in CODED]
        combined = np.zeros(len(chunk), dtype=np.int64)
        for key, size in zip(CODED, sizes, strict=True):
            combined = combined * size + chunk[f"{key}_code"].to_numpy()
        local, uniques = pd.factorize(combined)
        for value in uniques:
            self._combo_row.setdefault(int(value), len(self._combo_row))
        combos = np.array([self._combo_row[int(value)] for value in uniques], dtype=np.int64)[local]
        count = len(self._combo_row)
        self._combo_sums = _grown(self._combo_sums, count)
        np.add.at(self._combo_sums, combos, chunk[SUMS].to_numpy(dtype=np.int64))
        self._combo_cost += [Decimal(0)] * (count - len(self._combo_cost))
        # an unpriced group adds nothing here; the gate fails the day on it
        costs = chunk["cost_usd"].where(chunk["cost_usd"].notna(), Decimal(0))
        for row, cost in costs.groupby(combos).sum().items():
            self._combo_cost[row] += cost
        self._minute_tokens = _grown(self._minute_tokens, count)
        np.add.at(self._minute_tokens, (combos[group_of], requests[:, 1]), requests[:, 2])

    def _add_levels(self, chunk: pd.DataFrame, group_of: np.ndarray, requests: np.ndarray) -> None:
        users, _ = pd.factorize(chunk["user_id"])  # -1: no user, not a daily active one
        active = users >= 0
        timed = requests[:, 0] != NO_DURATION
        for level, state in self.levels.items():
            key = LEVEL_KEY[level]
            n_codes = self._codes(key)
            codes = chunk[f"{key}_code"].to_numpy() if key else np.zeros(len(chunk), dtype=np.int64)
            np.add.at(state.dau, np.unique(users[active] * n_codes + codes[active]) % n_codes, 1)
            entries = (codes[group_of[timed]] << 32) | requests[timed, 0]
            unique, inverse = np.unique(np.concatenate([state.histogram[0], entries]), return_inverse=True)
            counts = np.zeros(len(unique), dtype=np.int64)
            np.add.at(counts, inverse, np.concatenate([state.histogram[1], np.ones(len(entries), dtype=np.int64)]))
            state.histogram = (unique, counts)

    def reconciliation_rows(self) -> pd.DataFrame:
        """Per priced model: the recomputed cost and the app's estimate (what
        :func:`include.economics.margin.reconcile` compares)."""
        return pd.DataFrame(
            [(model, cost, estimate) for model, (cost, estimate) in sorted(self._by_model.items())],
            columns=["model_name", "cost_usd", "estimated_cost"],
        )

    def _combo_codes(self, key: str) -> np.ndarray:
        """Each kept combination's code of ``key``."""
        sizes = [self._codes(k) for k in CODED]
        combined = np.array(list(self._combo_row), dtype=np.int64)
        position = CODED.index(key)
        return combined // int(np.prod(sizes[position + 1 :], dtype=np.int64)) % sizes[position]

    def tables(self) -> dict[str, pd.DataFrame]:
        """The coarse levels, keyed by warehouse table name; empty for a day without requests."""
        if not self._combo_row or self.totals["requests"] == 0:
            return {}
        tables = {}
        for level, state in self.levels.items():
            key = LEVEL_KEY[level]
            n_codes = self._codes(key)
            of_combo = self._combo_codes(key) if key else np.zeros(len(self._combo_row), dtype=np.int64)
            sums = np.zeros((n_codes, len(SUMS)), dtype=np.int64)
            np.add.at(sums, of_combo, self._combo_sums)
            minutes = np.zeros((n_codes, MINUTES_PER_DAY), dtype=np.int64)
            np.add.at(minutes, of_combo, self._minute_tokens)
            cost = [Decimal(0)] * n_codes
            for code, combo_cost in zip(of_combo, self._combo_cost, strict=True):
                cost[code] += combo_cost
            histogram_keys, counts = state.histogram
            table = pd.DataFrame(sums, columns=SUMS)
            if key:
                table.insert(0, key, pd.Series(self.keys.names(key), dtype=object))
            table["cost_usd"] = pd.Series(cost, dtype=object)
            table["dau"] = state.dau
            table = table.join(_percentiles(histogram_keys >> 32, histogram_keys & 0xFFFFFFFF, counts, n_codes))
            table["peak_tokens_per_minute"] = minutes.max(axis=1)
            table = table[table["requests"] > 0].copy()
            table["failure_rate"] = (table["failures"] / table["requests"]).round(6)
            table.insert(0, "day", self.day)
            tables[TABLES[level]] = table.sort_values(["day", *LEVELS[level]], ignore_index=True)
        tables[RELEASE_TABLE] = self.keys.mix.assign(day=self.day)[["day", *self.keys.mix.columns]]
        return tables


def stream_rollups(engine: Engine, book: PriceBook, day: date, cost_rows: Callable[[pd.DataFrame], None]) -> DayRollups:
    """Stream the day through :class:`DayRollups`, each chunk's ``ai_cost_daily`` rows to
    ``cost_rows``; return the finished rollups."""
    keys = DayKeys.read(engine, day)
    rollups = DayRollups(book, day, keys)
    for chunk in stream_groups(engine, book, day, keys):
        cost_rows(rollups.add(chunk))
    return rollups


def in_key_order(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Chunks of ``ai_cost_daily`` rows as one frame, sorted by their keys."""
    groups = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COST_COLUMNS)
    return groups.sort_values(LEVELS["cost"], ignore_index=True)


def compute_rollups(engine: Engine, book: PriceBook, day: date) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The whole day in memory (small days, tests): the ``ai_cost_daily`` rows and every
    rollup table (``ai_cost_daily`` among them)."""
    parts: list[pd.DataFrame] = []
    tables = stream_rollups(engine, book, day, parts.append).tables()
    groups = in_key_order(parts)
    if tables:
        tables[TABLES["cost"]] = groups
    return groups, tables
