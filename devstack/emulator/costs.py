"""The account's cost: Cost Explorer by service, usage type and tag, Cost Anomaly
Detection's anomalies and AWS Budgets' spend, which moto doesn't track ("Cost or usage is
not tracked by Moto": its GetCostAndUsage answers from a queue of canned results, it has no
GetAnomalies, and a budget's CalculatedSpend stays 0).

Cost lines are planted, as a month of the platform's bill would be, with :func:`plant`
(in-process) or ``POST /moto-api/bp/costs`` on the moto server: ``{"lines": [{"day",
"service", "usage_type", "tags": {...}, "cost", "quantity", "unit"}], "anomalies":
[<Anomaly objects as AWS returns them>]}``. Once an account has lines, AWS's documented
behaviour answers from them:

* GetCostAndUsage: "TimePeriod ... The start date is inclusive ... the end date is
  exclusive"; ``Filter`` is an Expression of ``Dimensions`` (SERVICE, USAGE_TYPE),
  ``Tags``, ``And``, ``Or`` and ``Not``; "You can group AWS costs using up to two
  different groups", each a DIMENSION or a TAG, a tag group's key reading
  ``<tag key>$<value>`` (empty for usage without the tag); ``Total`` only when nothing
  is grouped. An account without lines keeps moto's queue (its own tests use it).
* GetAnomalies: "Retrieves all of the cost anomalies detected on your account during the
  time period that's specified by the DateInterval object"; "The returned anomaly object
  will have an AnomalyEndDate in the specified time range".
* DescribeBudgets: a COST budget's ``CalculatedSpend.ActualSpend`` is the lines' cost in
  the budget's current period (its ``CostFilters`` ``TagKeyValue`` entries ``user:<key>$<value>``
  applied); ``ForecastedSpend`` projects it linearly to the period's end (AWS forecasts
  with a model of its own; a straight line is the emulator's choice).
"""

from __future__ import annotations

import calendar
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from moto.budgets.models import Budget, budgets_backends
from moto.ce.models import CostExplorerBackend, ce_backends
from moto.ce.responses import CostExplorerResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal import urls as moto_api_urls

_original_cost_and_usage = CostExplorerBackend.get_cost_and_usage
_original_budget_dict = Budget.to_dict


def _store(account_id: str) -> dict[str, list[dict]]:
    backend = ce_backends[account_id]["global"]
    if not hasattr(backend, "bp_costs"):
        backend.bp_costs = {"lines": [], "anomalies": []}
    return backend.bp_costs


def plant(lines: list[dict] = (), anomalies: list[dict] = (), account_id: str = DEFAULT_ACCOUNT_ID) -> None:
    """Add cost lines and anomalies to the account's bill."""
    store = _store(account_id)
    store["lines"] += [dict(line) for line in lines]
    store["anomalies"] += [dict(anomaly) for anomaly in anomalies]


def _plant_route(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    size = int(headers.get("Content-Length") or 0)
    body = json.loads(request.environ["wsgi.input"].read(size).decode() if size else "{}")
    plant(body.get("lines", []), body.get("anomalies", []), body.get("account_id", DEFAULT_ACCOUNT_ID))
    return 201, {}, ""


def _matches(line: dict, expression: dict | None) -> bool:
    if not expression:
        return True
    if "And" in expression:
        return all(_matches(line, part) for part in expression["And"])
    if "Or" in expression:
        return any(_matches(line, part) for part in expression["Or"])
    if "Not" in expression:
        return not _matches(line, expression["Not"])
    if "Dimensions" in expression:
        dimension = expression["Dimensions"]
        return _dimension(line, dimension["Key"]) in dimension.get("Values", [])
    if "Tags" in expression:
        tag = expression["Tags"]
        values = tag.get("Values")
        value = line.get("tags", {}).get(tag["Key"])
        return value is not None if not values else value in values
    raise ValueError(f"the emulator's Cost Explorer doesn't filter on {sorted(expression)}")


def _dimension(line: dict, key: str) -> str:
    return {"SERVICE": line["service"], "USAGE_TYPE": line["usage_type"]}[key]


def _group_key(line: dict, group: dict) -> str:
    if group["Type"] == "TAG":
        return f"{group['Key']}${line.get('tags', {}).get(group['Key'], '')}"
    return _dimension(line, group["Key"])


def _metrics(lines: list[dict], metrics: list[str]) -> dict[str, dict[str, str]]:
    units = {line.get("unit", "") for line in lines}
    values = {
        "UnblendedCost": (sum((Decimal(str(line["cost"])) for line in lines), Decimal(0)), "USD"),
        "UsageQuantity": (sum((Decimal(str(line.get("quantity", 0))) for line in lines), Decimal(0)),
                          units.pop() if len(units) == 1 else "N/A"),
    }  # fmt: skip
    return {m: {"Amount": str(values[m][0]), "Unit": values[m][1]} for m in metrics if m in values}


def _periods(start: date, end: date, granularity: str) -> list[tuple[date, date]]:
    periods, first = [], start
    while first < end:
        if granularity == "MONTHLY":
            following = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
        else:
            following = first + timedelta(days=1)
        periods.append((first, min(following, end)))
        first = following
    return periods


def _cost_and_usage(self: CostExplorerBackend, body: str) -> dict[str, Any]:
    lines = getattr(self, "bp_costs", {}).get("lines")
    if not lines:
        return _original_cost_and_usage(self, body)
    request = json.loads(body)
    start = date.fromisoformat(request["TimePeriod"]["Start"])
    end = date.fromisoformat(request["TimePeriod"]["End"])
    metrics, group_by = request.get("Metrics", []), request.get("GroupBy", [])
    wanted = [line for line in lines if _matches(line, request.get("Filter"))]
    results = []
    for first, following in _periods(start, end, request.get("Granularity", "DAILY")):
        inside = [line for line in wanted if first <= date.fromisoformat(line["day"]) < following]
        result = {"TimePeriod": {"Start": first.isoformat(), "End": following.isoformat()}, "Estimated": False}
        if group_by:
            groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
            for line in inside:
                groups[tuple(_group_key(line, group) for group in group_by)].append(line)
            keyed = sorted(groups.items())
            result |= {"Total": {}, "Groups": [{"Keys": list(k), "Metrics": _metrics(v, metrics)} for k, v in keyed]}
        else:
            result |= {"Total": _metrics(inside, metrics), "Groups": []}
        results.append(result)
    return {"ResultsByTime": results, "DimensionValueAttributes": [], "GroupDefinitions": group_by}


def _get_anomalies(self: CostExplorerResponse) -> str:
    params = json.loads(self.body)
    interval = params["DateInterval"]
    first = interval["StartDate"]
    last = interval.get("EndDate") or "9999-12-31"
    found = [
        anomaly
        for anomaly in _store(self.current_account)["anomalies"]
        if first <= anomaly.get("AnomalyEndDate", anomaly.get("AnomalyStartDate", ""))[:10] <= last
        and (not params.get("MonitorArn") or anomaly.get("MonitorArn") == params["MonitorArn"])
    ]
    return json.dumps({"Anomalies": found})


def _budget_period(budget: dict, today: date) -> tuple[date, date]:
    if budget.get("TimeUnit", "MONTHLY") == "DAILY":
        return today, today
    first = today.replace(day=1)
    return first, first.replace(day=calendar.monthrange(today.year, today.month)[1])


def _budget_dict(self: Budget) -> dict[str, Any]:
    answered = _original_budget_dict(self)
    if answered.get("BudgetType") != "COST" or "CalculatedSpend" in self.budget:
        return answered
    account = next((a for a, budgets in _all_budgets() if self in budgets.values()), DEFAULT_ACCOUNT_ID)
    lines = _store(account)["lines"]
    if not lines:
        return answered
    today = datetime.now(UTC).date()
    first, last = _budget_period(answered, today)
    filters = answered.get("CostFilters", {}).get("TagKeyValue", [])
    tags = [entry.removeprefix("user:").split("$", 1) for entry in filters]
    spent = sum(
        Decimal(str(line["cost"]))
        for line in lines
        if first <= date.fromisoformat(line["day"]) <= min(last, today)
        and all(line.get("tags", {}).get(key) == value for key, value in tags)
    )
    elapsed, days = (min(last, today) - first).days + 1, (last - first).days + 1
    forecast = spent / elapsed * days if elapsed else spent
    answered["CalculatedSpend"] = {
        "ActualSpend": {"Amount": f"{spent:.2f}", "Unit": "USD"},
        "ForecastedSpend": {"Amount": f"{forecast:.2f}", "Unit": "USD"},
    }
    return answered


def _all_budgets() -> list[tuple[str, dict[str, Budget]]]:
    """(account, its budgets by name) of every budgets backend."""
    return [(account, budgets) for regions in budgets_backends.values() for backend in regions.values()
            for account, budgets in backend.budgets.items()]  # fmt: skip


def install() -> None:
    CostExplorerBackend.get_cost_and_usage = _cost_and_usage
    CostExplorerResponse.get_anomalies = _get_anomalies
    Budget.to_dict = _budget_dict
    moto_api_urls.url_paths["{0}/moto-api/bp/costs"] = _plant_route
