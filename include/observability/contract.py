"""The contract between what is written to InfluxDB and what Grafana reads: every query
of a dashboard panel, variable or annotation and of an alert rule may name only buckets,
measurements, fields and tags of the :mod:`.catalogue`. A renamed warehouse column, a
Telegraf setting or a typo in a query breaks the build here, not a dashboard on a Monday.

It reads the provisioning files as Grafana loads them (not the builders), so a query
edited by hand in a generated file is checked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from include.observability.catalogue import Measurement, additive
from include.observability.flux import DATASOURCE_UID

BUCKET = re.compile(r'bucket:\s*"([^"]+)"')
MEASUREMENT = re.compile(r'_measurement\s*==\s*"([^"]+)"|measurement:\s*"([^"]+)"')
FIELD = re.compile(r'_field\s*==\s*"([^"]+)"')
#: a column a row function reads (``r.plan``, ``r["plan"]``) or a tag function names
COLUMN = re.compile(r'\br\.([A-Za-z_]\w*)|\br\["([^"]+)"\]|\btag:\s*"([^"]+)"')
COLUMN_LIST = re.compile(r"\b(?:columns|rowKey|columnKey):\s*\[([^\]]*)\]")
#: a sum over the rows: ``sum()`` or an aggregate window of ``fn: sum``
SUMS = re.compile(r"\bsum\(\s*\)|\bfn:\s*sum\b")


@dataclass(frozen=True)
class QueryUse:
    """What one Flux query names."""

    buckets: frozenset[str]
    measurements: frozenset[str]
    fields: frozenset[str]
    columns: frozenset[str]


def uses(query: str) -> QueryUse:
    columns = {next(group for group in found if group) for found in COLUMN.findall(query)}
    for listed in COLUMN_LIST.findall(query):
        columns |= {name.strip().strip('"') for name in listed.split(",") if name.strip()}
    return QueryUse(
        frozenset(BUCKET.findall(query)),
        frozenset(a or b for a, b in MEASUREMENT.findall(query)),
        frozenset(FIELD.findall(query)),
        # Flux's own columns (_time, _value, _field, ...) are always there
        frozenset(column for column in columns if not column.startswith("_")),
    )


def problems(where: str, query: str, catalogue: Mapping[str, Measurement]) -> list[str]:
    """What is wrong with one query: each name it uses that nothing writes."""
    use = uses(query)
    if not use.measurements:
        return [f"{where}: names no measurement (filter on r._measurement or pass measurement:)"]
    named = sorted(use.measurements)
    found = [f"{where}: measurement {name!r} is not one the project writes" for name in named if name not in catalogue]
    known = [catalogue[name] for name in named if name in catalogue]
    if not known:
        return found
    buckets = {m.bucket for m in known}
    fields = frozenset().union(*(m.fields for m in known))
    tags = frozenset().union(*(m.tags for m in known))
    for bucket in sorted(use.buckets - buckets):
        found.append(f"{where}: bucket {bucket!r} holds none of {named} (they are in {sorted(buckets)})")
    for name in sorted(use.fields - fields):
        found.append(f"{where}: field {name!r} is not a field of {named}")
    if SUMS.search(query):
        for name in sorted(name for name in use.fields if not additive(name)):
            found.append(
                f"{where}: sums {name!r}, which does not add up (a ratio, percentage, percentile, average, peak or "
                "distinct count): right only while each window holds one point; take fn: last, mean or max"
            )
    for name in sorted(use.columns - fields - tags):
        found.append(f"{where}: {name!r} is neither a tag nor a field of {named}")
    return found


def dashboard_queries(name: str, document: dict) -> Iterator[tuple[str, str]]:
    """(where, query) of every panel target, variable and annotation of a dashboard."""

    def panels(items: list[dict]) -> Iterator[dict]:
        for item in items:
            yield item
            yield from panels(item.get("panels") or [])

    for panel in panels(document.get("panels") or []):
        for target in panel.get("targets") or []:
            yield f"dashboard {name}, panel {panel.get('title')!r}", target["query"]
    for variable in (document.get("templating") or {}).get("list") or []:
        if variable.get("type") == "query":
            yield f"dashboard {name}, variable {variable['name']!r}", variable["query"]
    for annotation in (document.get("annotations") or {}).get("list") or []:
        target = annotation.get("target") or {}
        if "query" in target:
            yield f"dashboard {name}, annotation {annotation['name']!r}", target["query"]


def rule_queries(document: dict, datasource_uid: str) -> Iterator[tuple[str, str]]:
    """(where, query) of every InfluxDB query of a provisioning file's alert rules."""
    for group in document.get("groups") or []:
        for rule in group.get("rules") or []:
            for data in rule.get("data") or []:
                if data.get("datasourceUid") == datasource_uid:
                    yield f"alert rule {rule['uid']!r} ({data['refId']})", data["model"]["query"]


def check(boards: Mapping[str, dict], rules: dict, catalogue: Mapping[str, Measurement]) -> tuple[int, list[str]]:
    """How many queries the dashboards and alert rules run, and every problem of theirs."""
    queries = [query for name, board in boards.items() for query in dashboard_queries(name, board)]
    queries += rule_queries(rules, DATASOURCE_UID)
    return len(queries), [problem for where, query in queries for problem in problems(where, query, catalogue)]
