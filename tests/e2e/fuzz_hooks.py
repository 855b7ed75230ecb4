"""Schemathesis hooks of the fuzz test: a check that a schema-valid request refused with 422 was
refused for a reason its operation documents (``x-refused-when``, docs/api.md#openapi).

The fuzz test lets an operation that documents such reasons answer 422 to schema-valid input
(``positive_data_acceptance``); this check then holds every such 422 to the document: each
field the problem names must be one the operation lists (or a field under it), so a 422 for any
other reason is still a failure. Loaded with ``SCHEMATHESIS_HOOKS=tests.e2e.fuzz_hooks``; each
422 it examines is written to the file ``RATIONALE_FUZZ_CHECKED`` names, if set."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

REFUSED = "x-refused-when"
ALLOWED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]
"""Schemathesis's default acceptable statuses for schema-valid input, and 422."""


def refusals(operation: dict[str, Any]) -> list[dict[str, str]]:
    """The documented refusals of schema-valid input of one operation of the document."""
    listed = ((operation.get("responses") or {}).get("422") or {}).get(REFUSED) or []
    return [r for r in listed if isinstance(r, dict)]


def config(document: dict[str, Any]) -> str:
    """A schemathesis.toml allowing 422 to schema-valid input where, and only where, the
    document lists why."""
    lines = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if refusals(operation):
                statuses = ", ".join(f'"{s}"' for s in ALLOWED)
                lines += [
                    "[[operations]]",
                    f'include-name = "{method.upper()} {path}"',
                    f"checks.positive_data_acceptance.expected-statuses = [{statuses}]",
                    "",
                ]
    return "\n".join(lines)


def _named(field: str, documented: set[str]) -> bool:
    return any(field == d or field.startswith(d + ".") for d in documented)


@schemathesis.check
def refused_as_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 422 to schema-valid input names only the fields the operation documents."""
    meta = case.meta
    if response.status_code != 422 or meta is None or not meta.generation.mode.is_positive:
        return None
    documented = {r["field"] for r in refusals(case.operation.definition.raw)}
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        errors = []
    named = [e.get("field", "") for e in errors if isinstance(e, dict)]
    undocumented = [f for f in named if not _named(f, documented)] or ([] if named else ["?"])
    if tally := os.environ.get("RATIONALE_FUZZ_CHECKED"):
        with open(tally, "a") as handle:  # the fuzz test counts the 422s held to the document
            handle.write(f"{case.operation.label} {sorted(named)}\n")
    if undocumented:
        raise AssertionError(
            f"schema-valid input refused with 422 on {undocumented}, which "
            f"{case.operation.label} does not document (documented: {sorted(documented)}): "
            f"{response.text[:300]}"
        )
    return None
