"""``python -m bench``: bare explainer in-process vs the service over HTTP
(docs/operations/benchmarks.md)."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench  # noqa: F401 - sets the BLAS thread variables before numpy loads
from bench import agnostic, bare, forest, frameworks, profile_path, service, startup
from bench.data import AGNOSTIC_MODELS, EXACT_MODELS, TREE_MODELS
from bench.report import Section, contention_note, environment, machine_sample, render, table

HERE = Path(__file__).resolve().parent

FLOOR_RATIO, AIM_RATIO = 1.5, 1.0
"""Tree model: service p50 over HTTP / bare in-process p50 (floor, aim)."""
FLOOR_RATE, AIM_RATE = 250.0, 400.0
"""Tree model: explanations/s to 8 concurrent clients on 2 cores (floor, aim)."""
FLOOR_AGNOSTIC = 20.0
"""Model-agnostic: naive KernelExplainer time / ours (floor), with no larger error."""


@dataclass
class Settings:
    quick: bool
    models: list[str]
    n: int
    bare_budget_s: float
    bare_parallel_s: float
    latency_n: int
    throughput_n: int
    throughput_s: float
    concurrency: int
    warmup: int
    workers: list[int]
    cross_check: bool
    profile_n: int
    agnostic_rows: int
    """Rows timed in the agnostic section (ours and naive KernelExplainer)."""
    agnostic_error_rows: int
    """Rows (the first of those timed) with a reference (bench/agnostic.py ``run``)."""
    agnostic_budget_s: float
    """CPU-time budget of the reference rows (at least one row is always done)."""
    agnostic_cross_rows: int
    """Rows with the 20,000-sample KernelSHAP cross-check."""
    agnostic_reference_pairs: int
    """Antithetic pairs of a reference's first part (it is extended as needed)."""
    store_records: int
    store_small: int
    store_rounds: int
    store_backends: tuple[str, ...]
    audit_sizes: tuple[int, ...] = (100_000, 1_000_000)
    """Stored decisions the audit section loads and audits, smallest first."""


@dataclass
class Run:
    settings: Settings
    results: dict[str, Any] = field(default_factory=dict)


def settings_for(args: argparse.Namespace) -> Settings:
    models = (
        args.models.split(",") if args.models else [*TREE_MODELS, *EXACT_MODELS, *AGNOSTIC_MODELS]
    )
    backends = tuple(args.store_backends.split(","))
    if args.audit_sizes:
        sizes = tuple(int(n) for n in args.audit_sizes.split(","))
    else:
        sizes = (2_000, 10_000) if args.quick else (100_000, 1_000_000)
    if args.quick:
        return Settings(
            True, models, 60, 20, 0, 60, 300, 5, 8, 10, [1, 2], False, 30,
            10, 3, 40, 1, 2000,
            20_000, 5_000, 50, backends, sizes,
        )  # fmt: skip
    return Settings(
        False, models, 300, 90, 6, 300, 1500, 15, 8, 30, [1, 2], True, 200,
        40, 20, 150, 3, 10_000,
        1_000_000, 100_000, 300, backends, sizes,
    )  # fmt: skip


# -- sections -----------------------------------------------------------------------------


def section_bare(run: Run) -> Section:
    s = run.settings
    out: dict[str, Any] = {}
    body = []
    for name in s.models:
        if name in AGNOSTIC_MODELS:
            continue  # its bare comparator, naive KernelExplainer, is timed in "agnostic"
        kind = "tree" if name in TREE_MODELS else "exact"
        print(f"bare {name} ({kind}) ...", flush=True)
        result = bare.run_model(name, kind, s.n, s.bare_budget_s, s.bare_parallel_s)
        out[name] = result
        for variant, v in result["variants"].items():
            two = result.get("per_s_2proc") if variant == "spec" else None
            body.append(
                [
                    name,
                    variant,
                    v["n"],
                    v["p50_ms"],
                    v["p95_ms"],
                    v["per_s"],
                    two if two is not None else "-",
                ]
            )
            print(
                f"  {name:12s} {variant:14s} p50 {v['p50_ms']:7.3f} ms  "
                f"p95 {v['p95_ms']:7.3f} ms  {v['per_s']:7.1f}/s"
            )
        if "per_s_2proc" in result:
            print(f"  {name:12s} 2 processes: {result['per_s_2proc']:.1f}/s")
    run.results["bare"] = out
    md = (
        "One thread, one row at a time, explainer built once (not timed), 20 warm-up calls. "
        "`spec` is the call of docs/operations/benchmarks.md#the-bare-call with shap's defaults: "
        "`pipeline.predict_proba(row_df)` "
        '+ `TreeExplainer(estimator, pre.transform(background), model_output="probability", '
        'feature_perturbation="interventional").shap_values(pre.transform(row_df))` (100-row '
        "background). `no_check` is the same with `check_additivity=False`; `predict_proba`, "
        "`transform`, `treeshap` time the parts alone. For recidivism (logistic, not a tree) "
        "`spec` is `pipeline.predict_proba(row_df)` + `shap.ExactExplainer(f, "
        "shap.maskers.Independent(background, max_samples=100))(x)` over the 7 raw features "
        "(categoricals as integer codes decoded inside `f`): exact interventional Shapley "
        "values against the same background, the numbers the service returns. The one-row "
        "DataFrames are built before timing. explanations/s = calls / wall time; the 2-process "
        "column runs the `spec` call in two spawned processes at once. For breast-cancer (30 "
        "raw features, an MLP: model-agnostic) the bare call is naive `shap.KernelExplainer` "
        "with its defaults, timed in the model-agnostic section.\n\n"
        + table(
            [
                "model",
                "call",
                "n",
                "p50 ms",
                "p95 ms",
                "explanations/s (1 thread)",
                "explanations/s (2 processes)",
            ],
            body,
        )
    )
    return Section("bare", "Bare explainer call in-process", md, out)


def section_service(run: Run) -> Section:
    s = run.settings
    out: dict[str, Any] = {}
    body = []
    integrity = []
    catalogs = []
    for workers in s.workers:
        print(f"service, {workers} worker(s) ...", flush=True)
        result = service.run_workers(
            workers,
            s.models,
            n_latency=s.latency_n,
            n_throughput=s.throughput_n,
            throughput_s=s.throughput_s,
            concurrency=s.concurrency,
            warmup=s.warmup,
            cross_check=s.cross_check and workers == max(s.workers),
        )
        out[str(workers)] = result
        catalog = result.get("catalog", {})
        catalogs.append(
            [
                workers,
                (catalog.get("readyz") or {}).get("models", "-"),
                (catalog.get("readyz") or {}).get("refused", "-"),
                ", ".join(str(n) for n in catalog.get("names", [])),
            ]
        )
        for name, entry in result["models"].items():
            lat, thr = entry["latency"], entry["throughput"]
            other = entry.get("throughput_httpx")
            probe = entry.get("probe", {})
            runs = [entry["warmup"], lat, thr] + ([other] if other else [])
            refused = sum(r.get("failed_by_status", {}).get("422", 0) for r in runs)
            refused += probe.get("statuses", {}).get("422", 0)
            non201 = sum(r["failed"] for r in runs) + sum(
                n for k, n in probe.get("statuses", {}).items() if k != "201"
            )
            body.append(
                [
                    name,
                    workers,
                    ", ".join(f"`{m}`" for m in probe.get("methods", {})) or "-",
                    lat["n"],
                    lat["p50_ms"],
                    lat["p95_ms"],
                    thr["per_s"],
                    thr["p50_ms"],
                    thr["p95_ms"],
                    thr["ok"],
                    non201,
                    refused,
                    f"{100 * thr['client_cpu_share']:.0f}%",
                    f"{other['per_s']:.0f}/s" if other else "-",
                ]
            )
        integrity.append(
            [workers, result["answered_201"], result["stored"], result["verify"].get("ok")]
        )
    run.results["service"] = out
    md = (
        f"`rationale serve --workers N` on 127.0.0.1, a fresh temp SQLite database per N (WAL, "
        f"synchronous=FULL: every 201 is answered after its record is committed). Each request "
        f"has a unique decision_id. Per model: warm-up ({s.warmup} sequential + "
        f"{s.concurrency}×8 concurrent requests), then single-client latency over "
        f"{s.latency_n} requests, then throughput with {s.concurrency} clients in flight "
        f"({s.throughput_n} requests or {s.throughput_s:.0f} s, whichever first). Client: "
        "asyncio, one HTTP/1.1 keep-alive connection per client, prebuilt requests, in the "
        "bench process on the same 2 cores; its CPU use is shown. The httpx column repeats "
        "the throughput run with 8 threads × `httpx.Client` (keep-alive) as a cross-check: "
        "the heavier client takes CPU from the server. The method is what `auto` chose, read "
        f"from the bodies of {service.PROBES} sequential requests per model (the load runs do "
        "not parse bodies). non-201 counts every request that was not answered 201 (warm-up, "
        "probes and load runs); 422 counts those the service refused, e.g. a sampling "
        "estimate that did not meet its standard-error bar.\n\n"
        + "Models the server loaded (`GET /readyz`, names from `GET /v1/models`; breast-cancer "
        "is built at bench time, bench/breast_cancer.py):\n\n"
        + table(["workers", "/readyz models", "refused", "GET /v1/models"], catalogs)
        + "\n\n"
        + table(
            [
                "model",
                "workers",
                "method (auto)",
                "n",
                "p50 ms (1 client)",
                "p95 ms (1 client)",
                f"explanations/s ({s.concurrency} clients)",
                "p50 ms under load",
                "p95 ms under load",
                "201s in load run",
                "non-201",
                "of which 422",
                "client CPU",
                "httpx threads",
            ],
            body,
        )
        + "\n\nRecords: every 201 must be in the database and the chain must verify "
        "(`rationale records verify` after the server stopped).\n\n"
        + table(
            ["workers", "answered 201", "explanation records stored", "chain verifies"], integrity
        )
    )
    failures = [
        f"- {workers} worker(s), {name}, {what}: {entry[what]['failed']} failed "
        f"({entry[what].get('failed_by_status')}), e.g. "
        f"`{list(entry[what].get('failure_sample_by_status', {}).values())[:3]}`"
        for workers, result in out.items()
        for name, entry in result["models"].items()
        for what in ("latency", "throughput", "throughput_httpx")
        if what in entry and entry[what]["failed"]
    ]
    failures += [
        f"- {workers} worker(s), {name}, warm-up: {entry['warmup']['failed']} failed "
        f"({entry['warmup']['failed_by_status']})"
        for workers, result in out.items()
        for name, entry in result["models"].items()
        if entry.get("warmup", {}).get("failed")
    ]
    failures += [
        f"- {workers} worker(s), {name}, probe requests: `{entry['probe']['refusals'][:2]}`"
        for workers, result in out.items()
        for name, entry in result["models"].items()
        if entry.get("probe", {}).get("refusals")
    ]
    sampling = [
        [
            name,
            workers,
            ", ".join(f"`{m}` ×{n}" for m, n in entry["probe"]["methods"].items()),
            ", ".join(str(r) for r in entry["probe"]["rounds"]) or "-",
            entry["probe"]["max_standard_error"]
            if entry["probe"]["max_standard_error"] is not None
            else "-",
            entry["probe"]["max_additivity_residual"]
            if entry["probe"]["max_additivity_residual"] is not None
            else "-",
        ]
        for workers, result in out.items()
        for name, entry in result["models"].items()
        if name in AGNOSTIC_MODELS and "probe" in entry
    ]
    if sampling:
        md += (
            "\n\nModel-agnostic model as served (probe requests; standard error and "
            "additivity residual as reported in the response's fidelity block):\n\n"
            + table(
                [
                    "model",
                    "workers",
                    "methods",
                    "rounds",
                    "max standard error",
                    "max abs additivity residual",
                ],
                [[*r[:4], _num(r[4]), _num(r[5])] for r in sampling],
            )
        )
    if failures:
        md += "\n\nFailures:\n\n" + "\n".join(failures)
    return Section("service", "The service over HTTP", md, out)


def section_ratios(run: Run) -> Section:
    bare_r, svc = dict(run.results.get("bare") or {}), run.results.get("service")
    agnostic_r = run.results.get("agnostic")
    if agnostic_r:
        # Breast-cancer's bare call: naive KernelExplainer (predict_proba + shap_values with
        # shap's defaults), timed in the agnostic section on the same kind of rows.
        bare_r[agnostic_r["model"]] = {"variants": {"spec": agnostic_r["naive"]}}
    if not bare_r or not svc:
        return Section("ratios", "Ratios", "Needs the `service` section and `bare` or `agnostic`.")
    body, verdicts = [], []
    for name, b in bare_r.items():
        spec = b["variants"]["spec"]
        fastest = min(v["p50_ms"] for k, v in b["variants"].items() if k in ("spec", "no_check"))
        for workers, result in svc.items():
            entry = result["models"].get(name)
            if entry is None:
                continue
            p50 = entry["latency"]["p50_ms"]
            rate = entry["throughput"]["per_s"]
            two = b.get("per_s_2proc")
            body.append(
                [
                    name,
                    workers,
                    p50 / spec["p50_ms"],
                    p50 / fastest,
                    rate / spec["per_s"],
                    f"{rate / two:.2f}" if two else "-",
                ]
            )
            if name in TREE_MODELS:
                ratio = p50 / spec["p50_ms"]
                verdicts.append(
                    [
                        name,
                        workers,
                        f"{ratio:.2f}×",
                        _verdict(ratio <= FLOOR_RATIO, ratio <= AIM_RATIO),
                        f"{rate:.0f}/s",
                        _verdict(rate >= FLOOR_RATE, rate >= AIM_RATE)
                        if workers == "2"
                        else "(2 workers is the measured case)",
                    ]
                )
    md = (
        "Service over HTTP with the record durably stored, against the bare call in-process "
        "on the same rows. p50 ratio < 1 means the service is faster than the bare call. "
        "Throughput ratios: service at 8 clients over the bare call on one thread, and over "
        "the bare call in two processes (the fair comparison for 2 workers on 2 cores). "
        "Bare call: TreeSHAP for the tree models and `shap.ExactExplainer` for recidivism "
        "(the same numbers the service returns); for breast-cancer (30 features, an MLP) there "
        "is no exact bare call that fits a request, so its bare comparator is what a user would "
        "write instead, naive `shap.KernelExplainer` with its defaults (model-agnostic "
        "section; a different, noisier estimate, not the same numbers).\n\n"
        + table(
            [
                "model",
                "workers",
                "p50 service / bare (spec call)",
                "p50 service / bare (fastest variant)",
                "throughput service / bare 1 thread",
                "throughput service / bare 2 processes",
            ],
            body,
        )
        + f"\n\nFloors and aims (tree models): service p50 ≤ {FLOOR_RATIO}× bare (aim ≤ "
        f"{AIM_RATIO}×); ≥ {FLOOR_RATE:.0f} explanations/s at 8 clients on 2 cores (aim ≥ "
        f"{AIM_RATE:.0f}/s).\n\n"
        + table(
            ["model", "workers", "p50 ratio", "p50 verdict", "8 clients", "rate verdict"], verdicts
        )
    )
    return Section("ratios", "Ratios, floors and aims", md, {"rows": body, "verdicts": verdicts})


def _num(value: Any) -> str:
    """A small float in a table: scientific below 1e-3."""
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def _verdict(floor: bool, aim: bool) -> str:
    if aim:
        return "meets aim"
    return "meets floor" if floor else "**below floor**"


def section_profile(run: Run) -> Section:
    s = run.settings
    out: dict[str, Any] = {}
    parts = [
        "The app in-process through `httpx.ASGITransport` (no sockets, no uvicorn), explain "
        "executor and group writer made inline so the whole request path runs in one thread "
        "under cProfile; records are committed as in the service. `plain` is the per-request "
        "time without the profiler. Self time per request, by library:"
    ]
    for name in [m for m in s.models if m in ("credit-risk", "recidivism")]:
        print(f"profile {name} ...", flush=True)
        try:
            result = profile_path.run_model(name, s.profile_n)
        except Exception as exc:  # the section uses app internals others may change
            traceback.print_exc()
            parts.append(f"\n{name}: skipped ({type(exc).__name__}: {exc})")
            continue
        out[name] = result
        plain = result["plain"]
        parts.append(
            f"\n### {name}\n\nplain p50 {plain['p50_ms']:.2f} ms, p95 {plain['p95_ms']:.2f} ms "
            f"over {plain['n']} requests; under the profiler "
            f"{result['profiled_ms_per_request']:.2f} ms/request.\n\n"
            + table(
                ["where", "ms/request (profiled)", "share"],
                [[k, ms, f"{100 * share:.0f}%"] for k, ms, share in result["categories"]],
            )
            + "\n\nThe app's own functions by cumulative time (ms/request, profiled):\n\n"
            + table(
                ["cumulative", "self", "function"],
                [[ct, tt, f"`{w}`"] for ct, tt, w in result["app_cumulative"][:18]],
            )
            + "\n\nTop functions by self time (ms/request, profiled):\n\n"
            + table(
                ["self", "cumulative", "function"],
                [[tt, ct, f"`{w}`"] for tt, ct, w in result["top_self"][:12]],
            )
        )
        print(f"  {name}: plain p50 {plain['p50_ms']:.2f} ms; by library (profiled ms/request):")
        for k, ms, share in result["categories"][:8]:
            print(f"    {k:32s} {ms:6.2f}  {100 * share:3.0f}%")
    return Section(
        "profile", "Where a request's time goes (in-process profile)", "\n".join(parts), out
    )


def section_agnostic(run: Run) -> Section:
    s = run.settings
    if not any(name in AGNOSTIC_MODELS for name in s.models):
        return Section("agnostic", "Model-agnostic path", "Skipped: breast-cancer not in --models.")
    print("agnostic breast-cancer ...", flush=True)
    r = agnostic.run(
        s.agnostic_rows,
        s.agnostic_error_rows,
        s.agnostic_budget_s,
        s.agnostic_cross_rows,
        s.agnostic_reference_pairs,
    )
    run.results["agnostic"] = r
    ours, naive, no_l1, ref = r["ours"], r["naive"], r["no_l1"], r["reference"]
    ratio = r["ratio_p50"]
    error_ok = ours["error"]["rmse"] <= naive["error"]["rmse"]
    speed_ok = ratio >= FLOOR_AGNOSTIC
    print(
        f"  naive/ours CPU p50 {ratio:.1f}× (floor {FLOOR_AGNOSTIC:.0f}×); RMSE ours "
        f"{ours['error']['rmse']:.5f} vs naive {naive['error']['rmse']:.5f}"
    )
    short = r["rows_with_reference"] < r["rows_asked_for_reference"]
    oc, nc = ours["cpu"], naive["cpu"]
    md = (
        f"{agnostic.__doc__.split(chr(10) + chr(10), 1)[1].strip()}\n\n"
        f"Timed over {r['rows_timed']} rows (the same rows for every method, one at a time, "
        "one thread, explainers built once and not timed); errors on the first "
        f"{r['rows_with_reference']} of them"
        + (
            f" (the references' {r['reference_budget_s']:.0f} s CPU budget ran out after "
            f"{r['rows_with_reference']} of {r['rows_asked_for_reference']} rows)"
            if short
            else ""
        )
        + ". RMSE pools every (row, feature) cell; max |error| is the largest cell. "
        "Wall-clock p50 (context): ours "
        f"{ours['p50_ms']:.1f} ms, naive {naive['p50_ms']:.0f} ms.\n\n"
        + table(
            [
                "method",
                "n timed",
                "CPU p50 ms",
                "CPU p95 ms",
                "explanations/CPU-s",
                "rows with reference",
                "RMSE vs reference",
                "max abs error",
            ],
            [
                [
                    "ours: `shap.permutation` (engine, as served)",
                    oc["n"],
                    oc["p50_ms"],
                    oc["p95_ms"],
                    ours["per_s"],
                    ours["error"]["rows"],
                    _num(ours["error"]["rmse"]),
                    _num(ours["error"]["max_abs"]),
                ],
                [
                    "naive `KernelExplainer` (shap defaults)",
                    nc["n"],
                    nc["p50_ms"],
                    nc["p95_ms"],
                    naive["per_s"],
                    naive["error"]["rows"],
                    _num(naive["error"]["rmse"]),
                    _num(naive["error"]["max_abs"]),
                ],
                [
                    "`KernelExplainer`, default nsamples, `l1_reg=False`",
                    no_l1["n"],
                    no_l1["p50_ms"],
                    no_l1["p95_ms"],
                    "-",
                    no_l1["error"]["rows"],
                    _num(no_l1["error"]["rmse"]),
                    _num(no_l1["error"]["max_abs"]),
                ],
            ],
        )
        + f"\n\nOurs, as reported by the engine: {ours['refused']} of {ours['n']} rows refused "
        f"(fidelity bar), rounds {ours['rounds']}, {ours['mean_evaluations']:,.0f} coalition "
        f"outputs per row on average (from {', '.join(ours['coalitions'])}: 'rows' are model "
        "calls on built coalitions, 'first-layer steps' the model's first layer updated one "
        "feature at a time, app/explain/incremental.py), standard error "
        f"median {_num(ours['median_standard_error'])}, max {_num(ours['max_standard_error'])} "
        "(bar: every feature's ≤ 0.15 · mean |φ|, floor 1e-4 · max(1, |output|)); additivity "
        f"residual max {_num(ours['max_additivity_residual'])}. Naive Kernel's attributions had "
        f"{'/'.join(str(k) for k in naive['nonzero_features'])} non-zero features of "
        f"{r['features']} per row (shap's default feature selection)."
        f"\n\nReference: {min(ref['pairs']):,}–{max(ref['pairs']):,} antithetic pairs per row "
        f"(first part {ref['start_pairs']:,}), "
        f"{sum(ref['cpu_seconds']) / len(ref['cpu_seconds']):.1f} CPU s per row; "
        "RMS standard error "
        f"{_num(ref['rms_standard_error'])}, i.e. {ref['precision_ratio_pooled']:.3f} of ours' "
        f"pooled RMSE; per row, its RMS SE / the smallest RMSE it judges ≤ "
        f"{ref['precision_ratio_max']:.3f}."
    )
    if ours["refusal_samples"]:
        md += f" Refusals, e.g.: `{ours['refusal_samples'][:2]}`."
    cross = r["cross_check"]
    if cross.get("rows"):
        md += (
            f"\n\nCross-check on {cross['rows']} row(s): KernelSHAP with "
            f"nsamples={cross['nsamples']}, `l1_reg=False` ({cross['cpu_seconds_per_row']:.1f} "
            f"CPU s per row) against the reference: RMSE "
            f"{_num(cross['kernel_vs_reference']['rmse'])} (the reference's own RMS standard "
            f"error on these rows: {_num(cross['reference_rms_standard_error'])})."
        )
    md += (
        f"\n\nFloor (issue 11): ≥ {FLOOR_AGNOSTIC:.0f}× faster than naive KernelExplainer with "
        "no larger error; issue 15: a reference ≥ 10× more precise than what it judges.\n\n"
        + table(
            ["check", "measured", "verdict"],
            [
                [
                    "CPU time naive / ours (p50)",
                    f"{ratio:.1f}× (mean {r['ratio_mean']:.1f}×)",
                    "meets floor" if speed_ok else "**below floor**",
                ],
                [
                    "RMSE ours ≤ naive",
                    f"{_num(ours['error']['rmse'])} vs {_num(naive['error']['rmse'])}",
                    "meets floor" if error_ok else "**below floor**",
                ],
                [
                    "reference SE ≤ 1/10 of every RMSE it judges (each row)",
                    f"worst row {ref['precision_ratio_max']:.3f}",
                    "met" if ref["met"] else "**not met**",
                ],
                [
                    "(context) RMSE ours ≤ Kernel without selection",
                    f"{_num(ours['error']['rmse'])} vs {_num(no_l1['error']['rmse'])}",
                    "yes" if ours["error"]["rmse"] <= no_l1["error"]["rmse"] else "no",
                ],
            ],
        )
    )
    print("agnostic families (30 features) ...", flush=True)
    r["families"] = agnostic.families(rows=1 if s.quick else 2)
    md += (
        "\n\n### Families with 30 features: error, time and evaluations\n\n"
        f"{inspect.cleandoc(agnostic.families.__doc__ or '')}\n\n"
        f"{agnostic.families_markdown(r['families'])}"
    )
    return Section("agnostic", "Model-agnostic path: permutation vs KernelExplainer", md, r)


def section_store(run: Run) -> Section:
    """Opt-in (``--store`` or ``--only store``): bench/store.py's ``run_store_bench``."""
    from bench import store

    s = run.settings
    out: dict[str, Any] = {}
    body = []
    notes = []
    for backend in s.store_backends:
        print(f"store {backend}: {s.store_small} then {s.store_records} records ...", flush=True)
        try:
            result = store.run_store_bench(
                s.store_records, s.store_small, s.store_rounds, (backend,)
            )
        except Exception as exc:  # e.g. no PostgreSQL on this machine
            traceback.print_exc()
            notes.append(f"- {backend}: skipped ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        entry = result[backend]
        out[backend] = entry
        for point in entry["checkpoints"]:
            body.append(
                [
                    backend,
                    point["records"],
                    point["load_records_per_s"],
                    point["query"]["p50_ms"],
                    point["query"]["p95_ms"],
                    point["query"]["max_ms"],
                    point["export_jsonl"]["peak_mib"],
                    point["export_chain"]["peak_mib"],
                    "yes"
                    if point["export_jsonl"].get("complete", True)
                    and point["export_chain"].get("complete", True)
                    else "no (time cap)",
                ]
            )
        notes.append(
            f"- {backend}: query p95 ≤ 50 ms at {s.store_records} records: "
            f"{'yes' if entry['p95_ok'] else '**no**'}; JSONL export peak memory ratio "
            f"(large / small): {entry['export_peak_ratio']}"
        )
    run.results["store"] = out
    md = (
        "bench/store.py: records bulk-loaded through the repository, then filtered queries "
        f"(pages of 100 rendered records, {s.store_rounds} queries) and full exports at two "
        "log sizes. Not part of the default run (`--store` or `--only store`).\n\n"
        + table(
            [
                "backend",
                "records",
                "load records/s",
                "query p50 ms",
                "query p95 ms",
                "query max ms",
                "JSONL export peak MiB",
                "chain export peak MiB",
                "exports read in full",
            ],
            body,
        )
        + "\n\n"
        + "\n".join(notes)
    )
    return Section("store", "Record store at scale", md, out)


def section_audit(run: Run) -> Section:
    """Opt-in (``--only audit``): fairness and impact audits over stored decisions (issue 20)."""
    from bench import audit

    sizes = run.settings.audit_sizes
    print(f"audit: {', '.join(map(str, sizes))} stored decisions ...", flush=True)
    result = audit.run_audit_bench(sizes, ("sqlite",))
    run.results["audit"] = result
    body = []
    for point in result["sqlite"]["points"]:
        for kind in ("fairness", "impact"):
            figures = point[kind]
            body.append(
                [
                    point["backend"], point["decisions"], kind, figures["wall_s"],
                    figures["cpu_s"], figures["peak_above_mib"],
                    round(1e6 * figures["cpu_s"] / point["decisions"]),
                ]
            )  # fmt: skip
    md = (
        "bench/audit.py: credit-risk decisions with real sealed parts bulk-loaded through the "
        f"repository ({100 // audit.OUTCOME_EVERY}% with a reported "
        "outcome), then `compute_fairness` (by personal_status_and_sex) and `compute_impact` "
        "in a fresh process per size. Peak memory: the resident high-water mark during the "
        "audit above the resident size before it. Not part of the default run "
        "(`--only audit`; `--audit-sizes` to choose the sizes).\n\n"
        + table(
            ["backend", "decisions", "audit", "wall s", "CPU s", "peak above MiB", "CPU µs each"],
            body,
        )
    )
    return Section("audit", "Fairness and impact audits over stored decisions", md, result)


def section_reports(run: Run) -> Section:
    """Counterfactual search on credit-risk holdout adverse decisions; reasons' cost."""
    from bench import counterfactual

    s = run.settings
    print("reports: counterfactuals on credit-risk holdout ...", flush=True)
    cf = counterfactual.run()
    reasons = counterfactual.run_reasons(
        [m for m in s.models if m in ("credit-risk", "income")], 40 if s.quick else 200
    )
    run.results["reports"] = {"counterfactual": cf, "reasons": reasons}
    ok = {
        "found": cf["found_rate"] >= counterfactual.FLOOR_FOUND,
        "p50": cf["p50_ms"] <= counterfactual.FLOOR_P50_MS,
        "p95": cf["p95_ms"] <= counterfactual.FLOOR_P95_MS,
    }
    print(
        f"  found {100 * cf['found_rate']:.0f}% of {cf['adverse']}, p50 {cf['p50_ms']:.1f} ms, "
        f"p95 {cf['p95_ms']:.1f} ms"
    )
    md = (
        f"{counterfactual.__doc__.strip()}\n\n"
        + table(
            ["model", "adverse decisions", "found", "p50 ms", "p95 ms", "max ms", "statuses"],
            [
                [
                    cf["model"],
                    cf["adverse"],
                    f"{100 * cf['found_rate']:.0f}%",
                    cf["p50_ms"],
                    cf["p95_ms"],
                    cf["max_ms"],
                    cf["statuses"],
                ]
            ],
        )
        + "\n\n"
        + table(
            ["floor", "verdict"],
            [
                [f"found ≥ {100 * counterfactual.FLOOR_FOUND:.0f}%", _verdict(ok["found"], False)],
                [f"p50 ≤ {counterfactual.FLOOR_P50_MS:.0f} ms", _verdict(ok["p50"], False)],
                [f"p95 ≤ {counterfactual.FLOOR_P95_MS:.0f} ms", _verdict(ok["p95"], False)],
            ],
        )
        + "\n\nReasons on the decision path (in-process, one thread, same rows):\n\n"
        + table(
            [
                "model",
                "rows",
                "explain p50 ms",
                "explain + reasons p50 ms",
                "reasons p50 ms",
                "reasons p95 ms",
            ],
            [
                [
                    name,
                    r["n"],
                    r["explain_p50_ms"],
                    r["with_reasons_p50_ms"],
                    _num(r["reasons_p50_ms"]),
                    _num(r["reasons_p95_ms"]),
                ]
                for name, r in reasons.items()
            ],
        )
    )
    return Section("reports", "Reasons and counterfactuals", md, run.results["reports"])


def section_fairness(run: Run) -> Section:
    """A fast client's latency alone and next to a slow client (bench/fairness.py)."""
    from bench import fairness

    n = 60 if run.settings.quick else 200
    print(f"fairness: {n} fast requests alone, then beside a slow neighbour ...", flush=True)
    out = fairness.run(n)
    run.results["fairness"] = out
    bare = out["bare"]
    body = []
    for label, key in (("alone", "alone"), ("beside the slow neighbour", "with_slow_neighbour")):
        figures = out[key]
        body.append(
            [
                label,
                figures["n"],
                figures["p50_ms"],
                figures["p95_ms"],
                figures["p50_ms"] / bare["p50_ms"],
                figures["p95_ms"] / bare["p95_ms"],
            ]
        )
    slow = out["slow"]
    md = (
        f"One worker. The fast client sends {fairness.FAST_MODEL} requests (`auto`) one at a "
        f"time; the slow neighbour keeps {fairness.SLOW_IN_FLIGHT} `shap.exact` requests on "
        f"{fairness.SLOW_MODEL} in flight (slow requests: n={slow['n']}, p50 "
        f"{slow['p50_ms']:.0f} ms). Bare call: pipeline.predict_proba + TreeExplainer "
        f"in-process, p50 {bare['p50_ms']:.2f} ms, p95 {bare['p95_ms']:.2f} ms.\n\n"
        + table(["fast client", "n", "p50 ms", "p95 ms", "p50 / bare p50", "p95 / bare p95"], body)
    )
    return Section("fairness", "Fair scheduling: a fast client beside a slow one", md, out)


def section_proofs(run: Run) -> Section:
    """Opt-in (``--only proofs``): bench/proofs.py's ``run_proofs_bench`` at 1M leaves."""
    from bench import proofs

    s = run.settings
    out: dict[str, Any] = {}
    body = []
    notes = []
    leaves = 20_000 if s.quick else 1_000_000
    for backend in s.store_backends:
        try:
            entry = proofs.run_proofs_bench(leaves, 500, (backend,))[backend]
        except Exception as exc:  # e.g. no PostgreSQL on this machine
            traceback.print_exc()
            notes.append(f"- {backend}: skipped ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        out[backend] = entry
        for name in ("inclusion", "consistency", "checkpoint"):
            body.append(
                [
                    backend,
                    entry["leaves"],
                    name,
                    entry[name]["p50_ms"],
                    entry[name]["p95_ms"],
                    entry[f"bare_{name}"]["p50_ms"],
                    entry[f"{name}_ratio_p50"],
                ]
            )
        notes.append(
            f"- {backend}: proof p95 ≤ 20 ms at {entry['leaves']} leaves: "
            f"{'yes' if entry['p95_ok'] else '**no**'}; tree stored at "
            f"{entry['store_tree_leaves_per_s']} leaves/s"
        )
    run.results["proofs"] = out
    md = (
        "bench/proofs.py: a Merkle tree of stored complete subtrees (as appends keep it), "
        "proofs served from it as the API serves them, against the same proofs computed from "
        "an in-memory tree (bare) in the same run. Not part of the default run "
        "(`--only proofs`).\n\n"
        + table(
            ["backend", "leaves", "what", "p50 ms", "p95 ms", "bare p50 ms", "ratio p50"],
            body,
        )
        + "\n\n"
        + "\n".join(notes)
    )
    return Section("proofs", "Merkle proofs and checkpoints", md, out)


def section_keys(run: Run) -> Section:
    """Key revocation delay on a 2-worker server (bench/keys.py)."""
    from bench import keys

    try:
        out = keys.run_keys_bench(3 if run.settings.quick else 5)
    except Exception as exc:
        traceback.print_exc()
        return Section("keys", "Key revocation delay", f"Skipped ({type(exc).__name__}: {exc}).")
    run.results["keys"] = out
    md = (
        f"{keys.__doc__.split(chr(10) + chr(10), 1)[0].strip()}\n\n"
        + table(
            ["workers", "trials", "cache s", "delay p50 s", "delay max s", "requests/trial"],
            [
                [
                    out["workers"],
                    out["trials"],
                    out["key_cache_seconds"],
                    out["p50_s"],
                    out["max_s"],
                    out["requests_per_trial"],
                ]
            ],
        )
        + f"\n\nEvery trial's delay (s): {out['delays_s']}; governed by "
        "`app.access.service.KEY_CACHE_SECONDS` (the bar: within seconds)."
    )
    return Section("keys", "Key revocation delay", md, out)


def section_batches(run: Run) -> Section:
    """Batch throughput in process and on Celery workers; chain appends on PostgreSQL."""
    from bench import batches

    quick = run.settings.quick
    counts = (
        {"credit-risk": 500, "income": 200, "recidivism": 100}
        if quick
        else {"credit-risk": 2000, "income": 1000, "recidivism": 500}
    )
    try:
        r = batches.run_batch_bench(counts, 500 if quick else 2000, 8, 5 if quick else 15)
    except Exception as exc:  # needs PostgreSQL and Redis
        traceback.print_exc()
        return Section("batches", "Batches", f"Skipped ({type(exc).__name__}: {exc}).")
    run.results["batches"] = r
    for row in r["in_process"]:
        print(
            f"  in-process {row['model']} ({row['store']}): {row['per_s']:.0f}/s, bare "
            f"compute_many {row['bare_per_s']:.0f}/s, ratio {row['ratio']:.2f}"
        )
    for row in r["celery"]:
        print(f"  celery {row['workers']} worker(s): {row['per_s']:.0f}/s")
    for row in r["appends"]:
        print(f"  appends {row['writers']} writers x {row['group']}: {row['per_s']:.0f}/s")
    md = (
        f"{batches.__doc__.split(chr(10) + chr(10), 1)[1].strip()}\n\n"
        + table(
            ["model", "store", "items", "s", "batch items/s", "bare compute_many rows/s", "ratio"],
            [
                [
                    x["model"],
                    x["store"],
                    x["items"],
                    x["seconds"],
                    x["per_s"],
                    x["bare_per_s"],
                    x["ratio"],
                ]
                for x in r["in_process"]
            ],
        )
        + "\n\n"
        + table(
            ["runner", "items", "s", "items/s"],
            [
                ["in process (postgresql)", x["items"], x["seconds"], x["per_s"]]
                for x in r["in_process"]
                if x["store"] == "postgresql"
            ]
            + [
                [f"Celery, {x['workers']} worker(s)", x["items"], x["seconds"], x["per_s"]]
                for x in r["celery"]
            ],
        )
        + "\n\n"
        + table(
            ["writers", "records per transaction", "records", "records/s"],
            [[x["writers"], x["group"], x["records"], x["per_s"]] for x in r["appends"]],
        )
    )
    return Section("batches", "Batches and the chain's write ceiling", md, r)


def section_forest(run: Run) -> Section:
    """A 60-tree forest behind the credit one-hot pipeline; the boosted rescaling's error."""
    s = run.settings
    n = 40 if s.quick else 300
    print("forest: in-process bare call and engine call ...", flush=True)
    local = forest.in_process(n)
    print("forest: service over HTTP (2 workers) ...", flush=True)
    served = forest.service(n)
    print("forest: rescaling error against exact enumeration ...", flush=True)
    rescaling = forest.rescaling_error(12, 5 if s.quick else 20)
    out = {"in_process": local, "service": served, "rescaling": rescaling}
    run.results["forest"] = out
    bare_p50 = local["bare"]["p50_ms"]
    ratio = served["p50_ms"] / bare_p50
    md = (
        f"`{forest.NAME}`: the credit-risk pipeline with a {forest.TREES}-tree "
        "RandomForestClassifier (bench/forest.py), 100-row background, one row at a time. "
        "Bare call (docs/operations/benchmarks.md#the-bare-call): `pipeline.predict_proba(row_df)` "
        "+ shap's interventional "
        '`TreeExplainer(model_output="probability")` on the transformed row (built once; '
        f"shap misses additivity > 1e-6 on {local['shap_additivity_misses']} rows). Engine: "
        "encode + `explain_rows` under `auto` in-process (methods: "
        f"{', '.join(local['methods'])}). Service: HTTP, one client, 2 workers, records "
        "durably stored.\n\n"
        + table(
            ["call", "n", "p50 ms", "p95 ms", "service p50 / bare p50"],
            [
                [
                    "bare (shap TreeExplainer)",
                    local["bare"]["n"],
                    bare_p50,
                    local["bare"]["p95_ms"],
                    "-",
                ],
                [
                    "engine in-process (shap.tree)",
                    local["ours"]["n"],
                    local["ours"]["p50_ms"],
                    local["ours"]["p95_ms"],
                    "-",
                ],
                [
                    "service over HTTP",
                    served["n"],
                    served["p50_ms"],
                    served["p95_ms"],
                    f"{ratio:.2f}×",
                ],
            ],
        )
        + "\n\nBoosted probability (approximate, rescaled per background row from exact "
        f"log-odds values) against exact probability Shapley values (`shap.exact`, "
        f"{rescaling['features']} raw features, GradientBoostingClassifier(100), "
        f"{rescaling['background_rows']}-row background, {rescaling['rows']} rows): mean "
        f"|Δφ| / mean |φ| = {rescaling['relative_error']:.3f} (worst row "
        f"{rescaling['per_row_relative_error_max']:.3f}, largest |Δφ| "
        f"{rescaling['max_abs_error']:.4f}); {rescaling['tree_ms_per_row']:.1f} ms per row "
        f"against {rescaling['exact_ms_per_row']:.0f} ms for enumeration."
    )
    return Section("forest", "Forest behind a one-hot pipeline; boosted rescaling", md, out)


def section_frameworks(run: Run) -> Section:
    """A bare forest and XGBoost / LightGBM boosters: the service against the bare call."""
    s = run.settings
    n = 40 if s.quick else 300
    print("frameworks: bare calls in-process, then the service (2 workers) ...", flush=True)
    out = frameworks.run(n, 4 * n)
    run.results["frameworks"] = out
    rows = []
    for name, m in out["models"].items():
        served, crowd = m["service"], m["service_8_clients"]
        rows.append(
            [
                name,
                f"{m['method']} ({m['exactness']})",
                m["bare"]["p50_ms"],
                served["p50_ms"],
                f"{served['p50_ms'] / m['bare']['p50_ms']:.2f}×",
                m["bare_per_s"],
                crowd["per_s"],
                f"{crowd['per_s'] / m['bare_per_s']:.2f}×",
                crowd["failed"],
            ]
        )
    md = (
        "Models built at bench time (bench/frameworks.py): `wine-forest`, a bare "
        "RandomForestClassifier(60, depth 6) on wine (13 features, 3 classes); `credit-xgb` and "
        "`credit-lgbm`, 100-tree binary boosters on German credit's 7 numeric features, each "
        "registered in its own format (their requests name `shap.tree`, the bare call's "
        "computation; under `auto` the service enumerates exact probability values instead). "
        "Bare call: the model's own prediction + shap's "
        'interventional `TreeExplainer(model_output="probability")` on the row (built once, not '
        "timed), one row at a time. Service: `rationale serve --workers 2`, HTTP, every record "
        f"stored; started to `/readyz` in {out['start_to_ready_s']:.1f} s. Bars: p50 ≤ 1.0× "
        "the bare call, 8-client rate ≥ 3× the bare sequential rate.\n\n"
        + table(
            [
                "model",
                "method served",
                "bare p50 ms",
                "service p50 ms",
                "p50 ratio",
                "bare /s",
                "service /s, 8 clients",
                "rate ratio",
                "failed",
            ],
            rows,
        )
    )
    return Section("frameworks", "Bare forests and framework boosters", md, out)


SECTIONS: dict[str, Callable[[Run], Section]] = {
    "bare": section_bare,
    "agnostic": section_agnostic,
    "service": section_service,
    "ratios": section_ratios,
    "profile": section_profile,
    "forest": section_forest,
    "frameworks": section_frameworks,
    "store": section_store,
    "reports": section_reports,
    "startup": lambda run: startup.section(run),
    "fairness": section_fairness,
    "proofs": section_proofs,
    "keys": section_keys,
    "batches": section_batches,
    "audit": section_audit,
}
"""Every section, in run order ("agnostic" before "ratios": it times breast-cancer's bare
comparator)."""
OPT_IN = ("store", "proofs", "audit")
"""Sections left out of the default run (slow: the store, proofs and audit sections load 1M
records)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run (~1-2 min)")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--store",
        action="store_true",
        help="also run the record-store section (1M records; not in the default run)",
    )
    parser.add_argument(
        "--store-backends",
        default="sqlite,postgresql",
        help="backends of the store section (PostgreSQL: RATIONALE_BENCH_PG_ADMIN)",
    )
    parser.add_argument(
        "--audit-sizes",
        help="stored decisions of the audit section, comma-separated (default 100000,1000000)",
    )
    parser.add_argument(
        "--models",
        help="comma-separated models (default: the three demo models and breast-cancer)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown report path (default: bench/results.md for a full run; none for --quick)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    names = (
        args.only.split(",")
        if args.only
        else [n for n in SECTIONS if n not in OPT_IN or (n == "store" and args.store)]
    )
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    run = Run(settings_for(args))
    env = environment()
    print(
        f"{env['date']}  {env['nproc']} CPUs {env['cpu']}  {env['ram']}  "
        f"commit {env['commit'][:12]}"
    )
    started = time.monotonic()
    sections = []
    for name in names:
        before = machine_sample()
        section = SECTIONS[name](run)
        section.markdown += "\n\n" + contention_note(before, machine_sample())
        sections.append(section)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    text = render(env, sections, argv_text)
    text += f"\nWhole run: {time.monotonic() - started:.0f} s.\n"
    print()
    print(text)
    out = args.out or (None if args.quick or args.only else HERE / "results.md")
    if out is not None:
        out.write_text(text)
        print(f"wrote {out}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(run.results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
