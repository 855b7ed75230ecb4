"""Who sees a person's inputs where (docs/privacy.md#who-sees-the-sealed-part): every route that
returns record content × every role × two backend keys (the one that made the decision and
another), on SQLite and PostgreSQL.

``ROWS`` is the table: a route of the API or the desk that is in neither ``ROWS`` nor
``NO_RECORD_CONTENT`` fails the test, and the table in the privacy page is this table,
rendered (``RATIONALE_WRITE_SIGHT_TABLE=1`` writes it anew)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from app.access.principals import key_id
from app.main import create_app
from tests.contract import ContractClient
from tests.helpers import (
    API_KEYS,
    KEYS,
    REPO,
    fresh_postgres_database,
    instances,
    make_settings,
    unique_id,
)
from tests.ledger.support import BACKENDS

MODEL = "recidivism"
OTHER_BACKEND = "second-backend-key-0123456789ab"
SECRETS = {
    "backend": KEYS["backend"],
    "other backend": OTHER_BACKEND,
    "support": KEYS["support"],
    "auditor": KEYS["auditor"],
    "admin": KEYS["admin"],
}
"""The readers: ``backend`` made every decision read here, ``other backend`` made none."""
READERS = tuple(SECRETS)
INSTANCE = instances(MODEL, 1)[0] | {"age": 67.0, "priors_count": 13.0}
"""The person's inputs: 67 years old, 13 offences on record (words a report prints)."""
PRIVACY = REPO / "docs" / "privacy.md"
BEGIN = "<!-- sight table: generated from tests/records/test_sight.py -->"
END = "<!-- end of sight table -->"

CLEAR = "clear"
"""The answer holds the person's inputs in clear."""
WITHHELD = "withheld"
"""The record, its sealed part withheld (``input`` null)."""
NONE = "none"
"""An answer about the record that holds none of the person's inputs."""
NO_DESK = "no desk"
"""Backend keys cannot sign in to the desk."""
WORDS = {
    CLEAR: "**inputs in clear**",
    WITHHELD: "withheld",
    NONE: "no inputs",
    "403": "403",
    "404": "404",
    NO_DESK: "cannot sign in",
}


@dataclass
class World:
    """The app, the records read, and a desk session per desk role."""

    client: TestClient
    record_id: str
    decision_id: str
    subject_id: str
    report_id: str
    batch_id: str
    sessions: dict[str, tuple[str, str]]
    """Role → (session cookie, form token)."""

    def path(self, template: str) -> str:
        return (
            template.replace("{record_id}", self.record_id)
            .replace("{decision_id}", self.decision_id)
            .replace("{subject_id}", self.subject_id)
            .replace("{report_id}", self.report_id)
            .replace("{batch_id}", self.batch_id)
        )


@dataclass(frozen=True)
class Row:
    """A route, what it returns, and what each reader sees there."""

    method: str
    template: str
    what: str
    cells: dict[str, str]
    params: dict[str, str] | None = None
    body: Any = None
    """The JSON body of an API call, or the form fields of a desk call."""
    issues: bool = False
    """An issued report: read back by its issuer (what the issuer gets to see)."""


def cells(backend: str, other: str, support: str, auditor: str, admin: str) -> dict[str, str]:
    return dict(zip(READERS, (backend, other, support, auditor, admin), strict=True))


OPEN_TO_READERS = cells(WITHHELD, WITHHELD, CLEAR, CLEAR, CLEAR)
AUDIT_ONLY = cells("403", "403", "403", CLEAR, CLEAR)
REPORTS = cells("403", "403", CLEAR, CLEAR, CLEAR)
DESK = cells(NO_DESK, NO_DESK, CLEAR, CLEAR, CLEAR)
TEXT = {"format": "text", "lang": "en"}
BATCH_RECORDS = cells(WITHHELD, "404", "403", "403", CLEAR)

ROWS: list[Row] = [
    Row("GET", "/v1/explanations/{record_id}", "the record", OPEN_TO_READERS),
    Row("GET", "/v1/decisions/{decision_id}", "the record", OPEN_TO_READERS),
    Row("GET", "/v1/explanations", "a query's page", AUDIT_ONLY, {"model": MODEL, "limit": "1000"}),
    Row(
        "GET", "/v1/explanations/export", "an export (JSONL, CSV)", AUDIT_ONLY,
        {"format": "csv", "model": MODEL},
    ),
    Row(
        "POST", "/v1/explanations/{record_id}/replay", "the replay's comparison",
        cells("403", "403", "403", NONE, NONE),
    ),
    Row(
        "GET", "/v1/explanations/{record_id}/report", "a report preview", REPORTS,
        {"format": "text"},
    ),
    Row("GET", "/v1/explanations/{record_id}/plot.png", "the chart (the person's values)", REPORTS),
    Row(
        "POST", "/v1/explanations/{record_id}/reports", "a report issued, read back by its issuer",
        cells(CLEAR, "404", CLEAR, "403", CLEAR), body=TEXT, issues=True,
    ),
    Row("GET", "/v1/reports/{report_id}", "an issued report", cells(CLEAR, "404", *[CLEAR] * 3)),
    Row(
        "POST", "/v1/explanations/{record_id}/reviews", "the review saved",
        cells("403", "403", NONE, "403", NONE), body={"outcome": "upheld"},
    ),
    Row(
        "POST", "/v1/explanations/{record_id}/review-requests", "the review request saved",
        cells(NONE, NONE, NONE, "403", NONE), body={"note": "again"},
    ),
    Row("GET", "/v1/reviews", "the review feed", cells(NONE, NONE, NONE, NONE, NONE)),
    Row(
        "POST", "/v1/decisions/{decision_id}/actual-outcome", "the outcome saved",
        cells(NONE, NONE, "403", "403", NONE), body={"actual": "no"},
    ),
    Row("GET", "/v1/subjects/{subject_id}/decisions", "a person's decisions", REPORTS),
    Row(
        "GET", "/v1/batches/{batch_id}", "a batch's status and failures",
        cells(NONE, "404", "403", "403", NONE),
    ),
    Row("GET", "/v1/batches/{batch_id}/results", "a batch's records", BATCH_RECORDS),
    Row(
        "GET", "/v1/batches/{batch_id}/results/export", "a batch's records (JSONL, CSV)",
        BATCH_RECORDS, {"format": "jsonl"},
    ),
    Row("GET", "/ui/decisions/{decision_id}", "the desk's decision page", DESK),
    Row("GET", "/ui/decisions/{decision_id}/chart.png", "the desk's chart", DESK),
    Row("GET", "/ui/decisions/{decision_id}/report.pdf", "the desk's PDF preview", DESK),
    Row(
        "POST", "/ui/decisions/{decision_id}/issue", "a report issued at the desk, then shown",
        cells(NO_DESK, NO_DESK, CLEAR, "403", CLEAR), body={"format": "html"},
    ),
    Row("GET", "/ui/reports/{report_id}", "an issued report at the desk", DESK),
    Row(
        "POST", "/ui/subjects", "the desk's list of a person's decisions",
        cells(NO_DESK, NO_DESK, NONE, NONE, NONE), body={"subject_id": "{subject_id}"},
    ),
    Row(
        "GET", "/ui/decisions/{decision_id}/access-log", "who read the record",
        cells(NO_DESK, NO_DESK, "403", NONE, NONE),
    ),
]  # fmt: skip


def call(world: World, row: Row, reader: str) -> httpx.Response:
    """The row's request as the reader makes it."""
    if row.template.startswith("/ui"):
        return desk(world, row, reader)
    response = world.client.request(
        row.method, world.path(row.template), params=row.params, json=row.body,
        headers=bearer(reader),
    )  # fmt: skip
    if row.issues and response.status_code == 201:
        report = response.json()["report_id"]
        return world.client.get(f"/v1/reports/{report}", headers=bearer(reader))
    return response


def desk(world: World, row: Row, reader: str) -> httpx.Response:
    """A desk page in the reader's session (a redirect followed)."""
    if reader not in world.sessions:
        return signed_in_refused(world, reader)
    cookie, csrf = world.sessions[reader]
    headers = {"Cookie": f"rationale_session={cookie}"}
    data = None
    if row.body is not None:
        data = {"csrf": csrf} | {k: world.path(v) for k, v in row.body.items()}
    # Pages, not operations of the OpenAPI document: a plain client's request.
    response = TestClient.request(
        world.client, row.method, world.path(row.template), data=data, headers=headers,
        follow_redirects=False,
    )  # fmt: skip
    if response.status_code == 303:
        location = response.headers["location"]
        response = TestClient.request(world.client, "GET", location, headers=headers)
    return response


NO_RECORD_CONTENT: dict[tuple[str, str], str] = {
    ("POST", "/v1/decisions/{decision_id}/links"): "the link's url, id and expiry",
    ("DELETE", "/v1/links/{link_id}"): "the revoked link's id",
    ("GET", "/ui/requests"): "open review requests and their reasons (support, admin; no inputs)",
    ("GET", "/healthz"): "health",
    ("GET", "/readyz"): "health",
    ("GET", "/metrics"): "counts",
    ("GET", "/v1/models"): "model cards",
    ("POST", "/v1/models"): "a model upload",
    ("POST", "/v1/models/reload"): "the catalog",
    ("GET", "/v1/models/{name}"): "a model card",
    ("GET", "/v1/models/{name}/versions/{version}"): "a model card",
    ("POST", "/v1/explanations"): "the record of the caller's own request, as just sent",
    ("GET", "/v1/audit/verify"): "chain positions and hashes",
    ("GET", "/v1/audit/access-log"): "record ids and filters, no content",
    ("GET", "/v1/audit/checkpoint"): "a signed tree head",
    ("GET", "/v1/audit/public-key"): "a public key",
    ("GET", "/v1/audit/checkpoints"): "signed tree heads",
    ("GET", "/v1/audit/proof/inclusion"): "hashes",
    ("GET", "/v1/audit/proof/consistency"): "hashes",
    ("GET", "/v1/audit/fairness"): "figures over groups, small groups withheld",
    ("GET", "/v1/models/{name}/impact"): "figures over time",
    ("GET", "/v1/models/{name}/impact.png"): "figures over time",
    ("DELETE", "/v1/subjects/{subject_id}"): "counts of what was erased",
    ("DELETE", "/v1/decisions/{decision_id}/personal-data"): "counts of what was erased",
    ("POST", "/v1/batches"): "the batch's id",
    ("GET", "/ui"): "the search form",
    ("POST", "/ui/sign-in"): "a redirect",
    ("POST", "/ui/sign-out"): "a redirect",
    ("POST", "/ui/lang"): "a redirect",
    ("GET", "/ui/decision"): "a redirect to the decision page",
    ("POST", "/ui/decisions/{decision_id}/reviews"): "a redirect to the decision page",
    ("POST", "/ui/decisions/{decision_id}/review-requests"): "a redirect to the decision page",
    ("GET", "/ui/audit"): "the chain's status",
    ("GET", "/ui/audit/checkpoint"): "a signed tree head",
    ("GET", "/ui/static/desk.css"): "the stylesheet",
    ("GET", "/ui/fonts/ipaexg.ttf"): "a font",
    ("GET", "/ui/audit/fairness"): "figures over groups",
    ("GET", "/ui/audit/fairness.png"): "figures over groups",
    ("GET", "/ui/audit/impact"): "figures over time",
    ("GET", "/ui/audit/impact.png"): "figures over time",
    ("GET", "/ui/models/{name}"): "a model card",
}


# -- the world --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    keys = f"{API_KEYS},{OTHER_BACKEND}:backend"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sight') / 'rationale.db'}"
        with ContractClient(create_app(make_settings(url, api_keys=keys))) as client:
            yield build(client)
        return
    with (
        fresh_postgres_database() as url,
        ContractClient(create_app(make_settings(url, api_keys=keys))) as client,
    ):
        yield build(client)


def bearer(reader: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[reader]}"}


def build(client: TestClient) -> World:
    """A decision, its report and a batch, all made by ``backend``; a review on the decision;
    a desk session per desk role."""
    subject_id = unique_id("person")
    made = client.post(
        "/v1/explanations",
        json={
            "model": MODEL,
            "decision_id": unique_id("seal"),
            "subject_id": subject_id,
            "instance": INSTANCE,
        },
        headers=bearer("backend"),
    )
    assert made.status_code == 201, made.text
    record = made.json()
    report = client.post(
        f"/v1/explanations/{record['id']}/reports", json=TEXT, headers=bearer("backend")
    )
    assert report.status_code == 201, report.text
    review = client.post(
        f"/v1/explanations/{record['id']}/reviews",
        json={"outcome": "upheld", "note": "checked"},
        headers=bearer("support"),
    )
    assert review.status_code == 201, review.text
    batch = client.post(
        "/v1/batches",
        json={
            "model": MODEL,
            "items": [{"decision_id": unique_id("seal-b"), "instance": INSTANCE}],
        },
        headers=bearer("backend"),
    )
    assert batch.status_code == 202, batch.text
    batch_id = batch.json()["id"]
    deadline = time.monotonic() + 120
    while (
        client.get(f"/v1/batches/{batch_id}", headers=bearer("backend")).json()["status"] != "done"
    ):
        assert time.monotonic() < deadline, "the batch did not finish"
        time.sleep(0.05)
    sessions = {role: sign_in(client, SECRETS[role]) for role in ("support", "auditor", "admin")}
    return World(
        client, record["id"], record["decision_id"], subject_id, report.json()["report_id"],
        batch_id, sessions,
    )  # fmt: skip


def sign_in(client: TestClient, secret: str) -> tuple[str, str]:
    """A desk session for a key: (session cookie, the session's form token)."""
    client.cookies.clear()
    client.get("/ui")
    response = client.post(
        "/ui/sign-in",
        data={"key": secret, "csrf": client.cookies["rationale_form"]},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    cookie = response.cookies["rationale_session"]
    client.cookies.clear()
    page = client.get("/ui", headers={"Cookie": f"rationale_session={cookie}"})
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    return cookie, match.group(1)


def signed_in_refused(world: World, reader: str) -> httpx.Response:
    """A backend key at the desk: its sign-in is refused."""
    client = world.client
    client.cookies.clear()
    client.get("/ui")
    data = {"key": SECRETS[reader], "csrf": client.cookies["rationale_form"]}
    response = TestClient.request(client, "POST", "/ui/sign-in", data=data)
    client.cookies.clear()
    assert response.status_code == 403 and "rationale_session" not in response.cookies
    return response


# -- what an answer shows -----------------------------------------------------------------


def _inputs(value: Any) -> Iterator[Any]:
    """Every ``input`` member of a JSON document, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "input":
                yield item
            yield from _inputs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _inputs(item)


def _json_sight(documents: list[Any]) -> str:
    found = [i for d in documents for i in _inputs(d)]
    if any(i == INSTANCE for i in found):
        return CLEAR
    assert all(i is None for i in found), found
    return WITHHELD if found else NONE


def _words_sight(text: str) -> str:
    shown = "67 years" in text and "13 offences" in text
    return CLEAR if shown else NONE


def shown(response: httpx.Response, reader: str) -> str:
    """What the answer shows of the person: one of the table's words."""
    if response.status_code in (403, 404):
        if reader in ("backend", "other backend") and "/sign-in" in str(response.request.url):
            return NO_DESK
        return str(response.status_code)
    if response.status_code == 409 and response.json().get("reason") == "request_open":
        # one open request per decision: a later reader's request is refused, naming none
        # of the person's data (the world shares one decision between the readers)
        assert _json_sight([response.json()]) == NONE, response.text
        return NONE
    assert response.status_code in (200, 201), (response.status_code, response.text[:500])
    media = response.headers["content-type"].split(";")[0]
    if media == "application/json":
        return _json_sight([response.json()])
    if media == "application/x-ndjson":
        return _json_sight([json.loads(line) for line in response.text.splitlines() if line])
    if media == "text/csv":
        rows = list(csv.DictReader(io.StringIO(response.text)))
        return _json_sight(
            [{"input": json.loads(r["input"]) if r["input"] else None} for r in rows]
        )
    if media == "image/png":
        assert response.content.startswith(b"\x89PNG")
        return CLEAR  # drawn from the opened record: each bar names the person's value
    if media == "application/pdf":
        from pypdf import PdfReader

        pdf = PdfReader(io.BytesIO(response.content))
        return _words_sight(" ".join(page.extract_text() for page in pdf.pages))
    assert media in ("text/html", "text/plain"), media
    return _words_sight(response.text)


def reads_logged(world: World, reader: str) -> int:
    """How many access records the reader's key has."""
    response = world.client.get(
        "/v1/audit/access-log",
        params={"principal": key_id(SECRETS[reader]), "limit": "1000"},
        headers=bearer("auditor"),
    )
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("row", ROWS, ids=[f"{r.method} {r.template}" for r in ROWS])
def test_who_sees_the_inputs_where(world: World, row: Row, reader: str) -> None:
    before = reads_logged(world, reader)
    seen = shown(call(world, row, reader), reader)
    assert seen == row.cells[reader], (row.method, row.template, reader, seen)
    if seen == CLEAR:
        assert reads_logged(world, reader) > before, "a read that showed the inputs was not logged"


def test_another_keys_report_is_the_404_of_no_record(world: World) -> None:
    """The 404 another backend key gets is the very problem of a record that does not exist."""
    client = world.client

    def problem(path: str, body: Any = None) -> dict[str, Any]:
        method = "POST" if body is not None else "GET"
        response = client.request(method, path, json=body, headers=bearer("other backend"))
        assert response.status_code == 404, response.text
        found: dict[str, Any] = response.json()
        found.pop("request_id", None)
        return found

    absent = "00000000-0000-4000-8000-000000000000"
    assert problem(f"/v1/explanations/{world.record_id}/reports", TEXT) == problem(
        f"/v1/explanations/{absent}/reports", TEXT
    )
    assert problem(f"/v1/reports/{world.report_id}") == problem(f"/v1/reports/{absent}")


def _api_and_desk_routes(client: TestClient) -> set[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        path = route.path_format or ""
        if path.startswith(("/v1", "/ui", "/healthz", "/readyz", "/metrics")):
            found |= {(m, path) for m in (route.methods or ()) if m != "HEAD"}
    return found


def test_every_route_is_in_the_table(world: World) -> None:
    routes = _api_and_desk_routes(world.client)
    assert len(routes) > 50, sorted(routes)  # the enumeration itself works
    tabled = {(r.method, r.template) for r in ROWS}
    assert not tabled & set(NO_RECORD_CONTENT), tabled & set(NO_RECORD_CONTENT)
    missing = sorted(routes - tabled - set(NO_RECORD_CONTENT))
    assert not missing, (
        "add these routes to ROWS (or, if they return no record content, to NO_RECORD_CONTENT) "
        f"in tests/records/test_sight.py: {missing}"
    )
    assert not (tabled | set(NO_RECORD_CONTENT)) - routes, "rows for routes that do not exist"


def markdown() -> str:
    """The table as the privacy page shows it."""
    head = "| route | what it returns | " + " | ".join(READERS) + " |"
    rule = "|---|---|" + "---|" * len(READERS)
    lines = [head, rule]
    for row in ROWS:
        words = " | ".join(WORDS[row.cells[r]] for r in READERS)
        lines.append(f"| `{row.method} {row.template}` | {row.what} | {words} |")
    return "\n".join([BEGIN, *lines, END])


def test_the_privacy_page_shows_this_table() -> None:
    text = PRIVACY.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    if os.environ.get("RATIONALE_WRITE_SIGHT_TABLE"):
        PRIVACY.write_text(text[:start] + markdown() + text[end:])
        text = PRIVACY.read_text()
        start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == markdown(), (
        "docs/privacy.md's table differs from tests/records/test_sight.py's ROWS: "
        "RATIONALE_WRITE_SIGHT_TABLE=1 .venv/bin/pytest tests/records/test_sight.py "
        "-k privacy writes it anew"
    )
