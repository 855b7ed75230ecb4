"""The bare explainer call in-process, as a user of shap + scikit-learn would write it.

Tree models (docs/operations/benchmarks.md#the-bare-call): ``pipeline.predict_proba(row_df)`` +
``TreeExplainer(estimator, pre.transform(background), model_output="probability",
feature_perturbation="interventional").shap_values(pre.transform(row_df))``. The explainer
is built once (not timed); the one-row DataFrames are built before timing starts (so the
bare figure leaves out the JSON → DataFrame step the service must do).

Non-tree models (recidivism, logistic): ``pipeline.predict_proba(row_df)`` +
``shap.ExactExplainer(f, shap.maskers.Independent(background, max_samples=100))(x)`` over
the raw features, categoricals passed as integer codes that ``f`` decodes into the
DataFrame the pipeline expects: exact interventional Shapley values against the same
100-row background the service uses, i.e. the same numbers the service returns.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import shap

from bench.data import DemoModel, load_model, rows
from bench.stats import summary

Call = Callable[[int], Any]


def _frames(model: DemoModel, data: list[dict[str, Any]]) -> list[pd.DataFrame]:
    from bench.data import typed_frame

    return [typed_frame(pd.DataFrame([r]), model.manifest["features"]) for r in data]


def tree_calls(name: str, n_rows: int) -> dict[str, Call]:
    """Named variants of the bare tree call; each takes a row index."""
    model = load_model(name)
    pipe = model.pipeline
    pre, estimator = pipe.steps[0][1], pipe.steps[-1][1]
    explainer = shap.TreeExplainer(
        estimator,
        pre.transform(model.background),
        model_output="probability",
        feature_perturbation="interventional",
    )
    frames = _frames(model, rows(name, n_rows))

    def spec(i: int) -> Any:
        row_df = frames[i % len(frames)]
        proba = pipe.predict_proba(row_df)
        values = explainer.shap_values(pre.transform(row_df))
        return proba, values

    def no_check(i: int) -> Any:
        row_df = frames[i % len(frames)]
        proba = pipe.predict_proba(row_df)
        values = explainer.shap_values(pre.transform(row_df), check_additivity=False)
        return proba, values

    transformed = [pre.transform(f) for f in frames]

    def predict_only(i: int) -> Any:
        return pipe.predict_proba(frames[i % len(frames)])

    def transform_only(i: int) -> Any:
        return pre.transform(frames[i % len(frames)])

    def treeshap_only(i: int) -> Any:
        return explainer.shap_values(transformed[i % len(frames)], check_additivity=False)

    return {
        "spec": spec,
        "no_check": no_check,
        "predict_proba": predict_only,
        "transform": transform_only,
        "treeshap": treeshap_only,
    }


def exact_calls(name: str, n_rows: int) -> dict[str, Call]:
    """The bare exact-Shapley call over raw features (shap.ExactExplainer)."""
    model = load_model(name)
    pipe = model.pipeline
    names = model.feature_names
    categories = model.categories
    lookup = {c: {v: k for k, v in enumerate(cats)} for c, cats in categories.items()}
    decode = {c: np.asarray(cats, dtype=object) for c, cats in categories.items()}

    def codes(frame: pd.DataFrame) -> np.ndarray:
        out = np.empty(frame.shape, dtype=np.float64)
        for j, col in enumerate(names):
            if col in lookup:
                out[:, j] = [lookup[col][v] for v in frame[col]]
            else:
                out[:, j] = frame[col].to_numpy(dtype=np.float64)
        return out

    def f(x: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(x, columns=names)
        for col, values in decode.items():
            frame[col] = values[x[:, names.index(col)].astype(np.intp)]
        return pipe.predict_proba(frame)[:, 1]

    background = codes(model.background)
    explainer = shap.ExactExplainer(f, shap.maskers.Independent(background, max_samples=100))
    frames = _frames(model, rows(name, n_rows))
    encoded = [codes(frame) for frame in frames]

    def spec(i: int) -> Any:
        proba = pipe.predict_proba(frames[i % len(frames)])
        explanation = explainer(encoded[i % len(frames)], silent=True)
        return proba, explanation

    return {"spec": spec}


def time_calls(call: Call, n: int, warmup: int, budget_s: float) -> dict[str, Any]:
    """p50/p95 over ``n`` calls (fewer if ``budget_s`` runs out), and one-thread throughput."""
    for i in range(warmup):
        call(i)
    durations: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        durations.append(time.perf_counter() - t0)
        if time.perf_counter() - started > budget_s:
            break
    elapsed = time.perf_counter() - started
    out = summary(durations)
    out["per_s"] = len(durations) / elapsed
    return out


def _worker(
    kind: str, name: str, n_rows: int, duration: float, limit: int, barrier: Any, results: Any
) -> None:
    calls = tree_calls(name, n_rows) if kind == "tree" else exact_calls(name, n_rows)
    call = calls["spec"]
    for i in range(20):
        call(i)
    barrier.wait(timeout=600)
    count, started = 0, time.perf_counter()
    while count < limit and time.perf_counter() - started < duration:
        call(count)
        count += 1
    results.put((count, time.perf_counter() - started))


def parallel_throughput(
    kind: str, name: str, n_rows: int, processes: int, duration: float, limit: int
) -> float:
    """Explanations/s of ``processes`` spawned processes each running the bare call."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(kind, name, n_rows, duration, limit, barrier, results))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=600 + duration) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return sum(c for c, _ in got) / max(e for _, e in got)


def run_model(name: str, kind: str, n: int, budget_s: float, parallel_s: float) -> dict[str, Any]:
    calls = tree_calls(name, n) if kind == "tree" else exact_calls(name, n)
    warmup = 20
    result: dict[str, Any] = {"model": name, "kind": kind, "variants": {}}
    for variant, call in calls.items():
        result["variants"][variant] = time_calls(call, n, warmup, budget_s)
    if parallel_s > 0:
        result["per_s_2proc"] = parallel_throughput(kind, name, n, 2, parallel_s, 10 * n)
    return result
