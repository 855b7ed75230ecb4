"""Shared pieces of the person's page tests: declined decisions with something that would
change them, a page's visible text, the checks of plain English and wholly Japanese text."""

from __future__ import annotations

import functools
import html
import re
from typing import Any

from app.catalog.model import load_version
from app.reports.counterfactual import counterfactual
from bench.counterfactual import adverse_rows, holdout_rows
from tests.helpers import MODELS

ASCII_RUN = re.compile(r"[A-Za-z][A-Za-z'’]*(?:[ \t,.;:()-]+[A-Za-z][A-Za-z'’]*){3,}")
"""Four or more ASCII words in a row: English (or code) in what should be Japanese."""
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@functools.cache
def declined_rows(count: int = 3) -> tuple[dict[str, Any], ...]:
    """Holdout applicants the credit-risk model declines, for whom a change within reach
    would give approval (the model itself confirms it)."""
    model = load_version(MODELS / "credit-risk" / "1", allow_unsafe=False)
    found = []
    for row in adverse_rows(model, holdout_rows("credit-risk")):
        if counterfactual(model, row)["status"] == "found":
            found.append(row)
            if len(found) == count:
                break
    return tuple(found)


def visible_text(page: str) -> str:
    """The text a reader sees in a page's ``<main>`` (tags dropped, entities decoded)."""
    main = page[page.index("<main") : page.index("</main>")]
    main = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", main, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))).strip()


def english_runs_in_japanese(text: str, allowed: tuple[str, ...]) -> list[str]:
    """Runs of four or more ASCII words left in a Japanese text, once the allowed names
    (a model, a reference) are taken out."""
    for name in allowed:
        text = text.replace(name, " ")
    return ASCII_RUN.findall(text)
