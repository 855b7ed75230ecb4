"""The person's page in a real browser (docs/person.md): Playwright for Python driving Debian's
chromium against a real ``rationale serve``. A backend issues a link with the API; the person
opens it on a 375 px phone screen, reads the reasons, what would change the outcome and the
data used, switches to Japanese, downloads the PDF and asks for a review; support finds the
request in the desk's queue and records a review with a note for the person; the person sees
the outcome. axe-core checks every page (no serious or critical violation); a screenshot of
each step goes to ``test-artifacts/person/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import textstat

from tests.helpers import KEYS, MODELS, REPO, Server, auth, unique_id
from tests.person.support import JAPANESE, declined_rows, english_runs_in_japanese
from tests.web.test_desk_browser import CHROMIUM, LAUNCH_ARGS, _axe, _need_browser

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.timeout(600)]

ARTIFACTS = REPO / "test-artifacts" / "person"
PHONE = {"width": 375, "height": 812}
PUBLIC_NOTE = "We checked your pay slips again. Your loan is approved."
REASON = "<b>I earn more now.</b> My new job started in May."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _need_browser()
    workdir = tmp_path_factory.mktemp("person-browser")
    models = workdir / "models"
    shutil.copytree(MODELS / "credit-risk" / "1", models / "credit-risk" / "1")
    shutil.copytree(MODELS / "credit-risk" / "wording", models / "credit-risk" / "wording")
    running = Server(
        f"sqlite:///{workdir / 'person.db'}", workdir, RATIONALE_MODELS_DIR=str(models)
    ).start(timeout=180)
    try:
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


def _fits_the_phone(page: Any) -> None:
    """Nothing needs sideways scrolling at 375 px."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"


def test_from_the_link_to_the_outcome(server: Server, browser: Any) -> None:
    decision_id = unique_id("loan")
    body = {
        "model": "credit-risk",
        "decision_id": decision_id,
        "subject_id": unique_id("applicant"),
        "instance": declined_rows()[0],
    }
    made = httpx.post(f"{server.url}/v1/explanations", json=body, headers=auth("backend"))
    assert made.status_code == 201 and made.json()["prediction"]["label"] == "bad"
    issued = httpx.post(
        f"{server.url}/v1/decisions/{decision_id}/links",
        json={"expires_in_days": 14},
        headers=auth("backend"),
    )
    assert issued.status_code == 201, issued.text
    link = issued.json()
    token = link["url"].rsplit("/p/", 1)[1]

    person = browser.new_context(viewport=PHONE, device_scale_factor=2, locale="en-GB")
    referers: list[str] = []
    person.on("request", lambda r: referers.append(r.headers.get("referer", "")))
    page = person.new_page()
    page.goto(link["url"])
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Your decision explained"
    assert "declined" in page.locator(".decision").inner_text()
    reasons = page.locator("ol.reasons li")
    assert 1 <= reasons.count() <= 4
    assert all("_" not in text for text in reasons.all_inner_texts())
    changes = page.locator("ul.changes li")
    assert changes.count() >= 1 and " instead of " in changes.first.inner_text()
    details = page.locator("dl.details div")
    assert details.count() >= 10
    assert page.locator("dl.details dt").first.inner_text() == "Your current account"
    main = page.inner_text("main")
    assert textstat.flesch_reading_ease(main) >= 60
    _fits_the_phone(page)
    _axe(page, "person-en")
    _shot(page, "01-page-en")

    page.click("a[hreflang=ja]")
    page.wait_for_url("**?lang=ja")
    assert page.locator("html").get_attribute("lang") == "ja"
    japanese = page.inner_text("main")
    assert JAPANESE.search(japanese)
    assert english_runs_in_japanese(japanese, (decision_id, "credit-risk", "PDF")) == []
    page.evaluate("document.fonts.ready")
    loaded = page.evaluate(
        "[...document.fonts].filter(f => f.family.includes('IPAex')).map(f => f.status)"
    )
    assert "loaded" in loaded  # the service's own web font
    _fits_the_phone(page)
    _axe(page, "person-ja")
    _shot(page, "02-page-ja")

    with page.expect_download() as download:
        page.click("p.pdf a")
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-") and download.value.suggested_filename == "decision-ja.pdf"
    _shot(page, "03-pdf-downloaded")

    page.click("a[hreflang=en]")
    page.wait_for_url("**?lang=en")
    page.fill("#reason", REASON)
    page.click("text=Ask for a review")
    page.wait_for_url("**asked=sent")
    assert "We have your request" in page.locator(".notice").inner_text()
    assert "You asked for a person to review this decision on" in page.inner_text("#review-status")
    assert page.locator("#reason").count() == 0  # one open request: no second form
    _fits_the_phone(page)
    _axe(page, "person-sent")
    _shot(page, "04-contest-sent")
    assert person.cookies() == []  # no cookie, so the token is in none

    desk = browser.new_context(viewport={"width": 1280, "height": 900})
    staff = desk.new_page()
    staff.goto(f"{server.url}/ui")
    staff.fill("#key", KEYS["support"])
    staff.click("button[type=submit]")
    staff.wait_for_url(f"{server.url}/ui")
    staff.click("text=Review requests")
    staff.wait_for_url("**/ui/requests")
    row = staff.locator("#queue tbody tr", has_text=decision_id)
    assert row.count() == 1
    assert REASON in row.locator("td.reason").inner_text()  # markup shown as text
    assert staff.locator("#queue b").count() == 0
    assert "the person, on their page" in row.inner_text()
    _axe(staff, "desk-queue")
    _shot(staff, "05-desk-queue")

    row.locator("a").click()
    staff.wait_for_url(f"**/ui/decisions/{decision_id}")
    assert "Under review since" in staff.inner_text("#review-status")
    staff.click("text=Go to the review form")
    assert staff.evaluate("location.hash") == "#review-form"
    assert staff.locator("#review-form").is_visible()
    staff.check("#o-overturned")
    staff.fill("#review-note", "Pay slips checked by the second reviewer.")
    staff.fill("#public-note", PUBLIC_NOTE)
    _axe(staff, "desk-decision")
    _shot(staff, "06-desk-review-form")
    staff.click("text=Save review")
    staff.wait_for_url("**saved=review")
    assert staff.evaluate("window.scrollY") == 0  # back at the top
    assert staff.locator("#saved").inner_text() == "Review saved: Overturned."
    assert (
        staff.locator("#saved").is_visible() and staff.locator("#saved").bounding_box()["y"] < 400
    )
    assert "Overturned on" in staff.inner_text("#review-status")
    _axe(staff, "desk-saved")
    staff.set_viewport_size({"width": 1280, "height": 700})
    staff.screenshot(path=str(ARTIFACTS / "07-desk-saved.png"))  # what the eye sees first
    staff.goto(f"{server.url}/ui/requests")
    assert staff.locator("#queue tbody tr", has_text=decision_id).count() == 0
    desk.close()

    page.reload()
    status = page.inner_text("#review-status")
    assert "They changed the decision." in status and PUBLIC_NOTE in status
    assert "second reviewer" not in page.inner_text("main")  # the internal note stays inside
    assert page.locator("#reason").count() == 1  # closed: the person may ask again
    _fits_the_phone(page)
    _axe(page, "person-outcome")
    _shot(page, "08-page-outcome")

    page.goto(f"{server.url}/p/{'x' * 43}")
    assert page.locator("h1").inner_text() == "This link does not work"
    _axe(page, "person-gone")
    _shot(page, "09-gone")
    person.close()

    assert not any(token in r for r in referers)  # no-referrer: the token went nowhere
    log = httpx.get(
        f"{server.url}/v1/audit/access-log",
        params={"principal": f"link:{link['link_id']}"},
        headers=auth("auditor"),
    ).json()["items"]
    endpoints = [e["endpoint"] for e in log]
    assert endpoints.count("GET /p/{token}/report.pdf") == 1
    assert endpoints.count("GET /p/{token}") >= 4 and {e["role"] for e in log} == {"subject"}
    assert token not in server.log()
