"""A stand-in for the LLM providers' usage and cost APIs, which can't be reached here:
OpenAI's ``/v1/organization/usage/completions`` and ``/v1/organization/costs``, and
Anthropic's ``/v1/organizations/usage_report/messages`` and ``/v1/organizations/cost_report``,
answering in their documented shapes (as recorded in tests/include/economics/recorded/).

It bills what the ledger says was used (``gpt-*`` and ``text-embedding-*`` models by
OpenAI, ``claude-*`` by Anthropic) at the catalogue's prices *as they were when it
started*: a provider's prices don't move when our catalogue is edited. A day with no
usage answers no results: the bill is not out yet. It checks the admin key it was given
(``BP_PROVIDER_BILLS_KEY``).

    python -m tests.doubles.provider_bills --port 8123 --ledger sqlite:///ledger.db --catalogue prices.csv
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from include.economics import ledger
from include.economics.bill_reconciliation import class_costs, tier_tokens
from include.economics.prices import PriceBook

OPENAI = ("/v1/organization/usage/completions", "/v1/organization/costs")
ANTHROPIC = ("/v1/organizations/usage_report/messages", "/v1/organizations/cost_report")


def usage_of(engine: sa.engine.Engine, book: PriceBook, day: date) -> list[dict]:
    """Per model: its requests' token sums and what each class costs, each request at its
    own tier (as the providers bill)."""
    logs = ledger.ai_usage_logs.c
    start = datetime.combine(day, time.min)
    query = (
        sa.select(logs.model_name, sa.func.count().label("requests"))
        .where(logs.created_at >= start, logs.created_at < start + timedelta(days=1))
        .group_by(logs.model_name)
    )
    with engine.connect() as connection:
        requests = {row.model_name: int(row.requests) for row in connection.execute(query)}
    tiers = tier_tokens(engine, book, day)
    costs = class_costs(tiers, book, day)
    usage = {}
    for row in tiers:
        model = usage.setdefault(
            row["model_name"], {"model_name": row["model_name"], "input": 0, "cached": 0, "output": 0}
        )
        model["input"] += int(row["input_tokens"] or 0)
        model["cached"] += int(row["cached_input_tokens"] or 0)
        model["output"] += int(row["output_tokens"] or 0)
    return [u | {"requests": requests[m], "cost": costs[m]} for m, u in sorted(usage.items()) if m in costs]


def _bucket(day: date, results: list[dict], *, openai: bool) -> dict:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    if openai:
        window = {"object": "bucket", "start_time": int(start.timestamp()), "end_time": int(start.timestamp()) + 86400}
        return {"object": "page", "data": [window | {"results": results}], "has_more": False, "next_page": None}
    window = {"starting_at": start.isoformat(), "ending_at": (start + timedelta(days=1)).isoformat()}
    return {"data": [window | {"results": results}], "has_more": False, "next_page": None}


def answer(path: str, day: date, engine, book: PriceBook) -> dict:
    openai = path in OPENAI
    usage = [
        row
        for row in usage_of(engine, book, day)
        if row["model_name"].startswith(("gpt-", "text-embedding-") if openai else ("claude-",))
    ]
    results = []
    for row in usage:
        model, price = row["model_name"], row["cost"]
        if path == OPENAI[0]:
            results.append(
                {
                    "object": "organization.usage.completions.result",
                    "model": model,
                    "project_id": "proj_app",
                    "input_tokens": int(row["input"]),
                    "input_cached_tokens": int(row["cached"]),
                    "output_tokens": int(row["output"]),
                    "num_model_requests": int(row["requests"]),
                }
            )
        elif path == OPENAI[1]:
            for what, amount in (
                ("input", price["input"]),
                ("cached input", price["cached"]),
                ("output", price["output"]),
            ):
                results.append(
                    {
                        "object": "organization.costs.result",
                        "amount": {"value": float(amount), "currency": "usd"},
                        "line_item": f"{model}, {what}",
                        "project_id": "proj_app",
                    }
                )
        elif path == ANTHROPIC[0]:
            results.append(
                {
                    "model": model,
                    "workspace_id": "wrkspc_app",
                    "uncached_input_tokens": int(row["input"]) - int(row["cached"]),
                    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                    "cache_read_input_tokens": int(row["cached"]),
                    "output_tokens": int(row["output"]),
                }
            )
        else:
            for token_type, what in (
                ("uncached_input_tokens", "input"),
                ("cache_read_input_tokens", "cached"),
                ("output_tokens", "output"),
            ):
                results.append(
                    {
                        "currency": "USD",
                        "amount": str(price[what] * 100),
                        "workspace_id": "wrkspc_app",
                        "cost_type": "tokens",
                        "model": model,
                        "token_type": token_type,
                    }
                )
    return _bucket(day, results, openai=openai)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--catalogue", required=True)
    args = parser.parse_args()
    engine, book, key = (
        sa.create_engine(args.ledger),
        PriceBook.from_csv(args.catalogue),
        os.environ["BP_PROVIDER_BILLS_KEY"],
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            given = self.headers.get("x-api-key") or self.headers.get("Authorization", "").removeprefix("Bearer ")
            if given != key:
                self.send_response(401)
                self.end_headers()
                return
            if url.path in OPENAI:
                day = datetime.fromtimestamp(int(query["start_time"][0]), UTC).date()
            elif url.path in ANTHROPIC:
                day = date.fromisoformat(query["starting_at"][0][:10])
            else:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps(answer(url.path, day, engine, book)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
