"""Wording: sentence templates per language (``app/reports/lang/<lang>.yaml``) and a model
owner's phrases per model and language (``models/<name>/wording/<lang>.yaml``).

A model's wording file sits beside its version folders, outside every version's hash, so a
model owner can improve phrases without touching an immutable version; the file's own
SHA-256 is stored with the reasons made from it. Missing phrases fall back to the
manifest's ``description`` and ``unit``, and a category's own label.

The model card's prose (owner, intended use, limitations, training data) is read from the
wording file too, in the page's language (docs/reports.md#wording): the manifest's card, inside
the version's hash, keeps the figures, and its prose stands in for English only (the manifest's
language); in any other language a passage its owner has not written says so, in that language."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.catalog.manifest import Feature, Manifest

LANGUAGES = ("en", "ja")
"""Languages with sentence templates; adding one is adding ``lang/<code>.yaml``."""
DEFAULT_LANG = "en"
LANG_DIR = Path(__file__).resolve().parent / "lang"
CARD_PROSE = ("owner", "intended_use", "limitations", "training_data")
"""The model card's entries that are prose, read in the page's language."""


@dataclass(frozen=True)
class Language:
    """Sentence templates and report strings of one language."""

    code: str
    strings: dict[str, Any]
    sha256: str

    def text(self, key: str, **values: Any) -> str:
        """A template by dotted key, filled in."""
        node: Any = self.strings
        for part in key.split("."):
            node = node[part]
        return str(node).format(**values)


@dataclass(frozen=True)
class ModelWording:
    """A model owner's phrases in one language (empty when there is no file)."""

    lang: str
    data: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None

    def feature(self, name: str) -> dict[str, Any]:
        entry = (self.data.get("features") or {}).get(name) or {}
        return entry if isinstance(entry, dict) else {}

    def outcome(self, label: str) -> str | None:
        value = (self.data.get("outcomes") or {}).get(label)
        return str(value) if value is not None else None

    def card(self, key: str) -> str | None:
        value = (self.data.get("card") or {}).get(key)
        return str(value) if value not in (None, "") else None


_lock = threading.Lock()
_languages: dict[str, Language] = {}
_models: dict[tuple[Path, str], tuple[float | None, ModelWording]] = {}


def language(code: str) -> Language:
    """The sentence templates of a language (loaded once)."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; offered: {', '.join(LANGUAGES)}")
    found = _languages.get(code)
    if found is None:
        raw = (LANG_DIR / f"{code}.yaml").read_bytes()
        found = Language(code, yaml.safe_load(raw), hashlib.sha256(raw).hexdigest())
        with _lock:
            _languages[code] = found
    return found


def model_wording(version_folder: Path, lang: str) -> ModelWording:
    """The model's wording file for a language, re-read when the file changes."""
    path = version_folder.parent / "wording" / f"{lang}.yaml"
    key = (path, lang)
    try:
        mtime: float | None = path.stat().st_mtime
    except FileNotFoundError:
        mtime = None
    cached = _models.get(key)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    if mtime is None:
        wording = ModelWording(lang)
    else:
        raw = path.read_bytes()
        data = yaml.safe_load(raw) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path} must be a mapping")
        wording = ModelWording(lang, data, hashlib.sha256(raw).hexdigest())
    with _lock:
        _models[key] = (mtime, wording)
    return wording


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{float(value):,.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Phrases:
    """How one language names a model's features, values and outcomes."""

    manifest: Manifest
    lang: Language
    wording: ModelWording

    def label(self, feature: Feature) -> str:
        """The feature's name for a person: wording, else the manifest's description."""
        own = self.wording.feature(feature.name).get("label")
        if own:
            return str(own)
        if feature.description:
            return feature.description
        return self.lang.text("unnamed_detail")

    def value(self, feature: Feature, value: Any) -> str:
        """A value as a person reads it: a category's label, a number with its unit, or
        "not given" for a missing value."""
        if value is None or (isinstance(value, float) and value != value):
            return self.lang.text("missing_value")
        entry = self.wording.feature(feature.name)
        if feature.type == "categorical":
            labels = entry.get("categories") or {}
            return str(labels.get(str(value), value))
        text = _number(float(value))
        unit = entry.get("unit", feature.unit)
        return self.lang.text("value_with_unit", value=text, unit=unit) if unit else text

    def outcome(self, label: str) -> str:
        """A class label as a person reads it."""
        return self.wording.outcome(label) or label

    def goal(self) -> str:
        """The favourable outcome as the goal in a sentence ("approval")."""
        goal = self.wording.data.get("goal")
        if goal:
            return str(goal)
        if self.manifest.task == "regression":
            return self.lang.text("goal_regression")
        return self.lang.text("goal_default", outcome=self.outcome(self.manifest.favorable))

    def card(self) -> dict[str, Any]:
        """The model card in this language: its prose from the wording file (in English, else
        the manifest's), a passage not written in this language said to be so; its other
        entries (the figures) from the manifest."""
        manifest_card = self.manifest.card or {}
        card = {k: v for k, v in manifest_card.items() if k not in CARD_PROSE}
        for key in CARD_PROSE:
            own = self.wording.card(key)
            if own is None and self.lang.code == DEFAULT_LANG:
                own = manifest_card.get(key) or None
            if own is None and manifest_card.get(key):
                own = self.lang.text("card_not_written")
            if own is not None:
                card[key] = str(own)
        return card


def phrases(manifest: Manifest, version_folder: Path, lang: str) -> Phrases:
    """The phrases of a model version in a language."""
    return Phrases(manifest, language(lang), model_wording(version_folder, lang))
