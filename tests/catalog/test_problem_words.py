"""What a refused model version is told (docs/models.md#upload): every manifest problem under
its field path (``manifest.name``, ``manifest.features.2.type``) in words, never pydantic's
raw text or its documentation links; every problem with the artifact or the background says
what is wrong with the file in words, never an exception's class. The same holds for the
reasons the folder scan gives in ``/readyz`` and the model list."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from app.main import create_app
from tests.catalog.conftest import SKOPS
from tests.contract import ContractClient
from tests.helpers import MODELS, auth, make_settings

MODEL = "recidivism"
SOURCE = MODELS / MODEL / "1"
INTERNALS = re.compile(
    r"pydantic|errors\.pydantic\.dev|Value error|input_value|input_type|\[type=|Traceback"
    r"|BadZipFile|zipfile\.|\b[A-Z][A-Za-z]*(Error|Exception)\b"
)
"""What a problem must not show: pydantic's raw text and links, exception class names."""
NAME_RULE = (
    "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, with no '..'"
)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(SOURCE, folder / MODEL / "1")
    return folder


def start(models: Path, tmp_path: Path) -> TestClient:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'r.db'}",
        models_dir=models,
        max_upload_bytes=400_000,
        checkpoint_every_records=0,
        checkpoint_every_seconds=0,
    )
    return ContractClient(create_app(settings))


@pytest.fixture
def client(models: Path, tmp_path: Path) -> Iterator[TestClient]:
    with start(models, tmp_path) as test_client:
        yield test_client


def manifest_for(version: str, artifact: bytes, **replace: str) -> str:
    text = (SOURCE / "model.yaml").read_text().replace("version: '1'", f"version: '{version}'")
    current = hashlib.sha256((SOURCE / "model.skops").read_bytes()).hexdigest()
    text = text.replace(current, hashlib.sha256(artifact).hexdigest())
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def files(
    manifest: str, artifact: bytes | None = None, background: bytes | None = None
) -> dict[str, Any]:
    return {
        "manifest": ("model.yaml", manifest.encode(), "application/yaml"),
        "artifact": ("model.skops", artifact or SKOPS.read_bytes(), "application/octet-stream"),
        "background": (
            "background.csv",
            background or (SOURCE / "background.csv").read_bytes(),
            "text/csv",
        ),
    }


def problems(response: Any) -> dict[str, str]:
    """The refusal's field errors, checked to show no internals."""
    assert response.status_code == 422, response.text
    assert not INTERNALS.search(response.text), response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


SKOPS_SHA = hashlib.sha256(SKOPS.read_bytes()).hexdigest()
ALIASES = "card:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a]\n"
MANIFEST_CASES: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("unsafe name", {f"name: {MODEL}": "name: '..'"}, {"manifest.name": NAME_RULE}),
    (
        "a feature's type",
        {"- name: juv_fel_count\n  type: numeric": "- name: juv_fel_count\n  type: text"},
        {"manifest.features.2.type": "must be 'numeric' or 'categorical'"},
    ),
    (
        "several at once",
        {"task: classification": "tsak: classification", "sha256: ": "sha256: x"},
        {
            "manifest.task": "is required",
            "manifest.tsak": "is not a field of model.yaml",
            "manifest.sha256": "64 lowercase hexadecimal characters",
        },
    ),
    (
        "a feature-level rule",
        {"  categories: [Female, Male]\n": ""},
        {"manifest.features.0": "categorical feature 'sex' needs its categories"},
    ),
    (
        "a manifest-level rule",
        {"favorable: 'no'": "favorable: maybe"},
        {"manifest": "favorable must be one of the classes"},
    ),
    ("not YAML", {"task: classification": "task: [classification"}, {"manifest": "not valid YAML"}),
    (
        "an unknown format",
        {"artifact: model.skops": "artifact: {estimator: model.txt, format: catboost}"},
        {"manifest.artifact.format": "must be 'skops', 'xgboost' or 'lightgbm'"},
    ),
    (
        "a hash that is not a map of parts",
        {"artifact: model.skops": "artifact: {estimator: model.txt, format: lightgbm}"},
        {"manifest.sha256": "with an artifact given as parts, sha256 maps each part"},
    ),
    (
        "a pickle named as a LightGBM model, a part's hash",
        {
            "artifact: model.skops": "artifact: {estimator: model.pkl, format: lightgbm}",
            f"sha256: {SKOPS_SHA}": "sha256: {estimator: abc}",
        },
        {
            "manifest.artifact.estimator": "pickle and joblib files are never read as one",
            "manifest.sha256.estimator": "must be the estimator's SHA-256 as 64 lowercase",
        },
    ),
    (
        "a preprocessor without its hash, an unsafe part name",
        {
            "artifact: model.skops": "artifact: {preprocessor: ../pre.skops, estimator: m.ubj, "
            "format: xgboost}",
            f"sha256: {SKOPS_SHA}": f"sha256: {{estimator: {SKOPS_SHA}}}",
        },
        {
            "manifest.artifact.preprocessor": "must be a plain file name inside the version",
        },
    ),
    (
        "a framework file as the one artifact",
        {"artifact: model.skops": "artifact: model.ubj"},
        {"manifest.artifact": "artifact: {estimator: model.ubj, format: xgboost}"},
    ),
    ("aliases", {"card:": ALIASES + "other:"}, {"manifest": "uses a YAML alias (*a, line"}),
]


@pytest.mark.parametrize(("label", "replace", "expected"), MANIFEST_CASES)
def test_manifest_problems_name_their_field_in_words(
    client: TestClient, label: str, replace: dict[str, str], expected: dict[str, str]
) -> None:
    text = manifest_for("2", SKOPS.read_bytes(), **replace)
    found = problems(client.post("/v1/models", files=files(text), headers=auth("admin")))
    assert set(found) == set(expected), (label, found)
    for field, words in expected.items():
        assert words in found[field], (label, found)


def test_a_manifest_that_is_not_a_mapping_is_refused_in_words(client: TestClient) -> None:
    response = client.post(
        "/v1/models", files=files("- a list\n- of words\n"), headers=auth("admin")
    )
    assert problems(response) == {
        "manifest": "must be a mapping of fields (name: ..., version: ...)"
    }


def _skops_with(change: Any) -> bytes:
    """The real recidivism artifact with its members rewritten by ``change`` (name, data)
    -> data or None (dropped)."""
    out = io.BytesIO()
    with zipfile.ZipFile(SKOPS) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            data = change(info.filename, source.read(info))
            if data is not None:
                z.writestr(info.filename, data)
    return out.getvalue()


def _schema(edit: Any) -> Any:
    def change(name: str, data: bytes) -> bytes:
        return edit(json.loads(data)) if name == "schema.json" else data

    return change


def _mismatched_pipeline() -> bytes:
    """A real Pipeline whose scaler reads the two numeric features but whose estimator was
    fitted on three columns: it loads, and every prediction raises."""
    rng = np.random.default_rng(0)
    background = pd.read_csv(SOURCE / "background.csv")
    numeric = list(background.select_dtypes("number").columns[:2])
    three = rng.normal(size=(60, 3))
    labels = np.where(three[:, 0] > 0, "yes", "no")
    pipeline = Pipeline(
        [
            ("scale", StandardScaler().fit(background[numeric])),
            ("model", LogisticRegression().fit(three, labels)),
        ]
    )
    return sio.dumps(pipeline)


ARTIFACT_CASES: list[tuple[str, bytes, str]] = [
    ("not a zip", b"not a zip archive at all", "model.skops is not a zip archive"),
    ("cut short", SKOPS.read_bytes()[:3000], "model.skops is not a zip archive"),
    (
        "no schema",
        _skops_with(lambda n, d: None if n == "schema.json" else d),
        "is not a skops file: it holds no schema.json",
    ),
    (
        "schema not JSON",
        _skops_with(lambda n, d: b"{not json" if n == "schema.json" else d),
        "its schema.json is not valid JSON (Expecting property name",
    ),
    (
        "schema without a key",
        _skops_with(_schema(lambda s: json.dumps({**s, "__module__": None}).encode())),
        "is not a readable skops file",
    ),
    (
        "schema of the wrong shape",
        _skops_with(_schema(lambda s: json.dumps({**s, "content": 5}).encode())),
        "does not describe objects the way skops writes them",
    ),
    (
        "an array missing",
        _skops_with(lambda n, d: None if n.endswith(".npy") else d),
        "There is no item named",
    ),
    (
        "predictions fail",
        _mismatched_pipeline(),
        "predicting its background rows failed: The feature names should match",
    ),
]


@pytest.mark.parametrize(("label", "artifact", "words"), ARTIFACT_CASES)
def test_artifact_problems_say_what_is_wrong_in_words(
    client: TestClient, label: str, artifact: bytes, words: str
) -> None:
    response = client.post(
        "/v1/models", files=files(manifest_for("2", artifact), artifact), headers=auth("admin")
    )
    found = problems(response)
    assert list(found) == ["artifact"] and words in found["artifact"], (label, found)


REAL_BACKGROUND = (SOURCE / "background.csv").read_text()
BACKGROUND_CASES: list[tuple[str, bytes, str]] = [
    (
        "a value not a number",
        REAL_BACKGROUND.replace("Male,44.0,", "Male,old,", 1).encode(),
        "numeric feature age holds a value that is not a number (line 2: 'old')",
    ),
    ("not UTF-8", REAL_BACKGROUND.encode("utf-16"), "is not UTF-8 text"),
    ("empty", b"\n", "is empty"),
    ("a missing feature", b"nothing\n1\n", "background lacks features"),
]


@pytest.mark.parametrize(("label", "background", "words"), BACKGROUND_CASES)
def test_background_problems_name_the_background_in_words(
    client: TestClient, label: str, background: bytes, words: str
) -> None:
    text = manifest_for("2", SKOPS.read_bytes())
    response = client.post(
        "/v1/models", files=files(text, background=background), headers=auth("admin")
    )
    found = problems(response)
    assert list(found) == ["background"] and words in found["background"], (label, found)


def test_the_folder_scan_gives_the_same_reasons_in_words(models: Path, tmp_path: Path) -> None:
    expected: dict[str, str] = {}

    def drop(version: str, manifest: str, artifact: bytes, words: str) -> None:
        folder = models / MODEL / version
        shutil.copytree(SOURCE, folder)
        (folder / "model.yaml").write_text(manifest)
        (folder / "model.skops").write_bytes(artifact)
        expected[f"{MODEL}/{version}"] = words

    unsafe = manifest_for("20", SKOPS.read_bytes(), **{f"name: {MODEL}": "name: '..'"})
    drop("20", unsafe, SKOPS.read_bytes(), f"invalid model.yaml: name: {NAME_RULE}")
    typed = manifest_for(
        "21",
        SKOPS.read_bytes(),
        **{"- name: juv_fel_count\n  type: numeric": "- name: juv_fel_count\n  type: text"},
    )
    drop("21", typed, SKOPS.read_bytes(), "features.2.type: must be 'numeric' or 'categorical'")
    for number, (_, artifact, words) in enumerate(ARTIFACT_CASES, start=30):
        drop(str(number), manifest_for(str(number), artifact), artifact, words)
    with start(models, tmp_path) as client:
        ready = client.get("/readyz")
        listed = client.get("/v1/models", headers=auth("admin"))
        assert not INTERNALS.search(ready.text), ready.text
        assert not INTERNALS.search(listed.text), listed.text
        for reasons in (
            {r["folder"]: r["reason"] for r in ready.json()["refused_versions"]},
            {r["folder"]: r["reason"] for r in listed.json()["refused"]},
        ):
            assert set(reasons) == set(expected), reasons
            for folder, words in expected.items():
                assert words in reasons[folder], (folder, reasons[folder])
