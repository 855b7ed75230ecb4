"""``python -m bench``: bare explainer in-process vs the service over HTTP (SPEC §9)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench  # noqa: F401 - sets the BLAS thread variables before numpy loads
from bench import bare, profile_path, service
from bench.data import EXACT_MODELS, TREE_MODELS
from bench.report import Section, contention_note, environment, machine_sample, render, table

HERE = Path(__file__).resolve().parent

FLOOR_RATIO, AIM_RATIO = 1.5, 1.0
"""Tree model: service p50 over HTTP / bare in-process p50 (floor, aim)."""
FLOOR_RATE, AIM_RATE = 250.0, 400.0
"""Tree model: explanations/s to 8 concurrent clients on 2 cores (floor, aim)."""


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


@dataclass
class Run:
    settings: Settings
    results: dict[str, Any] = field(default_factory=dict)


def settings_for(args: argparse.Namespace) -> Settings:
    models = args.models.split(",") if args.models else [*TREE_MODELS, *EXACT_MODELS]
    if args.quick:
        return Settings(True, models, 60, 20, 0, 60, 300, 5, 8, 10, [1, 2], False, 30)
    return Settings(False, models, 300, 90, 6, 300, 1500, 15, 8, 30, [1, 2], True, 200)


# -- sections -----------------------------------------------------------------------------


def section_bare(run: Run) -> Section:
    s = run.settings
    out: dict[str, Any] = {}
    body = []
    for name in s.models:
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
        "`spec` is the call of SPEC §10.10 with shap's defaults: `pipeline.predict_proba(row_df)` "
        '+ `TreeExplainer(estimator, pre.transform(background), model_output="probability", '
        'feature_perturbation="interventional").shap_values(pre.transform(row_df))` (100-row '
        "background). `no_check` is the same with `check_additivity=False`; `predict_proba`, "
        "`transform`, `treeshap` time the parts alone. For recidivism (logistic, not a tree) "
        "`spec` is `pipeline.predict_proba(row_df)` + `shap.ExactExplainer(f, "
        "shap.maskers.Independent(background, max_samples=100))(x)` over the 7 raw features "
        "(categoricals as integer codes decoded inside `f`): exact interventional Shapley "
        "values against the same background, the numbers the service returns. The one-row "
        "DataFrames are built before timing. explanations/s = calls / wall time; the 2-process "
        "column runs the `spec` call in two spawned processes at once.\n\n"
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
        for name, entry in result["models"].items():
            lat, thr = entry["latency"], entry["throughput"]
            other = entry.get("throughput_httpx")
            body.append(
                [
                    name,
                    workers,
                    lat["n"],
                    lat["p50_ms"],
                    lat["p95_ms"],
                    thr["per_s"],
                    thr["p50_ms"],
                    thr["p95_ms"],
                    thr["ok"],
                    lat["failed"] + thr["failed"] + (other["failed"] if other else 0),
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
        "the heavier client takes CPU from the server.\n\n"
        + table(
            [
                "model",
                "workers",
                "n",
                "p50 ms (1 client)",
                "p95 ms (1 client)",
                f"explanations/s ({s.concurrency} clients)",
                "p50 ms under load",
                "p95 ms under load",
                "201s in load run",
                "non-201",
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
        f"- {workers} worker(s), {name}, {what}: {entry[what]['failed']} failed, e.g. "
        f"`{entry[what]['failure_samples'][:2]}`"
        for workers, result in out.items()
        for name, entry in result["models"].items()
        for what in ("latency", "throughput", "throughput_httpx")
        if what in entry and entry[what]["failed"]
    ]
    if failures:
        md += "\n\nFailures:\n\n" + "\n".join(failures)
    return Section("service", "The service over HTTP", md, out)


def section_ratios(run: Run) -> Section:
    bare_r, svc = run.results.get("bare"), run.results.get("service")
    if not bare_r or not svc:
        return Section("ratios", "Ratios", "Needs the `bare` and `service` sections.")
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
        "the bare call in two processes (the fair comparison for 2 workers on 2 cores).\n\n"
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


SECTIONS: dict[str, Callable[[Run], Section]] = {
    "bare": section_bare,
    "service": section_service,
    "ratios": section_ratios,
    "profile": section_profile,
}
"""Every section, in run order. Later: "agnostic" (permutation estimator vs KernelExplainer
against a 20,000-sample reference) and "store" (1M records, query p95, export memory)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run (~1-2 min)")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--models", help="comma-separated demo models (default: all three)")
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown report path (default: bench/results.md for a full run; none for --quick)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SECTIONS)
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
        args.json.write_text(json.dumps(run.results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
