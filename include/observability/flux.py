"""Flux queries for the dashboards and alert rules, and their place in the Grafana
Foundation SDK, which has no InfluxDB query type of its own: :class:`FluxQuery` is one (a
``Dataquery`` variant, as the SDK's runtime lets a datasource add), :class:`FluxTarget`
its builder.

A query is built from parts (:class:`Flux`) rather than written whole, so every query
starts the same way (bucket, the dashboard's time range, one measurement, its fields)
and the contract test has fewer shapes to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

#: The provisioned InfluxDB datasource (infra/grafana/provisioning/datasources/influxdb.yaml).
DATASOURCE_UID = "bp-influxdb"
DATASOURCE = dashboard.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)


@dataclass(frozen=True)
class Flux:
    """``from(bucket) |> range |> filter(measurement) |> filter(fields) |> filter(tags) |> then``.

    ``where`` holds tag filters: a value of a dashboard variable (``$plan``) matches by
    regular expression (so "All" and several values work), any other value exactly.
    """

    bucket: str
    measurement: str
    fields: Sequence[str]
    where: Sequence[tuple[str, str]] = ()
    then: Sequence[str] = ()
    start: str = "v.timeRangeStart"
    stop: str = "v.timeRangeStop"
    #: statements before the pipeline (a baseline the pipeline divides by)
    preamble: Sequence[str] = ()

    def text(self) -> str:
        lines = [
            *self.preamble,
            f'from(bucket: "{self.bucket}")',
            f"  |> range(start: {self.start}, stop: {self.stop})",
            f'  |> filter(fn: (r) => r._measurement == "{self.measurement}")',
            "  |> filter(fn: (r) => " + " or ".join(f'r._field == "{f}"' for f in self.fields) + ")",
        ]
        for tag, value in self.where:
            if value.startswith("$"):
                lines.append(f"  |> filter(fn: (r) => r.{tag} =~ /^${{{value[1:]}:regex}}$/)")
            else:
                lines.append(f'  |> filter(fn: (r) => r.{tag} == "{value}")')
        lines += [f"  |> {step}" for step in self.then]
        return "\n".join(lines)


def tag_values(bucket: str, measurement: str, tag: str) -> str:
    """The Flux of a dashboard variable: the values ``tag`` has taken in ``measurement``."""
    return (
        'import "influxdata/influxdb/schema"\n'
        f'schema.measurementTagValues(bucket: "{bucket}", measurement: "{measurement}", tag: "{tag}")'
    )


class FluxQuery(cogvariants.Dataquery):
    """A panel's (or an annotation's) Flux query, as Grafana's InfluxDB datasource stores it."""

    def __init__(self, ref_id: str, query: str) -> None:
        self.ref_id = ref_id
        self.query = query

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "query": self.query, "datasource": DATASOURCE}


@dataclass
class FluxTarget(cogbuilder.Builder[FluxQuery]):
    flux: Flux
    ref_id: str = "A"

    def build(self) -> FluxQuery:
        return FluxQuery(self.ref_id, self.flux.text())


class FluxAnnotationTarget(dashboard.AnnotationTarget):
    """An annotation's target as a Flux query (the SDK's own target is the built-in
    annotations' tag filter): ``_time`` the moment, ``text`` what happened, tags as tags."""

    def __init__(self, query: str) -> None:
        super().__init__()
        self.query = query

    def to_json(self) -> dict[str, object]:
        return {"refId": "Anno", "query": self.query}


@dataclass
class FluxAnnotation(cogbuilder.Builder[dashboard.AnnotationTarget]):
    flux: Flux

    def build(self) -> dashboard.AnnotationTarget:
        return FluxAnnotationTarget(self.flux.text())
