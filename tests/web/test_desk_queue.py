"""The desk's queue of open review requests and the state of a review at the top of a decision
page (docs/desk.md#the-queue-of-review-requests, docs/desk.md#the-state-of-a-review), over the
real app: oldest first with their age, a filter by model, reasons shown as text, the read
access-logged; the status line through none, under review, upheld and overturned, and the
saved review confirmed at the top."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import KEYS, auth, instances, make_settings, unique_id


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("queue")
    with TestClient(create_app(make_settings(f"sqlite:///{folder / 'r.db'}"))) as made:
        yield made


def _explain(client: TestClient, model: str) -> dict[str, Any]:
    body = {
        "model": model,
        "decision_id": unique_id(model),
        "subject_id": unique_id("person"),
        "instance": instances(model, 1)[0],
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made | {"subject_id": body["subject_id"]}


def _ask(client: TestClient, record: dict[str, Any], note: str) -> None:
    response = client.post(
        f"/v1/explanations/{record['id']}/review-requests",
        json={"note": note},
        headers=auth("backend"),
    )
    assert response.status_code == 201, response.text


def _signed_in(client: TestClient, role: str) -> TestClient:
    client.cookies.clear()
    token = client.get("/ui").cookies["rationale_form"]
    done = client.post(
        "/ui/sign-in", data={"key": KEYS[role], "csrf": token}, follow_redirects=False
    )
    assert done.status_code == 303
    return client


def _rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_the_queue_lists_open_requests_oldest_first(client: TestClient) -> None:
    first, second = _explain(client, "credit-risk"), _explain(client, "recidivism")
    closed, waiting = _explain(client, "credit-risk"), _explain(client, "credit-risk")
    _ask(client, first, "<script>alert('x')</script> my income was wrong")
    _ask(client, second, "please")
    _ask(client, closed, "look again")
    _ask(client, waiting, "and me")
    upheld = client.post(
        f"/v1/explanations/{closed['id']}/reviews",
        json={"outcome": "upheld"},
        headers=auth("support"),
    )
    assert upheld.status_code == 201
    client.post(
        f"/v1/explanations/{waiting['id']}/reviews",
        json={"outcome": "needs_information"},
        headers=auth("support"),
    )
    _signed_in(client, "support")
    page = client.get("/ui/requests")
    assert page.status_code == 200
    rows = _rows(page.text)
    ids = [re.search(r'decisions/([^"]+)"', r).group(1) for r in rows]  # type: ignore[union-attr]
    assert ids == [first["decision_id"], second["decision_id"], waiting["decision_id"]]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; my income was wrong" in rows[0]
    assert "<script>" not in page.text
    assert all(re.search(r"<td>\d+ min</td>", r) for r in rows)  # the age
    filtered = client.get("/ui/requests", params={"model": "recidivism"})
    assert [second["decision_id"] in r for r in _rows(filtered.text)] == [True]
    unknown = client.get("/ui/requests", params={"model": "no-such-model"})
    assert len(_rows(unknown.text)) == 3  # an unknown model filters nothing out

    log = client.get(
        "/v1/audit/access-log", params={"principal": _key_id("support")}, headers=auth("auditor")
    ).json()["items"]
    reads = [e for e in log if e["endpoint"] == "GET /ui/requests"]
    assert reads and reads[-1]["filters"] == {}
    assert len(reads[-3]["records"]) == 3 and reads[-2]["filters"] == {"model": "recidivism"}

    erased = client.delete(f"/v1/subjects/{first['subject_id']}", headers=auth("admin"))
    assert erased.status_code == 200
    after = _rows(client.get("/ui/requests").text)
    assert "the person&#39;s data was erased" in after[0] and "income" not in after[0]


def _key_id(role: str) -> str:
    from app.access.principals import key_id

    return key_id(KEYS[role])


def test_auditors_and_signed_out_visitors_get_no_queue(client: TestClient) -> None:
    _signed_in(client, "auditor")
    assert client.get("/ui/requests").status_code == 403
    client.cookies.clear()
    assert "Sign in" in client.get("/ui/requests").text


def _status_line(page: str) -> str:
    found = re.search(r'id="review-status">(.*?)</p>', page, re.S)
    assert found, "no status line"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_the_state_of_the_review_is_said_at_the_top(client: TestClient) -> None:
    record = _explain(client, "recidivism")
    _signed_in(client, "support")
    url = f"/ui/decisions/{record['decision_id']}"
    page = client.get(url).text
    assert _status_line(page) == "Review status: No review asked for."
    assert page.index('id="review-status"') < page.index('class="rationale-report"')
    assert 'href="#review-form"' in page and 'id="review-form"' in page
    assert 'name="public_note"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    asked = client.post(
        f"{url}/review-requests",
        data={"csrf": csrf, "note": "on the phone"},
        follow_redirects=False,
    )
    assert asked.headers["location"] == f"{url}?saved=request"
    page = client.get(asked.headers["location"]).text
    assert "Request recorded." in page
    assert re.fullmatch(
        r"Review status: Under review since \d{4}-\d{2}-\d{2}\.", _status_line(page)
    )
    twice = client.post(f"{url}/review-requests", data={"csrf": csrf}, follow_redirects=False)
    assert twice.status_code == 409 and "still open" in twice.text  # one open request

    for outcome, said in (
        ("needs_information", "Under review since"),
        ("upheld", "Upheld on"),
        ("overturned", "Overturned on"),
    ):
        saved = client.post(
            f"{url}/reviews",
            data={"csrf": csrf, "outcome": outcome, "note": "n", "public_note": f"told {outcome}"},
            follow_redirects=False,
        )
        assert saved.status_code == 303 and saved.headers["location"] == f"{url}?saved=review"
        page = client.get(saved.headers["location"]).text
        assert said in _status_line(page)
        label = {"needs_information": "Needs information", "upheld": "Upheld"}.get(
            outcome, "Overturned"
        )
        confirmation = re.search(r'id="saved">(.*?)</p>', page).group(1)  # type: ignore[union-attr]
        assert confirmation == f"Review saved: {label}."
        assert page.index('id="saved"') < page.index('class="rationale-report"')
    assert "told overturned" in page  # the note for the person, listed with the review
    reviews = client.get(f"/v1/explanations/{record['id']}", headers=auth("support")).json()
    assert [r["public_note"] for r in reviews["reviews"]] == [
        "told needs_information",
        "told upheld",
        "told overturned",
    ]
