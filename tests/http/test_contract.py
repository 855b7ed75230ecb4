"""The API contract: strict request types, bounded problems, no reachable 500, typed
responses that match the OpenAPI document, and routing that does not depend on order."""

from __future__ import annotations

import json
import keyword
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.explanations.schemas import MAX_FEATURES, ExplanationRecord
from app.http import problems
from app.http.schemas import Problem
from app.main import create_app
from tests.contract import ContractClient, check_response
from tests.helpers import auth, instances, make_settings, unique_id
from tests.ledger.support import app_client

ROW = instances("credit-risk", 1)[0]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(tmp_path_factory.mktemp("contract")) as test_client:
        yield test_client


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "credit-risk",
        "decision_id": unique_id(),
        "instance": dict(ROW),
    }
    base.update(changes)
    return base


def post_raw(client: TestClient, raw: str | bytes) -> Any:
    headers = auth("backend") | {"content-type": "application/json"}
    return client.post("/v1/explanations", content=raw, headers=headers)


def problem_of(response: Any, status: int) -> dict[str, Any]:
    """The response is a problem+json of that status that our Problem schema accepts."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    parsed = Problem.model_validate_json(response.content, strict=True)
    assert parsed.status == status
    document: dict[str, Any] = response.json()
    return document


def fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem.get("errors") or []]


# -- one parse, strict types -------------------------------------------------------------

STRICT_CASES = [
    ("top_k as a string", {"options": {"top_k": "3"}}, "options.top_k"),
    ("top_k as a bool", {"options": {"top_k": True}}, "options.top_k"),
    ("top_k as a float", {"options": {"top_k": 3.0}}, "options.top_k"),
    ("seed as a string", {"options": {"seed": "1"}}, "options.seed"),
    ("version as a number", {"version": 1}, "version"),
    ("decision id as a number", {"decision_id": 42}, "decision_id"),
    ("method as a list", {"method": ["auto"]}, "method"),
    ("options as a string", {"options": "top_k=3"}, "options"),
]


@pytest.mark.parametrize(
    ("case", "change", "field"), STRICT_CASES, ids=[c[0] for c in STRICT_CASES]
)
def test_a_json_type_is_never_coerced(
    client: TestClient, case: str, change: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/explanations", json=body(**change), headers=auth("backend"))
    assert field in fields(problem_of(response, 422)), case


def test_the_validated_options_are_the_ones_used(client: TestClient) -> None:
    payload = body(options={"top_k": 3, "seed": 5})
    response = client.post("/v1/explanations", json=payload, headers=auth("backend"))
    assert response.status_code == 201, response.text
    explanation = response.json()["explanation"]
    assert explanation["seed"] == 5 and explanation["parameters"]["top_k"] == 3
    retry = client.post("/v1/explanations", json=payload, headers=auth("backend"))
    assert retry.status_code == 200 and retry.json()["id"] == response.json()["id"]
    changed = client.post(
        "/v1/explanations",
        json=payload | {"options": {"top_k": 2, "seed": 5}},
        headers=auth("backend"),
    )
    assert problem_of(changed, 409)["record_id"] == response.json()["id"]


# -- bounded problems ----------------------------------------------------------------------


def test_forty_thousand_unknown_keys_get_a_small_answer(client: TestClient) -> None:
    instance = dict(ROW) | {f"k{i}": i for i in range(40_000)}
    response = client.post(
        "/v1/explanations", json=body(instance=instance), headers=auth("backend")
    )
    problem = problem_of(response, 422)
    assert len(response.content) < 2_000, len(response.content)
    assert fields(problem) == ["instance"]
    assert (
        "40" in problem["errors"][0]["message"]
        and str(MAX_FEATURES) in problem["errors"][0]["message"]
    )


def test_at_most_twenty_errors_are_listed_then_a_count(client: TestClient) -> None:
    instance = dict(ROW) | {f"extra_{i:03d}": 1 for i in range(100)}
    response = client.post(
        "/v1/explanations", json=body(instance=instance), headers=auth("backend")
    )
    problem = problem_of(response, 422)
    assert len(problem["errors"]) == problems.MAX_ERRORS
    assert problem["errors_omitted"] == 100 - problems.MAX_ERRORS
    assert all(f.startswith("instance.extra_") for f in fields(problem))


def test_long_submitted_strings_are_cut_in_messages(client: TestClient) -> None:
    category = "y" * 50_000
    response = client.post(
        "/v1/explanations",
        json=body(instance=dict(ROW) | {"purpose": category}),
        headers=auth("backend"),
    )
    problem = problem_of(response, 422)
    (message,) = [e["message"] for e in problem["errors"] if e["field"] == "instance.purpose"]
    assert "yyyy" in message and len(message) <= problems.MAX_DETAIL + 40
    assert len(response.content) < 3_000


# -- reachable 500s, closed ----------------------------------------------------------------

SURROGATE = "\\ud800"  # a lone surrogate, as a JSON escape (json.loads accepts it)


SURROGATE_CASES = [
    ("instance key", '"instance": {{{row}, "{s}": 1}}', "instance."),
    (
        "instance value",
        '"instance": {{{row_without_purpose}, "purpose": "{s}"}}',
        "instance.purpose",
    ),
    ("model name", '"model": "credit{s}", "instance": {{{row}}}', "model"),
    ("decision id", '"decision_id": "{s}", "instance": {{{row}}}', "decision_id"),
]


@pytest.mark.parametrize(
    ("case", "template", "field"), SURROGATE_CASES, ids=[c[0] for c in SURROGATE_CASES]
)
def test_a_lone_surrogate_gets_a_422_that_encodes(
    client: TestClient, case: str, template: str, field: str
) -> None:
    row = json.dumps(ROW)[1:-1]
    without = json.dumps({k: v for k, v in ROW.items() if k != "purpose"})[1:-1]
    members = template.format(row=row, row_without_purpose=without, s=SURROGATE)
    if '"model"' not in members:
        members = '"model": "credit-risk", ' + members
    if '"decision_id"' not in members:
        members += f', "decision_id": "{unique_id()}"'
    response = post_raw(client, "{" + members + "}")
    problem = problem_of(response, 422)
    assert any(f.startswith(field) for f in fields(problem)), (case, problem)
    response.content.decode("utf-8")  # strict UTF-8: the surrogate was escaped, not sent


def test_a_lone_surrogate_in_attributes_gets_a_422(client: TestClient) -> None:
    row = json.dumps(instances("recidivism", 1)[0])
    for attributes in (f'{{"{SURROGATE}": "x"}}', f'{{"race": "{SURROGATE}"}}'):
        raw = (
            f'{{"model": "recidivism", "decision_id": "{unique_id()}", "instance": {row}, '
            f'"attributes": {attributes}}}'
        )
        problem = problem_of(post_raw(client, raw), 422)
        assert all(f.startswith("attributes.") for f in fields(problem)), problem


@pytest.mark.parametrize(
    "path", ["/v1/explanations", "/v1/explanations/export", "/v1/audit/access-log"]
)
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_beyond_the_calendar_is_a_422(client: TestClient, path: str, value: str) -> None:
    response = client.get(path, params={"since": value}, headers=auth("admin"))
    assert fields(problem_of(response, 422)) == ["since"]


def test_early_years_compare_in_time_order(client: TestClient) -> None:
    record = client.post("/v1/explanations", json=body(), headers=auth("backend")).json()
    listed = client.get(
        "/v1/explanations", params={"since": "0999-01-01", "limit": 1000}, headers=auth("admin")
    )
    assert record["id"] in [r["id"] for r in listed.json()["items"]]


def test_router_404_and_405_are_problems(client: TestClient) -> None:
    missing = problem_of(client.get("/v1/nothing-here", headers=auth("admin")), 404)
    assert missing["type"] == "/problems/not-found" and missing["request_id"]
    not_uuid = client.get("/v1/explanations/not-a-record-id", headers=auth("admin"))
    problem_of(not_uuid, 404)
    wrong = client.delete("/v1/explanations", headers=auth("admin"))
    problem_of(wrong, 405)
    assert set(wrong.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_an_unexpected_fault_is_a_problem_with_a_request_id(tmp_path: Any) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'fault.db'}"))

    @app.get("/v1/fault-for-test")
    async def fault() -> None:
        raise RuntimeError("secret internals: /etc/passwd, password=hunter2")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/v1/fault-for-test")
    problem = problem_of(response, 500)
    assert problem["type"] == "/problems/internal" and len(problem["request_id"]) == 32
    assert "hunter2" not in response.text and "RuntimeError" not in response.text


def test_every_problem_carries_the_request_id_of_its_response(client: TestClient) -> None:
    response = client.get("/v1/models/no-such-model", headers=auth("admin"))
    assert problem_of(response, 404)["request_id"] == response.headers["x-request-id"]


# -- responses match the contract ----------------------------------------------------------


def test_a_sampled_explanation_has_typed_attributions_with_standard_errors(
    client: TestClient,
) -> None:
    payload = body(model="income", method="shap.permutation", instance=instances("income", 1)[0])
    response = client.post("/v1/explanations", json=payload, headers=auth("backend"))
    assert response.status_code == 201, response.text
    record = ExplanationRecord.model_validate_json(response.content, strict=True)
    assert record.explanation.exactness == "estimated"
    assert all(
        a.standard_error is not None and a.standard_error >= 0
        for a in record.explanation.attributions
    )
    read = client.get(f"/v1/explanations/{record.id}", headers=auth("support"))
    again = ExplanationRecord.model_validate_json(read.content, strict=True)
    assert again.explanation.attributions == record.explanation.attributions


def test_operation_ids_are_unique_identifiers_and_errors_are_problems(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            ids.append(operation["operationId"])
            assert operation["operationId"].isidentifier(), (path, method)
            assert not keyword.iskeyword(operation["operationId"])
            assert "500" in operation["responses"], (path, method)
            for code, response in operation["responses"].items():
                if int(code) >= 400 and path != "/readyz":
                    assert list(response["content"]) == [PROBLEM], (path, method, code)
    assert len(ids) == len(set(ids)), sorted(ids)
    create = document["paths"]["/v1/explanations"]["post"]
    assert create["operationId"] == "create" and create["tags"] == ["explanations"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_routing_does_not_depend_on_router_order(tmp_path: Any) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'order.db'}"))
    routes = list(app.router.routes)
    random.Random(4).shuffle(routes)
    routes.reverse()
    app.router.routes[:] = routes
    with TestClient(app) as test_client:
        created = test_client.post("/v1/explanations", json=body(), headers=auth("backend"))
        assert created.status_code == 201
        export = test_client.get("/v1/explanations/export", headers=auth("admin"))
        assert export.status_code == 200, export.text
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [line["id"] for line in lines] == [created.json()["id"]]
        assert (
            test_client.get(
                f"/v1/explanations/{created.json()['id']}", headers=auth("admin")
            ).status_code
            == 200
        )


def answer(status: int, request: httpx.Request, **content: Any) -> httpx.Response:
    response = httpx.Response(status, request=request, **content)
    response.elapsed = timedelta(0)
    return response


def test_the_suite_checks_responses_against_the_document(client: TestClient) -> None:
    """The fixture's client validates every answer (tests/contract.py); it can fail."""
    assert isinstance(client, ContractClient)
    app = client.app
    request = httpx.Request("GET", "http://testserver/v1/models")
    good = client.get("/v1/models", headers=auth("auditor"))
    check_response(app, answer(200, request, content=good.content, headers=good.headers))  # type: ignore[arg-type]
    bad_bodies = [
        {"items": "not a list", "next_cursor": None},
        {"items": [{"name": "m", "latest": 1, "versions": []}], "next_cursor": None},
    ]
    for bad in bad_bodies:
        wrong = answer(200, request, json=bad)
        with pytest.raises(Exception, match=r"(?i)schema"):
            check_response(app, wrong)  # type: ignore[arg-type]
    undocumented = answer(418, request, json={"a": 1})
    with pytest.raises(Exception, match=r"418"):
        check_response(app, undocumented)  # type: ignore[arg-type]
