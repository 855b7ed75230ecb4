"""The documentation: the site builds strictly, its configuration page lists every setting of
``app.config.Settings``, every page is in the nav, and the README stays a landing page (short,
no dated figures, links that resolve)."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
MEASURED = re.compile(
    r"\bp50\b|\bp95\b|\d\s?ms\b|\d\s?µs\b|\d[\d,]*(\.\d+)?\s?(/s|records/s|items/s)\b"
    r"|\d(\.\d+)?\s?×|\bMiB\b|\bMB\b|busy machine|quiet machine|last run",
    flags=re.I,
)
"""What a benchmark figure looks like: latencies, rates, ratios, sizes, or a run's machine."""


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_settings_hook", DOCS / "hooks/settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while being made
    spec.loader.exec_module(module)
    return module


def _env(field: str) -> str:
    return f"RATIONALE_{field.upper()}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as `make docs` builds it (strict: any warning fails)."""
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


def test_the_site_builds_strictly_and_its_configuration_page_lists_every_setting(
    site: Path,
) -> None:
    text = _text(site / "configuration" / "index.html")
    missing = [_env(name) for name in Settings.model_fields if _env(name) not in text]
    assert not missing, f"settings missing from the configuration page: {missing}"


def test_the_hook_renders_every_field_with_its_type_default_and_docstring() -> None:
    hook = _hook()
    rows = {row.field: row for row in hook.settings()}
    assert list(rows) == list(Settings.model_fields)
    rendered = hook.render()
    for name, row in rows.items():
        assert row.env == _env(name)
        assert row.description, f"{name} has no docstring in app/config.py"
        assert f"### `{row.env}` {{#{row.anchor}}}" in rendered
        assert f"- default: {row.default}" in rendered
    assert rows["secret_key"].default == "none: required"
    assert rows["max_body_bytes"].default == "`1048576` (1 MiB)"
    assert rows["additivity_tolerance_exact"].bounds == "> 0, ≤ 1e-6"


def test_the_hook_fills_only_the_configuration_page() -> None:
    hook = _hook()

    class Page:
        def __init__(self, uri: str) -> None:
            self.file = type("File", (), {"src_uri": uri})()

    marker = hook.MARKER
    assert marker not in hook.on_page_markdown(f"a\n{marker}\n", Page("configuration.md"), {}, [])
    assert hook.on_page_markdown(marker, Page("api.md"), {}, []) == marker
    with pytest.raises(ValueError):
        hook.on_page_markdown("no marker", Page("configuration.md"), {}, [])


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav] if nav.endswith(".md") else []
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_every_docs_page_is_in_the_nav_once() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = _nav_pages(config["nav"])
    assert len(in_nav) == len(set(in_nav)), "a page is in the nav twice"
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(in_nav) == pages


def test_the_readme_fits_on_a_screen_and_holds_no_dated_figures() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md is {len(lines)} lines (at most 150)"
    for number, line in enumerate(lines, 1):
        assert not DATE.search(line), f"README.md:{number} holds a date: {line}"
        assert not MEASURED.search(line), f"README.md:{number} holds a figure: {line}"


def test_the_docs_hold_no_dates_and_no_figures_of_a_run() -> None:
    run = re.compile(r"busy machine|quiet machine|last run|2-core machine", flags=re.I)
    for page in DOCS.rglob("*.md"):
        for number, line in enumerate(page.read_text().splitlines(), 1):
            where = f"{page.relative_to(ROOT)}:{number}"
            assert not DATE.search(line), f"{where} holds a date (history goes in CHANGELOG.md)"
            assert not run.search(line), f"{where} quotes a run (figures go in bench/*results.md)"


def test_the_readme_links_resolve() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local, "the README links into the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


CITATION = re.compile(r"docs/([a-z0-9_/-]+)\.md(?:#([a-z0-9_-]+))?")


def test_every_docs_page_and_anchor_the_code_cites_exists(site: Path) -> None:
    """Comments cite the manual (``docs/<page>.md#<anchor>``): each must resolve in the site."""
    root = Path(__file__).resolve().parents[1]
    missing = []
    for base in ("app", "tests", "bench"):
        for path in (root / base).rglob("*.py"):
            for page, anchor in CITATION.findall(path.read_text()):
                html = site / page / "index.html"
                if page == "index":
                    html = site / "index.html"
                if not html.exists():
                    missing.append(f"{path.relative_to(root)}: docs/{page}.md")
                elif anchor and f'id="{anchor}"' not in html.read_text():
                    missing.append(f"{path.relative_to(root)}: docs/{page}.md#{anchor}")
    assert not missing, sorted(set(missing))
