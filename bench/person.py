"""The person's page over HTTP (issue 31, docs/person.md#the-page): how long the first view
takes (its report issued: the counterfactual searched, the report rendered and recorded, the
access record committed) and how long later views take (the report read back from its
record), on a ``rationale serve`` over SQLite.

Every adverse decision of the credit-risk holdout set (the recipe's own split) is explained
by the backend and given a link; each link's page is then opened once (the first view) and
``--later`` more times. Each request is a fresh connection. Bars: first view p95 at most
300 ms, later views p95 at most 50 ms.

Not part of ``make test``. ``python -m bench.person`` runs it and writes
``bench/person_results.md``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.counterfactual import adverse_rows, holdout_rows
from bench.data import MODELS_DIR, ROOT
from bench.server import Server

FIRST_P95_MS, LATER_P95_MS = 300.0, 50.0
HERE = Path(__file__).resolve().parent


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _figures(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(_percentile(values, 0.95), 2),
        "max_ms": round(max(values), 2),
    }


def run(later: int = 10, workers: int = 1, limit: int | None = None) -> dict[str, Any]:
    """Time first and later views of the page for every adverse holdout decision."""
    from app.catalog.model import load_version

    model = load_version(MODELS_DIR / "credit-risk" / "1", allow_unsafe=False)
    rows = adverse_rows(model, holdout_rows("credit-risk"))[:limit]
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        (models / "credit-risk").mkdir(parents=True)
        (models / "credit-risk" / "1").symlink_to(MODELS_DIR / "credit-risk" / "1")
        (models / "credit-risk" / "wording").symlink_to(MODELS_DIR / "credit-risk" / "wording")
        os.environ["RATIONALE_PERSON_RATE_PER_TOKEN"] = str(10 * (later + 1))
        os.environ["RATIONALE_PERSON_RATE_PER_ADDRESS"] = "1000000"
        with Server(workers=workers, models_dir=models) as server:
            paths = []
            for row in rows:
                decision = f"bench-{uuid.uuid4().hex[:12]}"
                body = {"model": "credit-risk", "decision_id": decision, "instance": row}
                status, _ = server.request_json("/v1/explanations", body)
                assert status == 201, status
                status, link = server.request_json(f"/v1/decisions/{decision}/links", {})
                assert status == 201, (status, link)
                paths.append(link["url"].replace(server.url, ""))
            first: list[float] = []
            later_views: list[float] = []
            statuses: dict[str, int] = {}
            for path in paths:
                for n in range(later + 1):
                    with httpx.Client(base_url=server.url, timeout=60) as client:
                        started = time.perf_counter()
                        response = client.get(path, headers={"Accept-Language": "en"})
                        elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 200, response.status_code
                    (first if n == 0 else later_views).append(elapsed)
                    if n == 0:
                        found = "What would change the outcome" in response.text
                        key = "found" if found else "not shown"
                        statuses[key] = statuses.get(key, 0) + 1
    return {
        "model": "credit-risk/1",
        "decisions": len(rows),
        "workers": workers,
        "first_view": _figures(first),
        "later_views": _figures(later_views),
        "counterfactual_on_page": statuses,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def write(out: dict[str, Any], path: Path) -> None:
    """The figures as Markdown, with the machine and the commit."""
    first, later = out["first_view"], out["later_views"]
    verdict = {
        f"first view p95 ≤ {FIRST_P95_MS:.0f} ms": first["p95_ms"] <= FIRST_P95_MS,
        f"later views p95 ≤ {LATER_P95_MS:.0f} ms": later["p95_ms"] <= LATER_P95_MS,
    }
    lines = [
        "# The person's page: benchmark results",
        "",
        "Written by `python -m bench.person` (docs/person.md#tests-and-figures). Every figure "
        "below comes from one run on one machine.",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}",
        f"- commit: `{_commit()}`",
        f"- load average after the run: {out['load_average']}",
        "",
        f"{out['decisions']} adverse decisions of {out['model']} (its holdout set), one link "
        f"each, {out['workers']} worker(s), SQLite; each request a fresh connection.",
        "",
        "| view | requests | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
        f"| first (report issued, counterfactual searched) | {first['n']} | {first['p50_ms']} "
        f"| {first['p95_ms']} | {first['max_ms']} |",
        f"| later (report read back) | {later['n']} | {later['p50_ms']} | {later['p95_ms']} "
        f"| {later['max_ms']} |",
        "",
        f"What would change the outcome, shown on the page: {out['counterfactual_on_page']}.",
        "",
        "| bar | verdict |",
        "|---|---|",
        *(f"| {bar} | {'meets' if ok else 'misses'} |" for bar, ok in verdict.items()),
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--later", type=int, default=10, help="later views per link")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="at most this many decisions")
    parser.add_argument("--out", type=Path, default=HERE / "person_results.md")
    args = parser.parse_args()
    out = run(args.later, args.workers, args.limit)
    print(json.dumps(out, indent=2))
    write(out, args.out)


if __name__ == "__main__":
    main()
