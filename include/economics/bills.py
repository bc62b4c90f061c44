"""The providers' own usage and cost of a day, read from their documented responses into
one shape: a :class:`BillLine` per provider, model and account (project, API key or
workspace), its tokens and its cost split by token class.

Token classes match the ledger's: ``input`` is the input *not* read from a cache
(cache writes included), ``cached`` the cache reads, ``output`` the output; what is not
a token (web search, code execution) is ``other``. Costs stay in the bill's currency,
exact (``Decimal``): :mod:`include.economics.bill_reconciliation` converts them.

* **OpenAI** - ``GET /v1/organization/usage/completions`` (``group_by=model,project_id``)
  gives ``input_tokens`` (cached ones included) and ``input_cached_tokens``;
  ``GET /v1/organization/costs`` (``group_by=line_item,project_id``) gives one amount per
  line item, ``"<model>, input"``, ``"<model>, cached input"``, ``"<model>, output"``.
* **Anthropic** - ``GET /v1/organizations/usage_report/messages`` (``group_by[]=model``)
  gives ``uncached_input_tokens``, ``cache_creation``, ``cache_read_input_tokens``,
  ``output_tokens``; ``GET /v1/organizations/cost_report`` (``group_by[]=description``)
  one amount per model and ``token_type``, "in lowest currency units (e.g. cents) as a
  decimal string".
* **AWS Bedrock** - Cost Explorer ``GetCostAndUsage`` for the service, by ``USAGE_TYPE``
  (``<region>-<model>-input-tokens``, ``-output-tokens``, ``-cache-read-input-token-count``,
  ``-cache-write-input-token-count``), ``UnblendedCost`` and ``UsageQuantity`` (tokens).
* **CSV** - any other provider's export, dropped at ``billing/<provider>/<day>.csv``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

CLASSES = ("input", "cached", "output")
#: the "model" of what a bill charges outside any model (web search, code execution)
NOT_A_MODEL = "(not a model)"
COST_CLASSES = (*CLASSES, "other")
CSV_COLUMNS = (
    "model_name",
    "account",
    *(f"{c}_tokens" for c in CLASSES),
    *(f"{c}_cost" for c in COST_CLASSES),
    "currency",
)


class BillError(ValueError):
    """A bill that can't be read as documented: the provider, and what is wrong."""


@dataclass
class BillLine:
    provider: str
    model_name: str
    account: str
    currency: str
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    cost: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(COST_CLASSES, Decimal(0)))

    @property
    def total_cost(self) -> Decimal:
        return sum(self.cost.values(), Decimal(0))

    def as_dict(self) -> dict:
        """As JSON values (money as strings, exact)."""
        return {**self.__dict__, "cost": {c: str(amount) for c, amount in self.cost.items()}}

    @classmethod
    def from_dict(cls, value: Mapping) -> BillLine:
        cost = {c: Decimal(amount) for c, amount in value["cost"].items()}
        return cls(
            value["provider"], value["model_name"], value["account"], value["currency"], dict(value["tokens"]), cost
        )


class _Lines:
    """Bill lines by (model, account), made on first use."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.by_key: dict[tuple[str, str], BillLine] = {}

    def get(self, model: str | None, account: str | None, currency: str) -> BillLine:
        key = (model or NOT_A_MODEL, account or "")
        line = self.by_key.setdefault(key, BillLine(self.provider, key[0], key[1], currency.upper()))
        if line.currency != currency.upper():
            raise BillError(f"{self.provider}: {key[0]} is billed in both {line.currency} and {currency.upper()}")
        return line

    def all(self) -> list[BillLine]:
        return [self.by_key[key] for key in sorted(self.by_key)]


def _results(pages: Iterable[Mapping]) -> Iterable[Mapping]:
    for page in pages:
        for bucket in page.get("data", []):
            yield from bucket.get("results", [])


OPENAI_LINE_ITEM = re.compile(r"^(?P<model>.+), (?P<what>input|cached input|output)$")


def openai_lines(usage_pages: Iterable[Mapping], cost_pages: Iterable[Mapping]) -> list[BillLine]:
    lines = _Lines("openai")
    for result in _results(usage_pages):
        line = lines.get(result.get("model"), result.get("project_id"), "USD")
        cached = int(result.get("input_cached_tokens") or 0)
        line.tokens["input"] += int(result["input_tokens"]) - cached
        line.tokens["cached"] += cached
        line.tokens["output"] += int(result["output_tokens"])
    for result in _results(cost_pages):
        amount = result["amount"]
        found = OPENAI_LINE_ITEM.match(result.get("line_item") or "")
        model, what = (found["model"], found["what"]) if found else (result.get("line_item"), "other")
        line = lines.get(model, result.get("project_id"), amount["currency"])
        line.cost[{"input": "input", "cached input": "cached", "output": "output"}.get(what, "other")] += Decimal(
            str(amount["value"])
        )
    return lines.all()


ANTHROPIC_TOKEN_TYPES = {
    "uncached_input_tokens": "input",
    "cache_creation.ephemeral_5m_input_tokens": "input",
    "cache_creation.ephemeral_1h_input_tokens": "input",
    "cache_read_input_tokens": "cached",
    "output_tokens": "output",
}


def anthropic_lines(usage_pages: Iterable[Mapping], cost_pages: Iterable[Mapping]) -> list[BillLine]:
    lines = _Lines("anthropic")
    for result in _results(usage_pages):
        line = lines.get(result.get("model"), result.get("workspace_id"), "USD")
        writes = sum(int(v or 0) for v in (result.get("cache_creation") or {}).values())
        line.tokens["input"] += int(result.get("uncached_input_tokens") or 0) + writes
        line.tokens["cached"] += int(result.get("cache_read_input_tokens") or 0)
        line.tokens["output"] += int(result.get("output_tokens") or 0)
    for result in _results(cost_pages):
        line = lines.get(result.get("model") or NOT_A_MODEL, result.get("workspace_id"), result["currency"])
        # "in lowest currency units (e.g. cents) as a decimal string"
        line.cost[ANTHROPIC_TOKEN_TYPES.get(result.get("token_type") or "", "other")] += Decimal(result["amount"]) / 100
    return lines.all()


BEDROCK_USAGE = re.compile(
    r"^[A-Z0-9]+-(?P<model>.+?)-(?P<what>input-tokens|output-tokens|cache-read-input-token-count|cache-write-input-token-count)$"
)
BEDROCK_CLASSES = {
    "input-tokens": "input",
    "cache-write-input-token-count": "input",
    "cache-read-input-token-count": "cached",
    "output-tokens": "output",
}


def bedrock_lines(groups: Iterable[Mapping], model_names: Mapping[str, str]) -> list[BillLine]:
    """Cost Explorer's groups by usage type; ``model_names`` maps Bedrock's name for a
    model in the usage type (``Claude4Sonnet``) to the catalogue's (``claude-sonnet-4``)."""
    lines = _Lines("bedrock")
    for group in groups:
        usage_type = group["Keys"][0]
        cost = group["Metrics"]["UnblendedCost"]
        found = BEDROCK_USAGE.match(usage_type)
        model = model_names.get(found["model"], found["model"]) if found else usage_type
        line = lines.get(model, "", cost["Unit"])
        what = BEDROCK_CLASSES[found["what"]] if found else "other"
        line.cost[what] += Decimal(cost["Amount"])
        if found:
            line.tokens[what] += int(Decimal(group["Metrics"]["UsageQuantity"]["Amount"]))
    return lines.all()


def csv_lines(text: str, provider: str) -> list[BillLine]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise BillError(
            f"{provider}: the CSV bill lacks column(s) {', '.join(missing)} (expected {', '.join(CSV_COLUMNS)})"
        )
    lines = _Lines(provider)
    for number, record in enumerate(reader, start=2):
        try:
            line = lines.get(record["model_name"], record["account"], record["currency"])
            for c in CLASSES:
                line.tokens[c] += int(record[f"{c}_tokens"] or 0)
            for c in COST_CLASSES:
                line.cost[c] += Decimal(record[f"{c}_cost"] or 0)
        except (ArithmeticError, ValueError) as error:
            raise BillError(f"{provider}: line {number} of the CSV bill: {error}") from None
    return lines.all()
