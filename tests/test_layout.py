"""The house: a newcomer finds a behaviour from the folder names alone.

No folder under ``app/`` holds two modules whose names differ only by a plural or a suffix;
every package and module says in its first docstring line what it holds; the shared layers
stay below the domains (``explain/`` a pure library, ``ledger/`` below everything)."""

from __future__ import annotations

import ast
import re
from itertools import combinations
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
DOMAINS = {
    "access",
    "batches",
    "catalog",
    "explanations",
    "fairness",
    "health",
    "integrity",
    "person",
    "records",
    "reports",
    "reviews",
    "subjects",
}
SHARED = {"compute", "explain", "http", "ledger", "runtime", "web"}


def _root(name: str) -> str:
    """A module name without a suffix (``_tables``) or a plural or gerund ending."""
    head = name.split("_", 1)[0]
    return re.sub(r"(ies|es|s|ing)$", "", head)


def _folders() -> list[Path]:
    """Every folder of ``app/`` but the migration scripts (named by date and slug)."""
    return [
        APP,
        *(
            p
            for p in APP.rglob("*")
            if p.is_dir() and p.name != "__pycache__" and p.name != "versions"
        ),
    ]


def _names(folder: Path) -> list[str]:
    modules = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
    packages = [p.name for p in folder.iterdir() if (p / "__init__.py").exists()]
    return modules + packages


def test_no_folder_holds_two_names_that_differ_only_by_a_plural_or_a_suffix() -> None:
    clashes = []
    for folder in _folders():
        for a, b in combinations(sorted(_names(folder)), 2):
            if _root(a) == _root(b):
                clashes.append(f"{folder.relative_to(APP.parent)}: {a} / {b}")
    assert not clashes, clashes


def test_the_root_rule_catches_what_it_is_for() -> None:
    for a, b in (("audit", "audits"), ("batches", "batching"), ("batches", "batch_tables")):
        assert _root(a) == _root(b), (a, b)
    assert _root("repository") != _root("reports")


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


def test_every_package_and_module_says_in_its_first_docstring_line_what_it_holds() -> None:
    missing = [
        str(p.relative_to(APP.parent))
        for p in APP.rglob("*.py")
        if "migrations/versions" not in p.as_posix() and len(_first_line(p)) < 10
    ]
    assert not missing, missing


def test_there_is_a_package_per_domain_over_the_shared_layers() -> None:
    packages = {p.name for p in APP.iterdir() if (p / "__init__.py").exists()}
    assert packages >= DOMAINS | SHARED, sorted((DOMAINS | SHARED) - packages)
    for domain in DOMAINS - {"access"}:
        assert (APP / domain / "endpoints.py").exists(), f"{domain} has no endpoints.py"
        assert (APP / domain / "service.py").exists(), f"{domain} has no service.py"


def _imports(folder: Path) -> set[tuple[str, str]]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                where = str(path.relative_to(APP.parent))
                found |= {(where, f"{node.module}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {(str(path.relative_to(APP.parent)), a.name) for a in node.names}
    return found


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [
        ("explain", {"app.explain"}),
        # the writer counts its commits in the process's metrics (a registry, no domain)
        ("ledger", {"app.ledger", "app.errors", "app.config", "app.runtime.metrics"}),
    ],
)
def test_the_shared_layers_import_nothing_above_them(layer: str, allowed: set[str]) -> None:
    bad = sorted(
        (where, module)
        for where, module in _imports(APP / layer)
        if module.split(".")[0] == "app"
        and not any(module == a or module.startswith(a + ".") for a in allowed)
    )
    assert not bad, bad
    if layer == "explain":
        web = sorted(
            (w, m)
            for w, m in _imports(APP / layer)
            if m.split(".")[0] in {"fastapi", "starlette", "sqlalchemy"}
        )
        assert not web, web


def test_the_readme_picture_and_the_architecture_page_name_every_package() -> None:
    """The architecture picture matches the folders: no package is left out of either, and
    neither names a package that does not exist."""
    readme = (APP.parent / "README.md").read_text()
    picture = re.search(r"## Architecture\n+```\n(.*?)```", readme, flags=re.S)
    assert picture, "the README lost its architecture picture"
    page = (APP.parent / "docs" / "architecture.md").read_text()
    packages = {p.name for p in APP.iterdir() if (p / "__init__.py").exists()}
    drawn = set(re.findall(r"\b([a-z]+)/", picture.group(1))) | set(
        re.findall(r"^\s*([a-z]+(?:\s+[a-z]+)+)\s*$", picture.group(1), flags=re.M)
    )
    named = set()
    for item in drawn:
        named |= set(item.split())
    assert packages <= named, sorted(packages - named)
    tabled = set(re.findall(r"^\| `app/([a-z_]+)/` \|", page, flags=re.M))
    assert tabled == packages, (sorted(packages - tabled), sorted(tabled - packages))
