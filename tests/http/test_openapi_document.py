"""The OpenAPI document is the contract: the served one equals `docs/api/openapi.json`.

A change to the API shows up as a change to that file in review. To accept a deliberate change,
write the file anew:
`RATIONALE_WRITE_OPENAPI=1 .venv/bin/pytest tests/http/test_openapi_document.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.json"


def render(document: object) -> str:
    """The document as committed: two-space JSON, keys in the server's order, one final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def test_the_served_document_equals_the_committed_copy(client: TestClient) -> None:
    served = render(client.get("/openapi.json").json())
    if os.environ.get("RATIONALE_WRITE_OPENAPI") == "1":
        COMMITTED.write_text(served)
    assert COMMITTED.exists(), f"{COMMITTED} is missing: write it with RATIONALE_WRITE_OPENAPI=1"
    committed = COMMITTED.read_text()
    assert served == committed, (
        "the served OpenAPI document differs from docs/api/openapi.json; if the change is meant,"
        " write it anew with RATIONALE_WRITE_OPENAPI=1 and review the diff"
    )
