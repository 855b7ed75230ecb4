"""Reports over HTTP (docs/reports.md#reports): previews are access-logged and not stored; an issued
report's stored bytes are what is served, again and again; the PDF opens and holds the
reasons; Japanese reports are Japanese; the chart is a PNG; bad input is a clear 4xx."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader

from app.main import create_app
from app.records.service import open_sealed
from bench.counterfactual import adverse_rows, holdout_rows
from tests.helpers import MODELS, auth, make_settings, unique_id
from tests.reports.conftest import demo, predict_proba

JARGON = re.compile(r"\b(shap|log-odds|attributions?|coefficients?|features?)\b", re.IGNORECASE)
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
CONTACT = "reviews@bank.example, +49 30 1234"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("reports")
    settings = make_settings(f"sqlite:///{folder / 'r.db'}", review_contact=CONTACT)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def declined(client: TestClient) -> dict[str, Any]:
    """An adverse credit decision from the holdout set, explained with its counterfactual."""
    row = adverse_rows(demo("credit-risk"), holdout_rows("credit-risk"))[0]
    body = {
        "model": "credit-risk",
        "decision_id": unique_id(),
        "subject_id": unique_id("person"),
        "instance": row,
        "options": {"counterfactual": True},
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    assert view["prediction"]["label"] == "bad"
    return view


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_requested_counterfactual_is_stored_and_verified_by_the_model(
    declined: dict[str, Any],
) -> None:
    found = declined["counterfactual"]
    assert found["status"] == "found" and found["outcome"] == "good"
    changed = dict(declined["input"]) | {c["feature"]: c["to"] for c in found["changes"]}
    probabilities = predict_proba("credit-risk", [changed])[0]
    assert probabilities[1] > probabilities[0]  # classes [bad, good]
    assert all(r["direction"] == "against" for r in declined["reasons"])


def test_text_and_html_reports_hold_everything_and_no_jargon(
    client: TestClient, declined: dict[str, Any]
) -> None:
    for fmt, media in (("text", "text/plain"), ("html", "text/html")):
        response = client.get(
            f"/v1/explanations/{declined['id']}/report",
            params={"format": fmt},
            headers=auth("support"),
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media)
        text = response.text
        for reason in declined["reasons"]:
            assert reason["text"] in text.replace("&#39;", "'")
        assert "declined" in text and CONTACT in text and declined["decision_id"] in text
        # What the model is for: the card's prose for the person, from the wording file.
        assert "This system is a demo." in text and "Demonstration and testing" not in text
        assert "credit-risk, version 1" in text
        assert "What would change the outcome" in text and "instead of" in text
        assert not JARGON.search(re.sub(r"<[^>]+>", " ", text)), JARGON.search(text)
    json_report = client.get(
        f"/v1/explanations/{declined['id']}/report",
        params={"format": "json"},
        headers=auth("auditor"),
    ).json()
    assert [r["feature"] for r in json_report["reasons"]] == [
        r["feature"] for r in declined["reasons"]
    ]
    assert json_report["changes"]["status"] == "found"


def test_pdf_opens_and_holds_the_reasons(client: TestClient, declined: dict[str, Any]) -> None:
    response = client.get(
        f"/v1/explanations/{declined['id']}/report",
        params={"format": "pdf"},
        headers=auth("admin"),
    )
    assert response.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    text = flat(" ".join(page.extract_text() for page in reader.pages))
    for reason in declined["reasons"]:
        assert flat(reason["text"]) in text
    assert not JARGON.search(text)
    assert any(page.images for page in reader.pages)  # the chart is embedded


def test_japanese_report_chart_and_pdf(client: TestClient, declined: dict[str, Any]) -> None:
    path = f"/v1/explanations/{declined['id']}"
    report = client.get(
        f"{path}/report", params={"format": "json", "lang": "ja"}, headers=auth("support")
    ).json()
    assert report["reasons"] and all(JAPANESE.search(r["text"]) for r in report["reasons"])
    assert JAPANESE.search(report["changes"]["summary"])
    pdf = client.get(
        f"{path}/report", params={"format": "pdf", "lang": "ja"}, headers=auth("support")
    )
    text = flat(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages))
    for reason in report["reasons"]:
        assert flat(reason["text"]) in text.replace(" ", " ")
    chart = client.get(f"{path}/plot.png", params={"lang": "ja"}, headers=auth("support"))
    assert chart.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(chart.content))
    assert image.format == "PNG" and image.width > 500
    # Readable in black and white: hatched (against) and plain grey (for) bars are there.
    grey = np.asarray(image.convert("L"))
    assert (grey < 60).sum() > 0 and ((grey > 150) & (grey < 200)).sum() > 0


def test_preview_is_access_logged_and_not_stored(
    client: TestClient, declined: dict[str, Any]
) -> None:
    ctx = client.app.state.context  # type: ignore[attr-defined]
    before = ctx.repository.count()
    client.get(f"/v1/explanations/{declined['id']}/report", headers=auth("support"))
    client.get(f"/v1/explanations/{declined['id']}/plot.png", headers=auth("support"))
    assert ctx.repository.count() == before + 2  # two access records, no report record
    log = client.get(
        "/v1/audit/access-log", params={"record_id": declined["id"]}, headers=auth("auditor")
    ).json()["items"]
    endpoints = [entry["endpoint"] for entry in log]
    assert "GET /v1/explanations/{id}/report" in endpoints
    assert "GET /v1/explanations/{id}/plot.png" in endpoints


@pytest.mark.parametrize(("fmt", "lang"), [("text", "en"), ("pdf", "ja")])
def test_issued_report_is_stored_sealed_and_served_again(
    client: TestClient, declined: dict[str, Any], fmt: str, lang: str
) -> None:
    issued = client.post(
        f"/v1/explanations/{declined['id']}/reports",
        json={"format": fmt, "lang": lang},
        headers=auth("backend"),
    )
    assert issued.status_code == 201, issued.text
    meta = issued.json()
    assert meta["explanation_id"] == declined["id"] and meta["counterfactual_status"] == "found"
    served = client.get(f"/v1/reports/{meta['report_id']}", headers=auth("support"))
    again = client.get(f"/v1/reports/{meta['report_id']}", headers=auth("auditor"))
    assert served.status_code == again.status_code == 200
    assert served.content == again.content and len(served.content) == meta["size"]
    ctx = client.app.state.context  # type: ignore[attr-defined]
    stored = ctx.repository.by_id(meta["report_id"])
    document = json.loads(stored.document)
    assert document["type"] == "report" and document["clear"]["target_id"] == declined["id"]
    assert b"instead of" not in stored.document and "content" not in document["clear"]
    sealed = open_sealed(ctx, document)
    assert base64.b64decode(sealed["content"]) == served.content
    assert sealed["counterfactual"] == declined["counterfactual"]
    if fmt == "text":  # a preview renders exactly what was issued
        preview = client.get(
            f"/v1/explanations/{declined['id']}/report",
            params={"format": fmt, "lang": lang},
            headers=auth("support"),
        )
        assert preview.content == served.content
    assert client.get("/v1/audit/verify", headers=auth("auditor")).json()["ok"] is True


def test_reasons_are_sealed_with_the_hash_of_their_wording(
    client: TestClient, declined: dict[str, Any]
) -> None:
    ctx = client.app.state.context  # type: ignore[attr-defined]
    stored = ctx.repository.by_id(declined["id"])
    assert b"hurt your chance" not in stored.document  # the texts are sealed
    sealed = open_sealed(ctx, json.loads(stored.document))
    wording = Path(MODELS / "credit-risk" / "wording" / "en.yaml").read_bytes()
    assert sealed["reasons_wording"]["wording_sha256"] == hashlib.sha256(wording).hexdigest()
    assert sealed["reasons_wording"]["lang"] == "en"


def test_bad_requests_name_the_field(client: TestClient, declined: dict[str, Any]) -> None:
    path = f"/v1/explanations/{declined['id']}"
    for params, field in (({"format": "docx"}, "format"), ({"lang": "fr"}, "lang")):
        response = client.get(f"{path}/report", params=params, headers=auth("support"))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert any(field in e["field"] for e in response.json()["errors"])
    response = client.post(f"{path}/reports", json={"format": "doc"}, headers=auth("support"))
    assert response.status_code == 422
    assert any("format" in e["field"] for e in response.json()["errors"])
    body = {
        "model": "credit-risk",
        "decision_id": unique_id(),
        "instance": declined["input"],
        "options": {"lang": "fr", "counterfactual": "maybe"},
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert any("lang" in f for f in fields) and any("counterfactual" in f for f in fields)
    assert client.get("/v1/reports/nope", headers=auth("support")).status_code == 404
    assert client.get("/v1/explanations/nope/plot.png", headers=auth("support")).status_code == 404
    # A report id is not an explanation id and vice versa.
    assert client.get(f"/v1/reports/{declined['id']}", headers=auth("support")).status_code == 404
