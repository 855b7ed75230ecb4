"""Links to the person's page on SQLite and PostgreSQL (docs/person.md#links): who may issue
one, what is kept (the token's hash, never the token), the chained ``link`` record, revocation
as an ``admin_event``, erasure revoking a person's links, and a chain that verifies after all
of it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.access.principals import Role, key_id, parse_api_keys
from app.access.service import create_key
from app.ledger.tables import links, metadata, records
from app.main import create_app
from tests.contract import ContractClient
from tests.helpers import (
    API_KEYS,
    KEYS,
    auth,
    fresh_postgres_database,
    instances,
    make_settings,
    unique_id,
)
from tests.ledger.support import BACKENDS

MODEL = "recidivism"
OTHER_BACKEND = "second-backend-key-0123456789"


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    def build(url: str) -> ContractClient:
        settings = make_settings(
            url,
            api_keys=f"{API_KEYS},{OTHER_BACKEND}:backend",
            checkpoint_every_records=0,
            checkpoint_every_seconds=0,
        )
        return ContractClient(create_app(settings))

    if request.param == "sqlite":
        with build(f"sqlite:///{tmp_path_factory.mktemp('links') / 'rationale.db'}") as made:
            yield made
        return
    with fresh_postgres_database() as url, build(url) as made:
        yield made


def _explain(client: TestClient, subject: str | None = None, key: str = "backend") -> str:
    body: dict[str, Any] = {
        "model": MODEL,
        "decision_id": unique_id(),
        "instance": instances(MODEL, 1)[0],
    }
    if subject is not None:
        body["subject_id"] = subject
    headers = auth(key) if key in KEYS else {"Authorization": f"Bearer {key}"}
    response = client.post("/v1/explanations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(body["decision_id"])


def _link(client: TestClient, decision_id: str, role: str = "backend", **body: Any) -> Any:
    return client.post(f"/v1/decisions/{decision_id}/links", json=body, headers=auth(role))


def _token(url: str) -> str:
    return url.rsplit("/p/", 1)[1]


def _page(client: TestClient, url: str) -> Any:
    """A GET of the person's page (an HTML page, outside the API document's contract)."""
    return TestClient.request(client, "GET", f"/p/{_token(url)}")


def _records(client: TestClient, record_type: str) -> list[dict[str, Any]]:
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(records.c.document).where(records.c.type == record_type).order_by(records.c.seq)
        ).all()
    return [json.loads(bytes(row.document)) for row in rows]


def _everything_stored(client: TestClient) -> str:
    """Every row of every table, as text (documents decoded)."""
    ctx = client.app.state.context  # type: ignore[attr-defined]
    parts = []
    with ctx.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(
                    " ".join(
                        bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v)
                        for v in row
                    )
                )
    return "\n".join(parts)


def test_a_link_is_issued_once_and_only_its_hash_is_kept(client: TestClient) -> None:
    decision = _explain(client, unique_id("person"))
    before = datetime.now(UTC)
    issued = _link(client, decision, expires_in_days=7)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert set(body) == {"url", "link_id", "expires_at"}
    assert body["url"].startswith("http://testserver/p/")
    token = _token(body["url"])
    assert len(token) >= 43 and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )  # 256 random bits, URL-safe
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(expires - (before + timedelta(days=7))) < timedelta(minutes=1)

    stored = _everything_stored(client)
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.connect() as conn:
        row = conn.execute(select(links).where(links.c.id == body["link_id"])).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.revoked_at is None and row.key_id == key_id(KEYS["backend"])

    (record,) = [d for d in _records(client, "link") if d["clear"]["link_id"] == body["link_id"]]
    explanation = client.get(f"/v1/decisions/{decision}", headers=auth("backend")).json()
    assert record["clear"] == {
        "link_id": body["link_id"],
        "target_id": explanation["id"],
        "issuer_key_id": key_id(KEYS["backend"]),
        "expires_at": body["expires_at"],
    }
    assert record["key_id"] == key_id(KEYS["backend"]) and record["role"] == "backend"
    assert record["sealed"] is None

    second = _link(client, decision)
    assert second.status_code == 201
    assert _token(second.json()["url"]) != token  # every link its own token
    default = datetime.strptime(second.json()["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(default.replace(tzinfo=UTC) - (datetime.now(UTC) + timedelta(days=30))) < timedelta(
        minutes=1
    )


def test_who_may_link_which_decision(client: TestClient) -> None:
    mine = _explain(client)
    theirs = _explain(client, key=OTHER_BACKEND)
    missing = _link(client, "no-such-decision")
    foreign = _link(client, theirs)
    assert missing.status_code == foreign.status_code == 404
    assert missing.json()["detail"] == foreign.json()["detail"]  # as for a decision that is not
    assert _link(client, mine).status_code == 201
    assert _link(client, theirs, "support").status_code == 201
    assert _link(client, theirs, "admin").status_code == 201
    refused = _link(client, mine, "auditor")
    assert refused.status_code == 403 and "auditor" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 181}, "expires_in_days"),
        ({"expires_in_days": "30"}, "expires_in_days"),
        ({"expires_in_days": 3.5}, "expires_in_days"),
        ({"expires_in_days": 30, "token": "mine"}, "token"),
    ],
)
def test_bad_link_requests_name_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    decision = _explain(client)
    response = _link(client, decision, **body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_the_longest_link_and_no_body_at_all(client: TestClient) -> None:
    decision = _explain(client)
    assert _link(client, decision, expires_in_days=180).status_code == 201
    bare = client.post(f"/v1/decisions/{decision}/links", headers=auth("support"))
    assert bare.status_code == 201, bare.text


def test_revoking_is_an_admin_event_and_says_the_same_twice(client: TestClient) -> None:
    decision = _explain(client)
    link = _link(client, decision).json()
    first = client.delete(f"/v1/links/{link['link_id']}", headers=auth("backend"))
    assert first.status_code == 200, first.text
    again = client.delete(f"/v1/links/{link['link_id']}", headers=auth("support"))
    assert again.status_code == 200 and again.json() == first.json()
    events = [
        d
        for d in _records(client, "admin_event")
        if d["clear"].get("event") == "link_revoked" and d["clear"]["link_id"] == link["link_id"]
    ]
    assert len(events) == 1  # the second call appended nothing
    assert events[0]["key_id"] == key_id(KEYS["backend"])
    assert _page(client, link["url"]).status_code == 404

    theirs = _link(client, _explain(client, key=OTHER_BACKEND), "support").json()
    foreign = client.delete(f"/v1/links/{theirs['link_id']}", headers=auth("backend"))
    unknown = client.delete("/v1/links/0123456789abcdef", headers=auth("backend"))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["detail"] == unknown.json()["detail"]
    malformed = client.delete("/v1/links/not-a-link", headers=auth("admin"))
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "link_id"


def test_erasing_the_person_revokes_their_links(client: TestClient) -> None:
    subject = unique_id("erased")
    decisions = [_explain(client, subject), _explain(client, subject)]
    issued = [_link(client, d).json() for d in decisions]
    untouched = _link(client, _explain(client, unique_id("kept"))).json()
    erased = client.delete(f"/v1/subjects/{subject}", headers=auth("admin"))
    assert erased.status_code == 200, erased.text
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(links))}
    assert all(rows[link["link_id"]].revoked_at is not None for link in issued)
    assert rows[untouched["link_id"]].revoked_at is None
    (event,) = [
        d for d in _records(client, "admin_event") if d["clear"].get("event") == "links_revoked"
    ]
    assert sorted(event["clear"]["links"]) == sorted(link["link_id"] for link in issued)
    assert event["clear"]["erasure_record"] == erased.json()["erasure_record"]
    for link in issued:
        assert _page(client, link["url"]).status_code == 404
    # A decision of an erased person is linked no more.
    refused = _link(client, decisions[0])
    assert refused.status_code == 409 and refused.json()["reason"] == "erased"

    anonymous = _explain(client)
    link = _link(client, anonymous).json()
    gone = client.delete(f"/v1/decisions/{anonymous}/personal-data", headers=auth("admin"))
    assert gone.status_code == 200
    with ctx.engine.connect() as conn:
        row = conn.execute(select(links).where(links.c.id == link["link_id"])).one()
    assert row.revoked_at is not None


def test_the_chain_verifies_after_links_are_issued_and_revoked(client: TestClient) -> None:
    decision = _explain(client, unique_id("chain"))
    for _ in range(3):
        link = _link(client, decision).json()
        assert (
            client.delete(f"/v1/links/{link['link_id']}", headers=auth("admin")).status_code == 200
        )
    report = client.get("/v1/audit/verify", headers=auth("auditor")).json()
    assert report["ok"], report
    ctx = client.app.state.context  # type: ignore[attr-defined]
    assert report["records_checked"] == ctx.repository.count() > 0


def test_the_url_base_is_a_setting(tmp_path_factory: pytest.TempPathFactory) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('base') / 'rationale.db'}"
    settings = make_settings(url, public_base_url="https://decisions.example.com/bank/")
    with ContractClient(create_app(settings)) as client:
        decision = _explain(client)
        body = _link(client, decision).json()
    assert body["url"].startswith("https://decisions.example.com/bank/p/")
    with pytest.raises(ValueError, match="public_base_url"):
        make_settings(url, public_base_url="javascript:alert(1)")


def test_no_key_may_carry_the_subject_role(client: TestClient) -> None:
    with pytest.raises(ValueError, match="subject"):
        parse_api_keys("a-person-secret-0123456789:subject")
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="subject"):
        create_key(ctx.repository, "a person", Role.SUBJECT)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_page_its_contest_and_its_limits_on_each_backend(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> None:
    """What the page writes (its report, access records, a contest, rate counts) on each
    backend, with small limits."""
    if backend == "sqlite":
        urls: Any = _sqlite_url(tmp_path_factory)
    else:
        urls = fresh_postgres_database()
    with urls as url:
        settings = make_settings(url, person_rate_per_token=5, person_rate_per_address=8)
        with ContractClient(create_app(settings)) as client:
            decision = _explain(client, unique_id("page"))
            issued = _link(client, decision).json()
            page = _page(client, issued["url"])
            assert page.status_code == 200 and "<h1>Your decision explained</h1>" in page.text
            token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            path = f"/p/{_token(issued['url'])}/review-requests"
            sent = TestClient.request(
                client, "POST", path, data={"csrf": token, "reason": "please"},
                follow_redirects=False,
            )  # fmt: skip
            assert sent.status_code == 303 and sent.headers["location"].endswith("asked=sent")
            again = TestClient.request(
                client, "POST", path, data={"csrf": token}, follow_redirects=False
            )
            assert again.headers["location"].endswith("asked=already#review-status")
            assert [_page(client, issued["url"]).status_code for _ in range(3)] == [200, 200, 429]
            assert _page(client, issued["url"]).headers["retry-after"]
            other = _link(client, _explain(client)).json()
            assert [_page(client, other["url"]).status_code for _ in range(2)] == [200, 429]
            (request_record,) = [
                d
                for d in _records(client, "review_request")
                if d["key_id"] == f"link:{issued['link_id']}"
            ]
            assert request_record["clear"]["source"] == "subject"
            assert len([d for d in _records(client, "report") if d["role"] == "subject"]) == 2
            verified = client.get("/v1/audit/verify", headers=auth("auditor")).json()
            assert verified["ok"], verified


@contextmanager
def _sqlite_url(factory: pytest.TempPathFactory) -> Iterator[str]:
    yield f"sqlite:///{factory.mktemp('page') / 'rationale.db'}"
