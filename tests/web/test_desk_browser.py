"""The support desk in a real browser: Playwright for Python driving Debian's chromium against
a real ``rationale serve``. Screenshots of each step go to ``test-artifacts/desk/``; axe-core
checks every page for serious or critical accessibility violations."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import textstat

from tests.helpers import KEYS, MODELS, ON_CI, REPO, Server, auth, instances

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.timeout(600)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "desk"
SUBJECT = "person-desk-7"
DECISIONS = ["desk-loan-1", "desk-loan-2"]
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    message = "Debian's chromium is not installed (make test installs it: apt-get install chromium)"
    if ON_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _need_browser()
    workdir = tmp_path_factory.mktemp("desk")
    models = workdir / "models"
    shutil.copytree(MODELS / "credit-risk" / "1", models / "credit-risk" / "1")
    shutil.copytree(MODELS / "credit-risk" / "wording", models / "credit-risk" / "wording")
    running = Server(
        f"sqlite:///{workdir / 'desk.db'}", workdir, RATIONALE_MODELS_DIR=str(models)
    ).start(timeout=180)
    try:
        rows = instances("credit-risk", 2)
        for decision_id, row in zip(DECISIONS, rows, strict=True):
            body = {
                "model": "credit-risk",
                "decision_id": decision_id,
                "subject_id": SUBJECT,
                "instance": row,
            }
            response = httpx.post(
                f"{running.url}/v1/explanations", json=body, headers=auth("backend"), timeout=60
            )
            assert response.status_code == 201, response.text
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _axe(page: Any, name: str) -> None:
    """No serious or critical axe-core violation on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: " + "; ".join(f"{v['id']}: {v['help']}" for v in bad)


def test_sign_in_find_read_switch_language_review_and_sign_out(
    server: Server, browser: Any
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/ui")
    assert page.locator("h1").inner_text() == "Sign in"
    _axe(page, "sign-in")
    _shot(page, "01-sign-in")

    page.fill("#key", KEYS["support"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui")
    cookie = next(c for c in context.cookies() if c["name"] == "rationale_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    _axe(page, "search")
    _shot(page, "02-search")

    page.fill("#decision_id", DECISIONS[0])
    page.click("text=Open decision")
    page.wait_for_url(f"**/ui/decisions/{DECISIONS[0]}")
    reasons = page.locator("ol.reasons li")
    assert reasons.count() >= 1
    text = reasons.first.inner_text()
    assert text and "_" not in text  # plain words, never a feature code
    chart = page.locator(".rationale-report figure img")
    assert chart.get_attribute("alt")
    assert chart.evaluate("img => img.complete && img.naturalWidth > 100")
    _axe(page, "decision")
    _shot(page, "03-decision")

    page.select_option("#lang-select", "ja")
    page.click("text=Switch")
    page.wait_for_url(f"**/ui/decisions/{DECISIONS[0]}")
    assert page.locator("html").get_attribute("lang") == "ja"
    japanese = page.locator("ol.reasons li").first.inner_text()
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in japanese)
    page.evaluate("document.fonts.ready")
    assert page.evaluate("document.fonts.check('16px IPAexGothic', '審査')")
    loaded = page.evaluate(
        "[...document.fonts].filter(f => f.family.includes('IPAex')).map(f => f.status)"
    )
    assert "loaded" in loaded  # the served web font, not a system font
    _axe(page, "decision-ja")
    _shot(page, "04-decision-ja")

    page.check("#o-overturned")
    page.fill("#review-note", "<script>alert('x')</script> income was misread")
    page.click("text=見直しを保存する")
    page.wait_for_url(f"**/ui/decisions/{DECISIONS[0]}*")
    listed = page.locator("#reviews li").first
    assert "取り消し" in listed.inner_text()
    assert "<script>alert('x')</script>" in listed.inner_text()  # shown as text
    assert page.locator("#reviews script").count() == 0
    _shot(page, "05-reviewed")

    page.select_option("#lang-select", "en")
    page.click("text=切り替える")
    page.goto(f"{server.url}/ui")
    page.fill("#subject_id", SUBJECT)
    page.click("text=List their decisions")
    links = page.locator("table a")
    assert sorted(links.all_inner_texts()) == sorted(DECISIONS)
    _axe(page, "subject")
    _shot(page, "06-subject")

    page.click("text=Sign out")
    page.wait_for_url(f"{server.url}/ui")
    assert page.locator("h1").inner_text() == "Sign in"
    page.goto(f"{server.url}/ui/decisions/{DECISIONS[0]}")
    assert page.locator("h1").inner_text() == "Sign in"  # signed out: no decision page
    context.close()

    feed = httpx.get(
        f"{server.url}/v1/reviews", params={"outcome": "overturned"}, headers=auth("backend")
    ).json()
    assert [i["decision_id"] for i in feed["items"]] == [DECISIONS[0]]


def test_the_same_flow_with_the_keyboard_only(server: Server, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/ui")
    keyboard = page.keyboard
    keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.className") == "skip"
    for _ in range(5):  # then the site name, then the key field
        keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "key":
            break
    assert page.evaluate("document.activeElement.id") == "key"
    keyboard.type(KEYS["auditor"])
    keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/ui")
    page.focus("body")
    for _ in range(12):
        keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "decision_id":
            break
    assert page.evaluate("document.activeElement.id") == "decision_id"
    keyboard.type(DECISIONS[1])
    keyboard.press("Enter")
    page.wait_for_url(f"**/ui/decisions/{DECISIONS[1]}")
    assert page.locator("ol.reasons li").count() >= 1
    _shot(page, "07-keyboard-decision")
    # An auditor reads; the review form is not theirs, the access log is.
    assert page.locator("#review-note").count() == 0
    page.focus("body")
    for _ in range(40):
        keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Who read this record":
            break
    keyboard.press("Enter")
    page.wait_for_url(f"**/ui/decisions/{DECISIONS[1]}/access-log")
    assert page.locator("td", has_text="GET /ui/decisions/{decision_id}").count() >= 1
    _axe(page, "access-log")
    _shot(page, "08-access-log")
    page.goto(f"{server.url}/ui/audit")
    assert "Every record verifies." in page.inner_text("main")
    with page.expect_download() as download:
        page.click("text=Download the latest signed checkpoint")
    note = Path(download.value.path()).read_text()
    assert note.startswith("rationale.local/log\n") and "\n\n— " in note
    _axe(page, "audit")
    _shot(page, "09-audit")
    context.close()


def test_security_of_the_desk(server: Server) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        first = client.get("/ui")
        csp = first.headers["content-security-policy"]
        assert "script-src 'none'" in csp and "default-src 'none'" in csp
        # A backend key cannot sign in.
        token = first.cookies["rationale_form"]
        refused = client.post("/ui/sign-in", data={"key": KEYS["backend"], "csrf": token})
        assert refused.status_code == 403 and "rationale_session" not in refused.cookies
        # A form without its token is refused (and answered with a fresh form and token).
        no_token = client.post("/ui/sign-in", data={"key": KEYS["support"], "csrf": "forged"})
        assert no_token.status_code == 403 and "rationale_session" not in no_token.cookies
        good = client.post(
            "/ui/sign-in", data={"key": KEYS["support"], "csrf": client.cookies["rationale_form"]}
        )
        assert good.status_code == 303
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        session = good.cookies["rationale_session"]
        forged = client.post(
            f"/ui/decisions/{DECISIONS[1]}/reviews",
            data={"csrf": "not-the-token", "outcome": "upheld"},
            cookies={"rationale_session": session},
        )
        assert forged.status_code == 403
        decision = client.get(
            f"/ui/decisions/{DECISIONS[1]}", cookies={"rationale_session": session}
        )
        assert decision.status_code == 200
        assert decision.headers["content-security-policy"] == csp
        reviews = httpx.get(
            f"{server.url}/v1/explanations/{_record_id(server)}", headers=auth("support")
        ).json()["reviews"]
        assert reviews == []  # the forged form added nothing
    behind_proxy = httpx.post(
        f"{server.url}/ui/sign-in",
        data={"key": KEYS["support"], "csrf": "x"},
        headers={"X-Forwarded-Proto": "https", "Cookie": "rationale_form=x"},
    )
    assert behind_proxy.status_code == 303
    assert "Secure" in behind_proxy.headers["set-cookie"]


def _record_id(server: Server) -> str:
    response = httpx.get(f"{server.url}/v1/decisions/{DECISIONS[1]}", headers=auth("backend"))
    record_id: str = response.json()["id"]
    return record_id


def _sign_in(page: Any, url: str, role: str) -> None:
    page.goto(f"{url}/ui")
    page.fill("#key", KEYS[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/ui")


def _chart_loaded(page: Any) -> None:
    chart = page.locator("figure.chart img")
    assert chart.get_attribute("alt")
    chart.evaluate("img => img.decode()")
    assert chart.evaluate("img => img.complete && img.naturalWidth > 100")


def test_auditor_reports_and_the_model_card(server: Server, browser: Any) -> None:
    for k, row in enumerate(instances("credit-risk", 45)):
        body = {"model": "credit-risk", "decision_id": f"desk-audit-{k}", "instance": row}
        response = httpx.post(
            f"{server.url}/v1/explanations", json=body, headers=auth("backend"), timeout=60
        )
        assert response.status_code == 201, response.text
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, server.url, "support")
    for path in (
        "/ui/audit/fairness?model=credit-risk",
        "/ui/audit/impact",
        "/ui/models/credit-risk",
    ):
        refused = page.goto(f"{server.url}{path}")
        assert refused is not None and refused.status == 403, path
    page.click("text=Sign out")
    page.wait_for_url(f"{server.url}/ui")

    _sign_in(page, server.url, "auditor")
    page.goto(f"{server.url}/ui/audit")
    page.click("a[href='/ui/audit/fairness?model=credit-risk']")
    page.wait_for_url("**/ui/audit/fairness?model=credit-risk")
    page.select_option("#f-attribute", "foreign_worker")
    page.click("button:text('Show')")
    page.wait_for_url("**attribute=foreign_worker**")
    assert "foreign_worker" in page.locator("h1").inner_text()
    groups = page.locator("#fairness-groups tbody tr")
    assert groups.count() >= 1
    total = sum(int(groups.nth(i).locator("td").first.inner_text()) for i in range(groups.count()))
    withheld = page.locator("dd", has_text="(").all_inner_texts()
    assert total + sum(int(x.split("(")[1].rstrip(")")) for x in withheld) == 47
    _chart_loaded(page)
    _axe(page, "fairness")
    _shot(page, "10-fairness")

    page.goto(f"{server.url}/ui/audit/impact?model=credit-risk&bucket=week")
    assert page.locator("#impact-buckets tbody td").first.inner_text() == "47"
    assert page.locator("#importance tbody tr").count() == 20
    _chart_loaded(page)
    _axe(page, "impact")
    _shot(page, "11-impact")

    page.click("main a:text('Model card')")
    page.wait_for_url("**/ui/models/credit-risk*")
    main = page.inner_text("main")
    assert "Do not use it for real loans" in main  # the card, from the wording file
    assert "the model made 47 decisions" in main  # one week: "In the week of ..."
    assert page.locator(".fairness-plain h3").all_inner_texts() == [
        "Sex and marital status",
        "Age",
        "Whether the applicant is a foreign worker",
    ]
    words = " ".join(page.locator("#card-intro, #impact-plain, .fairness-plain").all_inner_texts())
    assert "_" not in words
    assert textstat.flesch_reading_ease(words) >= 60, words
    _axe(page, "model-card")
    _shot(page, "12-model-card")
    context.close()

    log = httpx.get(f"{server.url}/v1/audit/access-log", headers=auth("auditor")).json()["items"]
    fairness_reads = [e for e in log if e["endpoint"] == "GET /ui/audit/fairness"]
    assert any(e["filters"].get("attribute") == "foreign_worker" for e in fairness_reads)
    assert any(e["endpoint"] == "GET /ui/audit/fairness.png" for e in log)
    card_reads = [e for e in log if e["endpoint"] == "GET /ui/models/{name}"]
    assert {e["filters"].get("attribute") for e in card_reads} == {
        None,  # the impact read
        "personal_status_and_sex",
        "age_in_years",
        "foreign_worker",
    }
    assert all(e["role"] == "auditor" for e in card_reads)
