r"""The data-quality gate: Great Expectations suites that must pass before anything of
the day is published (seed 000: bad data must stop the publish, not reach dashboards).

* **ledger suite**, on the day's raw ``ai_usage_logs`` rows: required fields not null,
  tokens >= 0, cached <= input, total == input + output, ``created_at`` inside the day,
  ``request_id`` unique, every model priced that day; success/error_type consistency and
  reasoning <= output are warnings. The database counts the offending rows of every
  check, and the day's totals, in one aggregate pass (:func:`day_profile`); GX validates
  that profile, and only a failed check costs another query, for its first
  ``request_id``\ s (on a million-row MariaDB day: 3 s, where GX's own row checks over a
  copy of the day took 38 s);
* **rollup suite**, on the per-user level's totals: its request and token sums equal
  the ledger's own (a plan table with overlapping periods would double-count), and
  every row has a cost;
* **revenue suite**: every currency has an FX rate, every kind is known.

A failed *critical* expectation fails the gate; warnings are reported and publish.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.ledger import DayWindow, ai_usage_logs
from include.economics.margin import REVENUE_SIGN
from include.economics.prices import PriceBook
from include.tables import format_table

EXAMPLES = 5
# GX narrates its own registry at INFO, from its import on (hundreds of lines a run): keep its warnings
logging.getLogger("great_expectations").setLevel(logging.WARNING)
REQUIRED = (
    "request_id",
    "user_id",
    "feature_name",
    "model_name",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "success",
    "created_at",
)
TOKENS = ("input_tokens", "cached_input_tokens", "output_tokens", "total_tokens")
TOTAL_COLUMNS = ("requests", *TOKENS)
#: The rollup suite's count of per-user rows whose model has no price that day.
WITHOUT_COST = "rows without a cost"


@dataclass(frozen=True)
class Check:
    suite: str
    name: str
    severity: str
    passed: bool
    failed_rows: int
    examples: tuple[str, ...] = ()


@dataclass
class GateResult:
    checks: list[Check] = field(default_factory=list)
    validations: dict[str, Any] = field(default_factory=dict)

    @property
    def critical_failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed and c.severity == "critical"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.passed and c.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    def table(self) -> str:
        order = sorted(self.checks, key=lambda c: (c.passed, c.severity != "critical", c.suite, c.name))
        return format_table(
            ("RESULT", "SEVERITY", "SUITE", "EXPECTATION", "FAILED", "EXAMPLES"),
            (
                ("ok" if c.passed else "FAILED", c.severity, c.suite, c.name, c.failed_rows, ", ".join(c.examples))
                for c in order
            ),
        )

    def paragraph(self) -> str:
        """One readable paragraph for the failed run."""
        parts = [
            f"{c.name} ({c.failed_rows} row(s), e.g. {', '.join(c.examples) or 'n/a'})" for c in self.critical_failures
        ]
        return f"The data-quality gate failed {len(parts)} critical expectation(s): " + "; ".join(parts) + "."

    def table_rows(self, day: date) -> pd.DataFrame:
        """The ``ai_quality_daily`` rows: one per expectation, with its verdict."""
        return pd.DataFrame(
            [
                {
                    "day": day,
                    "suite": c.suite,
                    "expectation": c.name[:200],
                    "severity": c.severity,
                    "passed": c.passed,
                    "failed_rows": c.failed_rows,
                    "examples": ", ".join(c.examples)[:500] or None,
                }
                for c in self.checks
            ],
            columns=["day", "suite", "expectation", "severity", "passed", "failed_rows", "examples"],
        )

    def to_json(self) -> str:
        return json.dumps(self.validations, indent=2, default=str)


def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,  # no calls home: the pipeline runs in closed networks
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


@dataclass(frozen=True)
class RowCheck:
    """A ledger expectation: the rows matching ``offending`` fail it."""

    name: str
    offending: sa.ColumnElement[bool]
    severity: str = "critical"


UNIQUE_REQUEST_ID = "request_id is unique"


def ledger_checks(book: PriceBook, day: date) -> list[RowCheck]:
    """Every row-level expectation of the ledger suite, as the SQL condition of its failures."""
    logs = ai_usage_logs.c
    window = DayWindow(day)
    return [
        *(RowCheck(f"{column} is not null", logs[column].is_(None)) for column in REQUIRED),
        *(RowCheck(f"{column} >= 0", logs[column] < 0) for column in (*TOKENS, "request_duration_ms")),
        RowCheck("cached_input_tokens <= input_tokens", logs.cached_input_tokens > logs.input_tokens),
        RowCheck(
            "total_tokens == input_tokens + output_tokens",
            logs.total_tokens != logs.input_tokens + logs.output_tokens,
        ),
        RowCheck(
            "created_at inside the day",
            sa.or_(logs.created_at.is_(None), logs.created_at < window.start, logs.created_at >= window.end),
        ),
        RowCheck("model_name in the price catalogue", logs.model_name.not_in(sorted(book.rows_for_day(day)))),
        RowCheck(
            "success and error_type agree",
            sa.or_(
                sa.and_(logs.success.is_(True), logs.error_type.is_not(None)),
                sa.and_(logs.success.is_(False), logs.error_type.is_(None)),
            ),
            "warning",
        ),
        RowCheck("reasoning_tokens <= output_tokens", logs.reasoning_tokens > logs.output_tokens, "warning"),
    ]


def _in_day(day: date) -> sa.ColumnElement[bool]:
    window = DayWindow(day)
    return sa.and_(ai_usage_logs.c.created_at >= window.start, ai_usage_logs.c.created_at < window.end)


@dataclass(frozen=True)
class DayProfile:
    """What one pass over the day's ledger rows found: offending rows per check, and totals."""

    failed_rows: dict[str, int]
    totals: dict[str, int]


def day_profile(engine: Engine, checks: list[RowCheck], day: date) -> DayProfile:
    """Count every check's offending rows and the day's totals in one aggregate query."""
    logs = ai_usage_logs.c
    duplicates = sa.func.count(logs.request_id) - sa.func.count(sa.distinct(logs.request_id))
    query = sa.select(
        sa.func.count().label("requests"),
        *(sa.func.coalesce(sa.func.sum(logs[c]), 0).label(c) for c in TOKENS),
        duplicates.label("duplicates"),
        *(sa.func.sum(sa.case((check.offending, 1), else_=0)).label(f"check_{n}") for n, check in enumerate(checks)),
    ).where(_in_day(day))
    with engine.connect() as connection:
        row = connection.execute(query).mappings().one()
    failed = {check.name: int(row[f"check_{n}"] or 0) for n, check in enumerate(checks)}
    failed[UNIQUE_REQUEST_ID] = int(row["duplicates"] or 0)
    return DayProfile(failed, {column: int(row[column]) for column in TOTAL_COLUMNS})


def _examples(engine: Engine, check: RowCheck | None, day: date) -> tuple[int | None, tuple[str, ...]]:
    """A failed check's first offending ``request_id``\\ s; for uniqueness also the number of
    rows sharing a duplicated id (the profile counts only the extra copies)."""
    logs = ai_usage_logs.c
    with engine.connect() as connection:
        if check is not None:
            query = sa.select(logs.request_id).where(_in_day(day), check.offending).limit(EXAMPLES)
            return None, tuple(str(value) for value in connection.execute(query).scalars())
        repeated = (
            sa.select(logs.request_id, sa.func.count().label("copies"))
            .where(_in_day(day))
            .group_by(logs.request_id)
            .having(sa.func.count() > 1)
            .subquery()
        )
        rows = connection.execute(sa.select(sa.func.sum(repeated.c.copies))).scalar_one()
        names = connection.execute(sa.select(repeated.c.request_id).limit(EXAMPLES)).scalars()
        return int(rows or 0), tuple(str(value) for value in names)


@dataclass(frozen=True)
class RollupTotals:
    """The per-user level as the rollup suite sees it: its sums, and its rows without a cost."""

    sums: dict[str, int]
    unpriced_rows: int
    unpriced_models: tuple[str, ...] = ()

    @classmethod
    def of_frame(cls, cost_daily: pd.DataFrame) -> RollupTotals:
        unpriced = cost_daily["cost_usd"].isna() if not cost_daily.empty else pd.Series(dtype=bool)
        return cls(
            {c: int(cost_daily[c].astype("int64").sum()) if not cost_daily.empty else 0 for c in TOTAL_COLUMNS},
            int(unpriced.sum()),
            tuple(sorted({str(m) for m in cost_daily.loc[unpriced, "model_name"]})) if not cost_daily.empty else (),
        )


def _observed(_name: str, outcome: Any) -> tuple[int, tuple[str, ...]]:
    """Failed rows and examples as GX reports them (the revenue suite's row checks)."""
    found = outcome.result or {}
    examples = tuple(dict.fromkeys(str(value) for value in found.get("partial_unexpected_list") or []))
    return int(found.get("unexpected_count") or (0 if outcome.success else 1)), examples[:EXAMPLES]


def _validate(gate: GateResult, context, suite_name: str, frame: pd.DataFrame, expectations, describe) -> None:
    """Run one suite on a small frame and record GX's verdict on each expectation, with
    ``describe(name, outcome)`` giving its failed rows and examples."""
    import great_expectations as gx

    # the suite is stored whole, once: GX re-serializes a stored suite on every expectation
    # added to it (a month's history seeds in 11.4 CPU-s instead of 12.7)
    suite = context.suites.add(
        gx.ExpectationSuite(name=suite_name, expectations=[expectation for _, _, expectation in expectations])
    )
    labels = {
        expectation.id: (name, severity)
        for (name, severity, _), expectation in zip(expectations, suite.expectations, strict=True)
    }
    asset = context.data_sources.add_pandas(name=suite_name).add_dataframe_asset(suite_name)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=asset.add_batch_definition_whole_dataframe("day"), suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES},
    )
    # GX reports results in an order of its own: match them to their expectations by id
    for outcome in result.results:
        name, severity = labels[outcome.expectation_config.id]
        failed, examples = describe(name, outcome)
        gate.checks.append(Check(suite_name, name, severity, bool(outcome.success), failed, examples))
    gate.validations[suite_name] = result.describe_dict()


@dataclass
class LedgerVerdict:
    """The gate's first half, which needs no rollup: the ledger and revenue suites."""

    context: Any
    gate: GateResult
    totals: dict[str, int]


def check_ledger(
    engine: Engine, book: PriceBook, day: date, revenue_groups: pd.DataFrame, fx_currencies: set[str]
) -> LedgerVerdict:
    """The ledger suite on the day's profile (one aggregate pass) and the revenue suite.
    :func:`include.economics.daily.compute_day` runs this while the database builds the
    per-user level, on its other core - GX's import (4 s) included."""
    import great_expectations.expectations as gxe

    context = _context()
    gate = GateResult()
    checks = ledger_checks(book, day)
    by_name = {check.name: check for check in checks}
    profile = day_profile(engine, checks, day)
    severity = {check.name: check.severity for check in checks} | {UNIQUE_REQUEST_ID: "critical"}
    order = [*(c.name for c in checks[: len(REQUIRED) + len(TOKENS) + 1]), UNIQUE_REQUEST_ID]
    order += [name for name in profile.failed_rows if name not in order]

    def offending_rows(name: str, outcome: Any) -> tuple[int, tuple[str, ...]]:
        if outcome.success:
            return 0, ()
        copies, examples = _examples(engine, by_name.get(name), day)
        return copies or profile.failed_rows[name], examples

    _validate(
        gate,
        context,
        "ledger",
        pd.DataFrame([{name: profile.failed_rows[name] for name in order}]),
        [(name, severity[name], gxe.ExpectColumnMaxToBeBetween(column=name, max_value=0)) for name in order],
        offending_rows,
    )
    revenue = revenue_groups if not revenue_groups.empty else pd.DataFrame({"currency": [], "kind": []})
    revenue_expectations = [
        (
            "every currency has an FX rate",
            "critical",
            gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=sorted(fx_currencies)),
        ),
        (
            "every revenue kind is known",
            "critical",
            gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=sorted(REVENUE_SIGN)),
        ),
    ]
    _validate(gate, context, "revenue", revenue, revenue_expectations, _observed)
    return LedgerVerdict(context, gate, profile.totals)


def check_rollups(verdict: LedgerVerdict, cost_daily: RollupTotals | pd.DataFrame) -> GateResult:
    """The gate's second half: the per-user level adds up to the ledger and has every
    cost. ``cost_daily``: the level's :class:`RollupTotals` (the DAG streams the level and
    never holds it), or the level itself as a frame."""
    import great_expectations.expectations as gxe

    rollup = cost_daily if isinstance(cost_daily, RollupTotals) else RollupTotals.of_frame(cost_daily)
    totals = verdict.totals
    rollup_expectations = [
        *(
            (
                f"ai_cost_daily {column} adds up to the ledger's {totals[column]}",
                "critical",
                gxe.ExpectColumnSumToBeBetween(column=column, min_value=totals[column], max_value=totals[column]),
            )
            for column in TOTAL_COLUMNS
        ),
        (
            "every rollup row has a cost",
            "critical",
            gxe.ExpectColumnMaxToBeBetween(column=WITHOUT_COST, min_value=0, max_value=0),
        ),
    ]

    def rollup_rows(name: str, outcome: Any) -> tuple[int, tuple[str, ...]]:
        if name == "every rollup row has a cost":
            return rollup.unpriced_rows, rollup.unpriced_models[:EXAMPLES]
        observed = (outcome.result or {}).get("observed_value")
        return (0, ()) if outcome.success else (1, (f"observed {observed}",))

    _validate(
        verdict.gate,
        verdict.context,
        "rollups",
        pd.DataFrame([{**rollup.sums, WITHOUT_COST: rollup.unpriced_rows}]),
        rollup_expectations,
        rollup_rows,
    )
    return verdict.gate


def run_gate(
    engine: Engine,
    book: PriceBook,
    day: date,
    cost_daily: RollupTotals | pd.DataFrame,
    revenue_groups: pd.DataFrame,
    fx_currencies: set[str],
) -> GateResult:
    """Run the three suites; never raises for bad data (the caller decides on ``passed``)."""
    return check_rollups(check_ledger(engine, book, day, revenue_groups, fx_currencies), cost_daily)
