"""Reports section. Counterfactuals: on the credit-risk holdout set (the recipe's own split),
every adverse decision gets a counterfactual search; p50/p95 per explanation and the found
rate (docs/reports.md#what-would-change-the-outcome; floors: found ≥ 90 %, p50 ≤ 150 ms, p95 ≤ 500
ms). Reasons: their cost on the decision path, in-process, against the explanation they come with
(same rows, same run): ``compute_one`` alone (the path before reasons) and ``compute_one`` +
reasons."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"

FLOOR_FOUND, FLOOR_P50_MS, FLOOR_P95_MS = 0.90, 150.0, 500.0


def holdout_rows(name: str) -> list[dict[str, Any]]:
    """The holdout rows of a demo model, split exactly as models/train.py splits them, as
    request instances (integral numbers as JSON integers)."""
    sys.path.insert(0, str(MODELS_DIR))
    try:
        from _common import names, stratified_split, typed

        path = MODELS_DIR / name / "recipe.py"
        spec = importlib.util.spec_from_file_location(f"recipe_{name.replace('-', '_')}", path)
        assert spec is not None and spec.loader is not None
        recipe = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(recipe)
    finally:
        sys.path.remove(str(MODELS_DIR))
    raw, y_raw = recipe.load()
    y = [str(v) for v in y_raw]
    import pandas as pd

    x = typed(raw, recipe.FEATURES)
    _, holdout = getattr(recipe, "split", stratified_split)(raw, pd.Series(y, index=raw.index))
    numeric = set(names(recipe.FEATURES, "numeric"))
    rows = []
    for record in x.loc[holdout].to_dict(orient="records"):
        rows.append(
            {
                k: (int(v) if k in numeric and float(v).is_integer() else v)
                for k, v in record.items()
            }
        )
    return rows


def adverse_rows(model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose predicted class is not the favourable one."""
    manifest = model.manifest
    favourable = (manifest.classes or []).index(manifest.favorable)
    raw = model.model.raw_output(model.model.encode(rows))
    return [r for r, p in zip(rows, raw, strict=True) if int(np.argmax(p)) != favourable]


def run(limit: int | None = None) -> dict[str, Any]:
    """Time the search on every adverse holdout decision of credit-risk."""
    from app.catalog.model import load_version
    from app.reports.counterfactual import counterfactual

    folder = max((MODELS_DIR / "credit-risk").glob("[0-9]*"), key=lambda p: int(p.name))
    model = load_version(folder, allow_unsafe=False)
    rows = adverse_rows(model, holdout_rows("credit-risk"))[:limit]
    times, statuses = [], []
    counterfactual(model, rows[0])  # warm-up
    for row in rows:
        started = time.perf_counter()
        result = counterfactual(model, row)
        times.append((time.perf_counter() - started) * 1000)
        statuses.append(result["status"])
    found = statuses.count("found") / len(statuses)
    return {
        "model": f"credit-risk/{folder.name}",
        "adverse": len(rows),
        "found_rate": found,
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "max_ms": float(np.max(times)),
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
    }


def run_reasons(names: list[str], n: int) -> dict[str, Any]:
    """p50 of the explanation alone and with its reasons (in-process, one thread)."""
    from app.catalog.model import load_version
    from app.compute.batcher import compute_one
    from app.explanations.service import command_from_body, reasons_for

    out: dict[str, Any] = {}
    for name in names:
        folder = max((MODELS_DIR / name).glob("[0-9]*"), key=lambda p: int(p.name))
        model = load_version(folder, allow_unsafe=False)
        rows = holdout_rows(name)[:n]
        commands = [
            command_from_body({"model": name, "decision_id": f"b-{i}", "instance": row})
            for i, row in enumerate(rows)
        ]
        alone, both, reasons_only = [], [], []
        for row, command in zip(rows, commands, strict=True):
            started = time.perf_counter()
            computed = compute_one(model, row, command)
            middle = time.perf_counter()
            label = model.manifest.classes[int(np.argmax(computed.raw))]  # type: ignore[index]
            reasons_for(model, command, row, computed.explanation, label, label)
            ended = time.perf_counter()
            alone.append((middle - started) * 1000)
            both.append((ended - started) * 1000)
            reasons_only.append((ended - middle) * 1000)
        out[name] = {
            "n": len(rows),
            "explain_p50_ms": float(np.percentile(alone, 50)),
            "with_reasons_p50_ms": float(np.percentile(both, 50)),
            "reasons_p50_ms": float(np.percentile(reasons_only, 50)),
            "reasons_p95_ms": float(np.percentile(reasons_only, 95)),
        }
    return out


if __name__ == "__main__":
    print(run())
