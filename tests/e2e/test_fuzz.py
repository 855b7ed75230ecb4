"""The OpenAPI document is the contract, checked against a real server: schema-driven
fuzzing (schemathesis), and a client generated from it (openapi-python-client).

Every operation the app serves (read from /openapi.json, not a list kept here), with an
admin key: schemathesis's examples, coverage, fuzzing and stateful phases (the create
operation links to reading, reading by decision id and replaying), every check
(``--checks all``): no 5xx, every status code documented, every response matching its schema
and content type, auth enforced, schema-invalid input refused and schema-valid input accepted
(docs/api.md#openapi). Where an operation's 422 lists reasons its schema cannot state
(``x-refused-when``), schema-valid input may get that 422, and the hook check in
``fuzz_hooks.py`` holds each such 422 to the fields listed. The seed is random unless
``RATIONALE_FUZZ_SEED`` is set, and always printed."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.e2e import fuzz_hooks
from tests.helpers import KEYS, REPO, Server, instances, unique_id

pytestmark = pytest.mark.server
MIN_CASES = 1500
EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("fuzz")
    running = Server(f"sqlite:///{workdir / 'fuzz.db'}", workdir).start()
    try:
        yield running
    finally:
        running.stop()


def test_generated_requests_get_documented_answers_matching_the_schema(
    server: Server, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RATIONALE_FUZZ_SEED") or random.SystemRandom().randrange(2**31))
    print(f"schemathesis seed: {seed} (rerun with RATIONALE_FUZZ_SEED={seed})")
    document = httpx.get(f"{server.url}/openapi.json").json()
    operations = sum(len(item) for item in document["paths"].values())
    config = tmp_path / "schemathesis.toml"
    config.write_text(fuzz_hooks.config(document))
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(config),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEYS['admin']}",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--workers",
        "1",
        "--seed",
        str(seed),
        "--request-timeout",
        "60",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    checked = tmp_path / "checked.txt"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
        "RATIONALE_FUZZ_CHECKED": str(checked),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"seed {seed}\n{output}"
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(f"schemathesis: {cases} over {summary['operations']}")
    assert summary["operations"]["tested"] == operations, summary["operations"]
    assert summary["failures"] == [] and summary["errors"] == [], output
    assert cases["generated"] >= MIN_CASES, cases
    assert cases["with_failures"] == 0, cases
    # The hook check ran: schema-valid input refused for documented reasons was seen and held
    # to the document, on several of the operations that list reasons.
    held = checked.read_text().splitlines() if checked.exists() else []
    assert len({line.split(" [")[0] for line in held}) >= 5, held[:20]
    statuses = [
        json.loads(line).get("status") for line in server.log().splitlines() if line[:1] == "{"
    ]
    assert statuses and not [s for s in statuses if isinstance(s, int) and s >= 500]


class _Case:
    """What the hook check reads of a schemathesis case (a positive one)."""

    def __init__(self, operation: dict[str, object]) -> None:
        self.meta = SimpleNamespace(
            generation=SimpleNamespace(mode=SimpleNamespace(is_positive=True))
        )
        self.operation = SimpleNamespace(definition=SimpleNamespace(raw=operation), label="GET /x")


def test_the_hook_check_holds_a_422_to_the_refusals_the_document_lists(server: Server) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    query = document["paths"]["/v1/explanations"]["get"]
    assert {r["field"] for r in fuzz_hooks.refusals(query)} >= {"cursor", "since", "until"}
    listed = fuzz_hooks.config(document)
    assert 'include-name = "GET /v1/explanations"' in listed
    assert 'include-name = "GET /v1/explanations/{record_id}"' not in listed  # nothing to refuse

    def answer(field: str) -> httpx.Response:
        body = {"status": 422, "errors": [{"field": field, "message": "refused"}]}
        return httpx.Response(422, json=body)

    check = fuzz_hooks.refused_as_documented
    assert check(None, answer("cursor"), _Case(query)) is None
    assert check(None, answer("until"), _Case(query)) is None
    with pytest.raises(AssertionError, match="limit"):
        check(None, answer("limit"), _Case(query))
    with pytest.raises(AssertionError):
        check(None, httpx.Response(422, json={"status": 422}), _Case(query))
    assert check(None, httpx.Response(200, json={}), _Case(query)) is None


def test_a_generated_client_explains_a_decision_with_typed_attributions(
    server: Server, tmp_path: Path
) -> None:
    """openapi-python-client turns the live OpenAPI into a package whose calls read
    ``explanations.create(...)`` and whose records are typed down to each attribution."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--url",
            f"{server.url}/openapi.json",
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "rationale_client"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout, generated.stdout
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("rationale_client")
        explanations = importlib.import_module("rationale_client.api.explanations")
        models = importlib.import_module("rationale_client.models")
        from rationale_client.api.explanations import create, get  # type: ignore[import-not-found]
        from rationale_client.api.models import get_model  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    assert {"create", "get", "get_by_decision", "query", "export", "replay"} <= set(
        m.name for m in pkgutil.iter_modules(explanations.__path__)
    )
    client = client_module.AuthenticatedClient(base_url=server.url, token=KEYS["backend"])

    card = get_model.sync(client=client, name="credit-risk")
    assert isinstance(card, models.LatestModelCard), card
    names = [f.name for f in card.features]
    row = instances("credit-risk", 3)[2]
    body = models.ExplainRequest.from_dict(
        {"model": "credit-risk", "decision_id": unique_id("client"), "instance": row}
    )
    record = create.sync(client=client, body=body)
    assert isinstance(record, models.ExplanationRecord), record
    explanation = record.explanation
    assert isinstance(explanation, models.ExplanationBody)
    attributions = explanation.attributions
    assert all(isinstance(a, models.Attribution) for a in attributions)
    assert sorted(a.feature for a in attributions) == sorted(names)
    assert all(isinstance(a.contribution, float) for a in attributions)
    assert {a.feature: a.value for a in attributions} == row
    total = explanation.base_value + sum(a.contribution for a in attributions)
    assert abs(total - explanation.model_output) <= 1e-4
    assert isinstance(record.prediction, models.Prediction)
    assert record.prediction.label in ("good", "bad")

    again = get.sync(client=client, record_id=uuid.UUID(record.id))
    assert isinstance(again, models.ExplanationRecord)
    # A backend key reads the record with the person's values withheld (null).
    assert [(a.feature, a.contribution, a.value) for a in again.explanation.attributions] == [
        (a.feature, a.contribution, None) for a in attributions
    ]

    refused = create.sync(
        client=client,
        body=models.ExplainRequest.from_dict(
            {"model": "credit-risk", "decision_id": unique_id("client"), "instance": {}}
        ),
    )
    assert isinstance(refused, models.Problem), refused
    assert refused.status == 422
    assert {e.field for e in refused.errors} >= {f"instance.{n}" for n in names}
