"""Audit bench (issue 20): fairness and impact over 100k and 1M stored credit-risk decisions.

The records are loaded the fast way (``Repository.append_bulk``, as bench/store.py does), each
a credit-risk explanation record of the real shape with a real sealed part: the applicant's
inputs sealed under their subject's data key, so the audit has to open every one to read the
protected attribute. About one decision in five gets an ``actual_outcome`` record.

Each size is then audited in a fresh subprocess (the service's own ``Context`` and model
loader, the services' ``compute_fairness`` and ``compute_impact``): wall and CPU time, and the
peak resident memory during each audit above the resident memory before it (the kernel's
high-water mark, reset just before through ``/proc/self/clear_refs``).

``python -m bench.audit --sizes 100000,1000000`` runs it alone; ``python -m bench --only
audit`` as a section (opt-in: loading 1M records takes several minutes)."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.ledger.chain import Draft, associated_data
from app.ledger.crypto import ServerKeys, new_data_key, seal
from app.ledger.repository import NewSubject, Repository
from bench.data import MODELS_DIR, ROOT, load_model
from bench.store import _database

MODEL = "credit-risk"
ATTRIBUTE = "personal_status_and_sex"
SECRET = "bench-audit-secret-0123456789abcdef0123456789"
SUBJECTS = 50_000
OUTCOME_EVERY = 5
"""One decision in this many gets an ``actual_outcome`` record."""


class _Maker:
    """Synthetic credit-risk decisions: background rows as inputs, sealed per subject."""

    def __init__(self, keys: ServerKeys, seed: int) -> None:
        model = load_model(MODEL)
        self.keys = keys
        self.rng = random.Random(seed)
        self.features = model.feature_names
        self.rows = model.background.to_dict(orient="records")
        self.subjects: dict[int, tuple[str, bytes]] = {}

    def _subject(self, n: int) -> tuple[str, bytes, NewSubject | None]:
        known = self.subjects.get(n)
        if known is not None:
            return known[0], known[1], None
        ref, data_key = str(uuid.uuid4()), new_data_key()
        self.subjects[n] = (ref, data_key)
        digest = self.keys.subject_digest("subject", f"bench-person-{n}")
        return ref, data_key, NewSubject(digest, ref, self.keys.wrap_data_key(data_key, ref))

    def items(self, start: int, stop: int) -> Iterator[tuple[Draft, NewSubject | None]]:
        """Decisions ``start``..``stop``-1, each followed now and then by its outcome."""
        rng = self.rng
        for n in range(start, stop):
            row = self.rows[rng.randrange(len(self.rows))]
            ref, data_key, new = self._subject(rng.randrange(SUBJECTS))
            good = rng.random()
            label = "good" if good >= 0.5 else "bad"
            contributions = sorted(
                ((f, rng.uniform(-0.1, 0.1)) for f in self.features),
                key=lambda item: -abs(item[1]),
            )
            decision = f"audit-bench-{n}"
            clear = {
                "decision_id": decision,
                "subject_ref": ref,
                "request_fingerprint": f"{rng.getrandbits(256):064x}",
                "model": {"name": MODEL, "version": "1"},
                "prediction": {"label": label, "probabilities": {"bad": 1 - good, "good": good}},
                "explanation": {
                    "method": "shap.tree",
                    "output": "probability",
                    "explained_class": label,
                    "model_output": max(good, 1 - good),
                    "base_value": 0.7,
                    "attributions": [{"feature": f, "contribution": c} for f, c in contributions],
                },
            }
            draft = Draft(
                type="explanation",
                key_id="bench",
                role="backend",
                clear=clear,
                decision_id=decision,
                subject_ref=ref,
                model_name=MODEL,
                model_version="1",
                outcome=label,
                fingerprint=clear["request_fingerprint"],
            )
            plain = {"input": row, "attributes": {}, "attribution_values": row, "reasons": []}
            draft.sealed = seal(
                data_key, json.dumps(plain).encode(), associated_data(draft.id, draft.type)
            )
            yield draft, new
            if n % OUTCOME_EVERY == 0:
                actual = "good" if rng.random() < 0.7 else "bad"
                yield (
                    Draft(
                        type="actual_outcome",
                        key_id="bench",
                        role="backend",
                        clear={
                            "decision_id": decision,
                            "target_id": draft.id,
                            "model": {"name": MODEL, "version": "1"},
                            "actual": actual,
                        },
                        decision_id=decision,
                        target_id=draft.id,
                        model_name=MODEL,
                        model_version="1",
                    ),
                    None,
                )


def _models_dir(folder: Path) -> Path:
    """A models folder holding credit-risk version 1 only (symlinked, nothing copied)."""
    models = folder / "models"
    (models / MODEL).mkdir(parents=True)
    (models / MODEL / "1").symlink_to(MODELS_DIR / MODEL / "1")
    (models / MODEL / "wording").symlink_to(MODELS_DIR / MODEL / "wording")
    return models


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _timed(call: Any) -> dict[str, Any]:
    """Run ``call`` with the resident high-water mark reset first; its time and peak."""
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
    before = _rss_kib("VmRSS")
    cpu, wall = time.process_time(), time.perf_counter()
    result = call()
    out = {
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "rss_before_mib": round(before / 1024, 1),
        "peak_above_mib": round((_rss_kib("VmHWM") - before) / 1024, 1),
    }
    return out | {"result": result}


def measure(database_url: str, models_dir: Path) -> dict[str, Any]:
    """In this process: load the model as the service does, then time both audits."""
    from app.catalog.service import load_models
    from app.config import Settings
    from app.fairness.service import AuditScope, compute_fairness, compute_impact
    from app.runtime.context import Context

    settings = Settings(
        database_url=database_url,
        models_dir=models_dir,
        secret_key=SECRET,
        api_keys="bench-audit-key-0123456789:auditor",
        log_json=True,
    )
    ctx = Context.create(settings)
    try:
        load_models(ctx)
        scope = AuditScope(MODEL)
        fairness = _timed(lambda: compute_fairness(ctx, scope, ATTRIBUTE))
        impact = _timed(lambda: compute_impact(ctx, scope, "day"))
    finally:
        ctx.close()
    figures = fairness.pop("result")
    impact_figures = impact.pop("result")
    fairness["decisions"] = figures["decisions"] + sum(w["count"] for w in figures["withheld"])
    fairness["outcomes_reported"] = figures["outcomes_reported"]
    fairness["groups"] = len(figures["groups"])
    impact["decisions"] = impact_figures["decisions"]
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"fairness": fairness, "impact": impact, "process_max_rss_mib": round(maxrss / 1024)}


def _measure_in_subprocess(database_url: str, models_dir: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.audit", "--measure", database_url,
        "--models-dir", str(models_dir),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"measuring failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_backend(backend: str, sizes: list[int], seed: int = 0) -> dict[str, Any]:
    """Load up to each size, then audit it in a fresh process."""
    from app.access.secrets import load_keys

    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, _database(backend, Path(tmp)) as engine:
        folder = Path(tmp)
        models_dir = _models_dir(folder)
        repository = Repository(engine)
        maker = _Maker(load_keys(engine, SECRET), seed)
        url = engine.url.render_as_string(hide_password=False)
        loaded = 0
        for size in sorted(sizes):
            began = time.perf_counter()
            repository.append_bulk(maker.items(loaded, size), batch=5000)
            load_s = time.perf_counter() - began
            rate = (size - loaded) / load_s
            loaded = size
            point = {"backend": backend, "decisions": size, "load_decisions_per_s": round(rate)}
            point |= _measure_in_subprocess(url, models_dir)
            print(json.dumps(point), flush=True)
            points.append(point)
    return {"backend": backend, "points": points}


def run_audit_bench(
    sizes: tuple[int, ...] = (100_000, 1_000_000), backends: tuple[str, ...] = ("sqlite",)
) -> dict[str, Any]:
    """The audit section's figures, per backend and size."""
    return {backend: bench_backend(backend, list(sizes)) for backend in backends}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.models_dir))))
        return
    sizes = tuple(int(s) for s in args.sizes.split(","))
    result = run_audit_bench(sizes, tuple(args.backends.split(",")))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
