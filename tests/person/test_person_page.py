"""The person's page (docs/person.md#the-page) over the real app: what it says and in which
words, the report issued on the first view and served after, the access records under
``link:<link_id>``, the languages, the PDF, the contest and what the person sees of a review,
the one 404 page of every token that opens nothing, and the rate limits."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import textstat
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select, update

from app.ledger.tables import links, metadata, records
from app.main import create_app
from app.records.service import open_sealed
from tests.contract import ContractClient
from tests.helpers import auth, make_settings, manifest, unique_id
from tests.person.support import JAPANESE, declined_rows, english_runs_in_japanese, visible_text

MODEL = "credit-risk"
FEATURE_CODES = [f["name"] for f in manifest(MODEL)["features"] if "_" in f["name"]]
"""The feature codes that are no English word (`job` and `age` are)."""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("person")
    settings = make_settings(
        f"sqlite:///{folder / 'rationale.db'}",
        checkpoint_every_records=0,
        checkpoint_every_seconds=0,
        person_rate_per_token=10_000,
        person_rate_per_address=10_000,
    )
    with ContractClient(create_app(settings)) as made:
        yield made


def get(client: TestClient, path: str, **kwargs: Any) -> Any:
    """A request of the person's pages (HTML, outside the API document's contract)."""
    return TestClient.request(client, "GET", path, **kwargs)


def post(client: TestClient, path: str, **kwargs: Any) -> Any:
    return TestClient.request(client, "POST", path, follow_redirects=False, **kwargs)


def decide(client: TestClient, row: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "decision_id": unique_id("loan"),
        "subject_id": unique_id("applicant"),
        "instance": row or declined_rows()[0],
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made | {"subject_id": body["subject_id"]}


def link(client: TestClient, decision: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        f"/v1/decisions/{decision['decision_id']}/links", json={}, headers=auth("backend")
    )
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    issued["path"] = issued["url"].replace("http://testserver", "")
    issued["token"] = issued["path"].rsplit("/", 1)[1]
    return issued


def documents(client: TestClient, record_type: str) -> list[dict[str, Any]]:
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(records.c.document).where(records.c.type == record_type).order_by(records.c.seq)
        ).all()
    return [json.loads(bytes(r.document)) for r in rows]


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no contest form"
    return found.group(1)


@pytest.fixture(scope="module")
def declined(client: TestClient) -> dict[str, Any]:
    decision = decide(client)
    assert decision["prediction"]["label"] == "bad"
    return decision | {"link": link(client, decision)}


def test_the_page_tells_the_person_their_decision_in_plain_words(
    client: TestClient, declined: dict[str, Any]
) -> None:
    response = get(client, declined["link"]["path"], headers={"Accept-Language": "en"})
    assert response.status_code == 200, response.text
    page = response.text
    text = visible_text(page)
    assert "The decision was: declined." in text
    reasons = re.findall(r'<ol class="reasons">(.*?)</ol>', page, re.S)[0]
    assert 1 <= reasons.count("<li>") <= 4
    preview = client.get(
        f"/v1/explanations/{declined['id']}/report",
        params={"format": "json"},
        headers=auth("support"),
    ).json()
    for reason in preview["reasons"][:4]:
        assert reason["text"] in text
    assert preview["changes"]["status"] == "found"
    assert "What would change the outcome" in text and "instead of" in text
    for line in preview["changes"]["lines"]:
        assert line["text"] in text
    for detail in preview["input"]:  # the data used, in the wording files' words
        assert f"{detail['label']} {detail['value_text']}" in text
    assert "This system is a demo." in text  # what the model is for
    assert f"/p/{declined['link']['token']}/report.pdf?lang=en" in page
    assert 'action="/p/' in page and form_token(page)
    assert not [code for code in FEATURE_CODES if code in text]
    words = re.sub(r"\b[\w.-]*\d[\w.-]*\b", " ", text.replace(declined["decision_id"], " "))
    assert textstat.flesch_reading_ease(words) >= 60, textstat.flesch_reading_ease(words)


def test_the_page_is_private_and_strict(client: TestClient, declined: dict[str, Any]) -> None:
    response = get(client, declined["link"]["path"])
    headers = response.headers
    csp = headers["content-security-policy"]
    for rule in ("default-src 'none'", "script-src 'none'", "frame-ancestors 'none'"):
        assert rule in csp
    assert "http" not in csp  # no third-party origin
    assert headers["referrer-policy"] == "no-referrer"
    assert "noindex" in headers["x-robots-tag"]
    assert headers["cache-control"] == "no-store"
    assert "set-cookie" not in headers
    assert '<meta name="robots" content="noindex' in response.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", response.text)  # no outside asset
    assert "<script" not in response.text


def _own_reports(client: TestClient, link_id: str) -> list[dict[str, Any]]:
    return [d for d in documents(client, "report") if d["key_id"] == f"link:{link_id}"]


def test_the_first_view_issues_the_report_and_later_views_serve_it(client: TestClient) -> None:
    decision = decide(client, declined_rows()[1])
    issued = link(client, decision)
    assert _own_reports(client, issued["link_id"]) == []
    pages = [get(client, issued["path"]).text for _ in range(3)]
    (report,) = _own_reports(client, issued["link_id"])
    assert report["role"] == "subject" and report["clear"]["lang"] == "en"
    assert report["clear"]["format"] == "json" and report["clear"]["target_id"] == decision["id"]
    ctx = client.app.state.context  # type: ignore[attr-defined]
    sealed = open_sealed(ctx, report)
    assert sealed is not None and sealed["counterfactual"]["status"] == "found"
    told = json.loads(base64.b64decode(sealed["content"]))
    for page in pages:  # every view says what the record holds
        text = visible_text(page)
        assert told["decision"]["text"] in text
        assert all(reason["text"] in text for reason in told["reasons"])
        assert all(line["text"] in text for line in told["changes"]["lines"])
    get(client, issued["path"] + "?lang=ja")
    reports = _own_reports(client, issued["link_id"])
    assert [r["clear"]["lang"] for r in reports] == ["en", "ja"]
    ja = open_sealed(ctx, reports[1])
    assert ja is not None and ja["counterfactual"] == sealed["counterfactual"]


def test_every_read_is_an_access_record_of_the_link_never_the_token(
    client: TestClient,
) -> None:
    decision = decide(client)
    issued = link(client, decision)
    get(client, issued["path"])
    get(client, issued["path"] + "/report.pdf")
    principal = f"link:{issued['link_id']}"
    log = client.get(
        "/v1/audit/access-log", params={"principal": principal}, headers=auth("auditor")
    ).json()["items"]
    assert [e["endpoint"] for e in log] == ["GET /p/{token}", "GET /p/{token}/report.pdf"]
    assert {e["role"] for e in log} == {"subject"} and {e["key_id"] for e in log} == {principal}
    assert all(decision["id"] in e["records"] for e in log)
    by_record = client.get(
        "/v1/audit/access-log", params={"record_id": decision["id"]}, headers=auth("auditor")
    ).json()["items"]
    assert principal in {e["key_id"] for e in by_record}
    token = issued["token"]
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                assert token not in repr(tuple(row)), table.name


def test_the_language_follows_the_browser_and_the_switch(
    client: TestClient, declined: dict[str, Any]
) -> None:
    path = declined["link"]["path"]
    japanese = get(client, path, headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"})
    assert '<html lang="ja">' in japanese.text
    assert get(client, path, headers={"Accept-Language": "fr, ja;q=0.4"}).text.startswith(
        '<!doctype html>\n<html lang="ja">'
    )
    assert '<html lang="en">' in get(client, path, headers={"Accept-Language": "de"}).text
    switched = get(client, path + "?lang=en", headers={"Accept-Language": "ja"})
    assert '<html lang="en">' in switched.text
    assert 'href="?lang=ja" hreflang="ja" lang="ja"' in switched.text  # a link, no cookie
    assert "set-cookie" not in switched.headers
    text = visible_text(japanese.text)
    assert JAPANESE.search(text)
    allowed = (declined["decision_id"], MODEL, "PDF")
    assert english_runs_in_japanese(text, allowed) == []
    assert not [code for code in FEATURE_CODES if code in text]


def test_the_pdf_is_issued_once_under_the_same_token(client: TestClient) -> None:
    decision = decide(client, declined_rows()[2])
    issued = link(client, decision)
    first = get(client, issued["path"] + "/report.pdf?lang=ja")
    assert first.status_code == 200 and first.headers["content-type"] == "application/pdf"
    assert first.content.startswith(b"%PDF-")
    assert first.headers["content-disposition"].startswith("attachment;")
    again = get(client, issued["path"] + "/report.pdf?lang=ja")
    assert again.content == first.content  # the recorded bytes
    pdfs = [r for r in _own_reports(client, issued["link_id"]) if r["clear"]["format"] == "pdf"]
    assert len(pdfs) == 1 and pdfs[0]["clear"]["lang"] == "ja"
    words = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(first.content)).pages)
    assert JAPANESE.search(words)


def test_the_person_asks_for_a_review_and_sees_the_outcome(client: TestClient) -> None:
    decision = decide(client)
    issued = link(client, decision)
    path = issued["path"]
    page = get(client, path).text
    reason = "<b>I earn more now</b> & my account is fine"
    sent = post(
        client, path + "/review-requests", data={"csrf": form_token(page), "reason": reason}
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"{path}?lang=en&asked=sent"
    after = get(client, sent.headers["location"]).text
    assert "We have your request" in visible_text(after)
    assert "You asked for a person to review this decision on" in visible_text(after)
    assert 'name="csrf"' not in after  # one open request: no second form
    (request,) = [
        d for d in documents(client, "review_request") if d["clear"]["target_id"] == decision["id"]
    ]
    assert request["clear"]["source"] == "subject" and request["role"] == "subject"
    assert request["key_id"] == f"link:{issued['link_id']}"
    assert reason not in json.dumps(request)  # the reason is sealed
    read = client.get(f"/v1/explanations/{decision['id']}", headers=auth("support")).json()
    assert read["review_requests"][0]["note"] == reason
    assert read["review_requests"][0]["source"] == "subject"

    again = post(client, path + "/review-requests", data={"csrf": form_token(page), "reason": "x"})
    assert again.status_code == 303 and "asked=already" in again.headers["location"]
    assert "You have already asked" in visible_text(get(client, again.headers["location"]).text)
    by_api = client.post(
        f"/v1/explanations/{decision['id']}/review-requests", json={}, headers=auth("backend")
    )
    assert by_api.status_code == 409 and by_api.json()["reason"] == "request_open"
    assert by_api.json()["record_id"] == request["id"]

    asking = client.post(
        f"/v1/explanations/{decision['id']}/reviews",
        json={
            "outcome": "needs_information",
            "note": "call them",
            "public_note": "Please send your last three pay slips.",
        },
        headers=auth("support"),
    )
    assert asking.status_code == 201
    still = visible_text(get(client, path).text)
    assert "They need more facts from you" in still
    assert "Please send your last three pay slips." in still and "call them" not in still
    refused = client.post(
        f"/v1/explanations/{decision['id']}/review-requests", json={}, headers=auth("support")
    )
    assert refused.status_code == 409  # needs_information keeps the request open

    decided = client.post(
        f"/v1/explanations/{decision['id']}/reviews",
        json={
            "outcome": "overturned",
            "note": "internal: pay slips checked by J.",
            "public_note": "We checked your pay slips. Your loan is approved.",
        },
        headers=auth("support"),
    )
    assert decided.status_code == 201, decided.text
    assert decided.json()["public_note"] == "We checked your pay slips. Your loan is approved."
    shown = get(client, path).text
    text = visible_text(shown)
    assert "They changed the decision." in text
    assert "We checked your pay slips. Your loan is approved." in text
    assert "internal" not in text
    assert 'name="csrf"' in shown  # closed: the person may ask again
    backend = client.get(f"/v1/explanations/{decision['id']}", headers=auth("backend")).json()
    assert backend["reviews"][-1]["public_note"] is None  # sealed, like the note

    feed = client.get("/v1/reviews", params={"kind": "request"}, headers=auth("backend")).json()
    mine = [i for i in feed["items"] if i["explanation_id"] == decision["id"]]
    assert [(i["kind"], i["source"]) for i in mine] == [("request", "subject")]
    reviews_only = client.get("/v1/reviews", params={"kind": "review"}, headers=auth("backend"))
    assert {i["kind"] for i in reviews_only.json()["items"]} == {"review"}
    both = client.get("/v1/reviews", params={"limit": 1000}, headers=auth("backend")).json()
    assert [i["kind"] for i in both["items"] if i["explanation_id"] == decision["id"]] == [
        "request",
        "review",
        "review",
    ]
    bad = client.get("/v1/reviews", params={"kind": "appeal"}, headers=auth("backend"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"


def test_the_contest_form_refuses_what_it_should(client: TestClient) -> None:
    decision = decide(client)
    issued = link(client, decision)
    path = issued["path"] + "/review-requests"
    token = form_token(get(client, issued["path"]).text)
    huge = post(client, path, data={"csrf": token, "reason": "x" * 1_000_000})
    assert huge.status_code in (413, 422)
    over_a_mebibyte = post(client, path, data={"csrf": token, "reason": "x" * (1 << 20)})
    assert over_a_mebibyte.status_code == 413
    long = post(client, path, data={"csrf": token, "reason": "y" * 2001})
    assert long.status_code == 422 and "too long" in long.text
    forged = post(client, path, data={"csrf": "forged", "reason": "z"})
    assert forged.status_code == 403
    other = link(client, decide(client))
    foreign = post(client, path, data={"csrf": form_token(get(client, other["path"]).text)})
    assert foreign.status_code == 403  # a form token is its own link's
    cross = post(
        client, path, data={"csrf": token, "reason": "z"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert [
        d for d in documents(client, "review_request") if d["clear"]["target_id"] == decision["id"]
    ] == []
    fits = post(client, path, data={"csrf": token, "reason": "y" * 2000})
    assert fits.status_code == 303


def test_every_token_that_opens_nothing_gets_the_same_page(client: TestClient) -> None:
    expired, revoked = (link(client, decide(client)) for _ in range(2))
    person = decide(client)
    erased = link(client, person) | {"subject_id": person["subject_id"]}
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.begin() as conn:
        conn.execute(
            update(links)
            .where(links.c.id == expired["link_id"])
            .values(expires_at="2000-01-01T00:00:00.000000Z")
        )
    assert (
        client.delete(f"/v1/links/{revoked['link_id']}", headers=auth("admin")).status_code == 200
    )
    gone = client.delete(f"/v1/subjects/{erased['subject_id']}", headers=auth("admin"))
    assert gone.status_code == 200, gone.text
    answers = [
        get(client, f"/p/{token}", headers={"Accept-Language": "en"})
        for token in (
            expired["token"],
            revoked["token"],
            erased["token"],
            "A" * 43,
            "short",
        )
    ]
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    assert "This link does not work" in answers[0].text
    for suffix in ("/report.pdf",):
        assert get(client, f"/p/{revoked['token']}{suffix}").content == answers[0].content


def test_rate_limits_per_token_and_per_address(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("limits")
    settings = make_settings(
        f"sqlite:///{folder / 'rationale.db'}", person_rate_per_token=4, person_rate_per_address=6
    )
    with ContractClient(create_app(settings)) as client:
        first, second = (link(client, decide(client)) for _ in range(2))
        answers = [get(client, first["path"]).status_code for _ in range(5)]
        assert answers == [200, 200, 200, 200, 429]
        limited = get(client, first["path"])
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "Please wait a moment" in limited.text
        # The address has made 6 requests: a new token from it is refused too.
        assert get(client, second["path"]).status_code == 429
        assert get(client, "/p/" + "B" * 43).status_code == 429
