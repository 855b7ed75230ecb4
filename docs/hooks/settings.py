"""MkDocs hook: the configuration page is written from ``app.config.Settings`` at build time.

Where the page holds the marker ``<!-- settings -->``, the hook puts a summary table and then
one section per field, in the order the class declares them: the environment variable
(``RATIONALE_`` + the field name in capitals), its type, its default, the bounds the class
enforces, and the field's docstring. Nothing is copied by hand, so the page cannot drift from
the code; ``tests/test_docs.py`` checks that every field is on the page.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

MARKER = "<!-- settings -->"
PAGE = "configuration.md"


@dataclass(frozen=True)
class Setting:
    """One field of ``Settings`` as the configuration page shows it."""

    field: str
    env: str
    type: str
    default: str
    bounds: str
    description: str

    @property
    def anchor(self) -> str:
        return self.env.lower()


def _settings_class() -> type[BaseSettings]:
    from app.config import Settings

    return Settings


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Each field's docstring: the string literal written right under its annotation."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    found: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[node.target.id] = inspect.cleandoc(after.value.value)
    return found


_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean (`true` or `false`)",
    Path: "path",
}


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        names = " or ".join(_type_name(a) for a in args)
        return f"{names}, or unset" if len(args) < len(typing.get_args(annotation)) else names
    if getattr(annotation, "__name__", "") == "SecretStr":
        return "string, held as a secret (masked when printed)"
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bytes(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % size == 0:
            return f" ({value // size} {unit})"
    return ""


def _default(name: str, info: Any) -> str:
    if info.is_required():
        return "none: required"
    value = info.default
    if value is None:
        return "unset"
    if getattr(type(value), "__name__", "") == "SecretStr":
        return "empty" if not value.get_secret_value() else "set (secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        text = str(value)
        shown = text if value.is_absolute() or text.startswith(".") else f"./{text}"
        return f"`{shown}`"
    if isinstance(value, int):
        return f"`{value}`" + (_bytes(value) if name.endswith("_bytes") else "")
    if isinstance(value, float):
        return f"`{_number(value)}`"
    return f"`{value}`"


def _number(value: float) -> str:
    """A float as people write it: ``1e-6``, ``0.15``, ``30``."""
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].lstrip('+')}{m[2]}", f"{value:g}")


def _bounds(info: Any) -> str:
    parts: list[str] = []
    shortest = longest = None
    for item in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(item, attr, None)
            if bound is not None:
                shown = _number(bound) if isinstance(bound, float) else str(bound)
                parts.append(f"{sign} {shown}")
        shortest = getattr(item, "min_length", shortest)
        longest = getattr(item, "max_length", longest)
        if getattr(item, "pattern", None):
            parts.append(f"matches `{item.pattern}`")
    if shortest is not None or longest is not None:
        low = shortest if shortest is not None else 0
        span = f"{low} to {longest} characters" if longest else f"{low} characters or more"
        parts.insert(0, span)
    return ", ".join(parts)


def _markdown(docstring: str) -> str:
    """A docstring as one Markdown paragraph: reST ````code```` becomes ```code```."""
    text = " ".join(docstring.split())
    return re.sub(r"``(.+?)``", r"`\1`", text)


def settings() -> list[Setting]:
    """Every field of ``Settings``, in declaration order."""
    cls = _settings_class()
    docs = attribute_docstrings(cls)
    prefix = cls.model_config.get("env_prefix", "")
    rows = []
    for name, info in cls.model_fields.items():
        description = info.description or docs.get(name, "")
        rows.append(
            Setting(
                field=name,
                env=f"{prefix}{name}".upper(),
                type=_type_name(info.annotation),
                default=_default(name, info),
                bounds=_bounds(info),
                description=_markdown(description),
            )
        )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The summary table and one section per setting, as Markdown."""
    rows = settings()
    lines = ["| variable | type | default |", "|---|---|---|"]
    lines += [f"| [`{s.env}`](#{s.anchor}) | {_cell(s.type)} | {_cell(s.default)} |" for s in rows]
    lines.append("")
    for s in rows:
        lines += [f"### `{s.env}` {{#{s.anchor}}}", ""]
        lines.append(f"- type: {s.type}")
        lines.append(f"- default: {s.default}")
        if s.bounds:
            lines.append(f"- accepted: {s.bounds}")
        lines += ["", s.description or "(no description in `app/config.py`)", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the marker of the configuration page."""
    if page.file.src_uri == PAGE:
        if MARKER not in markdown:
            raise ValueError(f"{PAGE} lost its {MARKER} marker")
        return markdown.replace(MARKER, render())
    return markdown
