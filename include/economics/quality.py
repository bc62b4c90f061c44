"""The data-quality gate: Great Expectations suites that must pass before anything of
the day is published (seed 000: bad data must stop the publish, not reach dashboards).

* **ledger suite**, on the day's raw ``ai_usage_logs`` rows as a SQL query asset that
  GX copies once into a temporary table, so every row check runs in the database on
  that copy (no row comes to Python except the first offending ``request_id``\\ s, and
  the ledger's day range is read once, not once per expectation - on a million-row
  MariaDB day the gate went from 109 s to 38 s): required fields not null, tokens >= 0,
  cached <= input, total == input + output, ``created_at`` inside the day,
  ``request_id`` unique, every model priced that day; success/error_type consistency
  and reasoning <= output are warnings;
* **rollup suite**, on ``ai_cost_daily``: its request and token sums equal the
  ledger's own totals (a plan table with overlapping periods would double-count),
  and every row has a cost;
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

    # GX narrates its own registry at INFO (hundreds of lines a run); keep its warnings
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
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


def _sql(clause: sa.ClauseElement, dialect: sa.engine.Dialect) -> str:
    """A clause as SQL text for GX, its values rendered by the database's own dialect
    (quotes and backslashes escaped the way that database reads them)."""
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _day_bounds(window: DayWindow) -> tuple[sa.ColumnElement, sa.ColumnElement, sa.ColumnElement]:
    """``created_at`` and the day's bounds as literals (``[start, end)``)."""
    start, end = (sa.literal(moment.isoformat(sep=" ")) for moment in (window.start, window.end))
    return sa.column("created_at"), start, end


def _ledger_expectations(book: PriceBook, day: date, dialect: sa.engine.Dialect) -> list[tuple[str, str, Any]]:
    import great_expectations.expectations as gxe

    window = DayWindow(day)
    priced = sorted(book.rows_for_day(day))

    def rows(description: str, where: sa.ColumnElement, severity: str = "critical"):
        query = sa.select(sa.column("request_id")).select_from(sa.table("{batch}")).where(where)
        return (
            description,
            severity,
            gxe.UnexpectedRowsExpectation(unexpected_rows_query=_sql(query, dialect), description=description),
        )

    tokens = {name: sa.column(name) for name in ("input_tokens", "cached_input_tokens", "output_tokens")}
    created, start, end = _day_bounds(window)

    return [
        *(
            (f"{column} is not null", "critical", gxe.ExpectColumnValuesToNotBeNull(column=column))
            for column in REQUIRED
        ),
        *(
            (f"{column} >= 0", "critical", gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0))
            for column in (*TOKENS, "request_duration_ms")
        ),
        ("request_id is unique", "critical", gxe.ExpectColumnValuesToBeUnique(column="request_id")),
        rows("cached_input_tokens <= input_tokens", tokens["cached_input_tokens"] > tokens["input_tokens"]),
        rows(
            "total_tokens == input_tokens + output_tokens",
            sa.column("total_tokens") != tokens["input_tokens"] + tokens["output_tokens"],
        ),
        rows("created_at inside the day", sa.or_(created.is_(None), created < start, created >= end)),
        rows("model_name in the price catalogue", sa.column("model_name").not_in(priced)),
        rows(
            "success and error_type agree",
            sa.text("(success = TRUE AND error_type IS NOT NULL) OR (success = FALSE AND error_type IS NULL)"),
            "warning",
        ),
        rows("reasoning_tokens <= output_tokens", sa.column("reasoning_tokens") > tokens["output_tokens"], "warning"),
    ]


def _day_query(day: date, dialect: sa.engine.Dialect) -> str:
    """The day's ledger rows, the query GX copies once into a temporary table."""
    created, start, end = _day_bounds(DayWindow(day))
    query = sa.select(sa.text("*")).select_from(ai_usage_logs).where(created >= start, created < end)
    return _sql(query, dialect)


def ledger_totals(engine: Engine, day: date) -> dict[str, int]:
    """Requests and token sums straight from the ledger (no join), for the rollup suite."""
    logs = ai_usage_logs.c
    window = DayWindow(day)
    query = sa.select(
        sa.func.count().label("requests"), *(sa.func.coalesce(sa.func.sum(logs[c]), 0).label(c) for c in TOKENS)
    ).where(logs.created_at >= window.start, logs.created_at < window.end)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().one()
    return {key: int(value) for key, value in row.items()}


def _check(suite: str, name: str, severity: str, result: Any) -> Check:
    outcome = result.result or {}
    index_list = outcome.get("unexpected_index_list") or []
    if index_list and isinstance(index_list[0], dict) and "request_id" in index_list[0]:  # SQL rows
        examples = [str(item["request_id"]) for item in index_list]
        failed = int(outcome.get("unexpected_count") or 0)
    elif "details" in outcome and "unexpected_rows" in (outcome.get("details") or {}):
        examples = [str(row.get("request_id")) for row in outcome["details"]["unexpected_rows"]]
        failed = int(outcome.get("observed_value") or 0)
    else:
        examples = [str(value) for value in outcome.get("partial_unexpected_list") or []]
        failed = int(outcome.get("unexpected_count") or (0 if result.success else 1))
        if "observed_value" in outcome and not result.success and not examples:
            examples = [f"observed {outcome['observed_value']}"]
    unique = list(dict.fromkeys(examples))[:EXAMPLES]
    return Check(suite, name, severity, bool(result.success), failed, tuple(unique))


def _validate(
    gate: GateResult,
    context,
    suite_name: str,
    batch_definition,
    expectations,
    batch_parameters=None,
    index_columns=None,
) -> None:
    """Run one suite and record its checks and its GX result in ``gate``."""
    import great_expectations as gx

    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    labels = {}
    for name, severity, expectation in expectations:
        labels[suite.add_expectation(expectation).id] = (name, severity)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite)
    )
    result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": EXAMPLES}
    if index_columns:
        result_format["unexpected_index_column_names"] = index_columns
    result = definition.run(batch_parameters=batch_parameters, result_format=result_format)
    # GX reports results in an order of its own: match them to their expectations by id
    gate.checks += [_check(suite_name, *labels[outcome.expectation_config.id], outcome) for outcome in result.results]
    gate.validations[suite_name] = result.describe_dict()


def run_gate(
    engine: Engine,
    book: PriceBook,
    day: date,
    cost_daily: pd.DataFrame,
    revenue_groups: pd.DataFrame,
    fx_currencies: set[str],
) -> GateResult:
    """Run the three suites; never raises for bad data (the caller decides on ``passed``)."""
    import great_expectations.expectations as gxe

    context = _context()
    gate = GateResult()

    source = context.data_sources.add_sql(
        name="ledger", connection_string=engine.url.render_as_string(hide_password=False), create_temp_table=True
    )
    day_asset = source.add_query_asset(name="ledger_day", query=_day_query(day, engine.dialect))
    _validate(
        gate,
        context,
        "ledger",
        day_asset.add_batch_definition_whole_table("day"),
        _ledger_expectations(book, day, engine.dialect),
        index_columns=["request_id"],
    )

    totals = ledger_totals(engine, day)
    frames = context.data_sources.add_pandas(name="frames")
    rollup_expectations = [
        *(
            (
                f"ai_cost_daily {column} adds up to the ledger's {totals[column]}",
                "critical",
                gxe.ExpectColumnSumToBeBetween(column=column, min_value=totals[column], max_value=totals[column]),
            )
            for column in TOTAL_COLUMNS
        ),
        ("every rollup row has a cost", "critical", gxe.ExpectColumnValuesToNotBeNull(column="cost_usd")),
    ]
    # only the columns the suite reads: the per-user table can have millions of rows
    rollup = pd.DataFrame(
        {
            **{
                c: cost_daily[c].astype("int64") if not cost_daily.empty else pd.Series(dtype="int64")
                for c in TOTAL_COLUMNS
            },
            "cost_usd": cost_daily["cost_usd"].isna().map({True: None, False: 1}) if not cost_daily.empty else [],
        }
    )
    _validate(
        gate,
        context,
        "rollups",
        frames.add_dataframe_asset("ai_cost_daily").add_batch_definition_whole_dataframe("day"),
        rollup_expectations,
        batch_parameters={"dataframe": rollup},
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
    _validate(
        gate,
        context,
        "revenue",
        frames.add_dataframe_asset("revenue_day").add_batch_definition_whole_dataframe("day"),
        revenue_expectations,
        batch_parameters={"dataframe": revenue},
    )
    return gate
