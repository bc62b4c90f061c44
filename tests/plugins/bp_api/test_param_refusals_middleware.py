"""The api-server middleware rewrites only a refused trigger's detail."""

from __future__ import annotations

import pytest
from bp_api.param_refusals import OneLineParamRefusals
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

REFUSAL = (
    "Invalid input for param fleet_slug: 'Bad Slug' does not match '^(?![\\s\\S]*\\n)(?:[a-z]+)$'\n\n"
    "Failed validating 'pattern' in schema:\n    {'type': 'string', 'title': 'Fleet slug',\n"
    "     'description_md': 'The fleet, e.g. `gpu-default`.'}\n\nOn instance:\n    'Bad Slug'"
)


@pytest.fixture(scope="module")
def client():
    app = FastAPI()

    @app.post("/api/v2/dags/{dag_id}/dagRuns")
    def trigger(dag_id: str):
        if dag_id == "refused":
            raise HTTPException(400, REFUSAL)
        if dag_id == "other":
            raise HTTPException(400, "DAG with dag_id: 'other' has import errors\nsecond line")
        return {"dag_id": dag_id}

    @app.get("/api/v2/dags/{dag_id}/dagRuns")
    def runs(dag_id: str):
        raise HTTPException(400, REFUSAL)

    app.add_middleware(OneLineParamRefusals)
    return TestClient(app)


def test_a_refused_param_comes_back_as_one_line(client):
    answer = client.post("/api/v2/dags/refused/dagRuns", json={})

    assert answer.status_code == 400
    assert answer.json() == {
        "detail": "Invalid input for param fleet_slug: 'Bad Slug' does not match the pattern ^[a-z]+$ "
        "(The fleet, e.g. `gpu-default`.)"
    }
    assert int(answer.headers["content-length"]) == len(answer.content)


def test_other_answers_pass_untouched(client):
    assert client.post("/api/v2/dags/fine/dagRuns", json={}).json() == {"dag_id": "fine"}
    assert client.post("/api/v2/dags/other/dagRuns", json={}).json()["detail"].endswith("\nsecond line")
    assert "Failed validating" in client.get("/api/v2/dags/refused/dagRuns").json()["detail"]
