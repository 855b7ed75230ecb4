"""Print the conformance table of docs/conformance.md: ``python -m tests.conformance``.

Runs every family of ``tests/conformance/families.py`` through the real registration path
and reports what ``auto`` picked, how exact it is, and every refusal with its reason.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.conformance.families import CASES, Outcome, dataset, run_case

HEADER = (
    "| group | family (in a Pipeline, or bare) | data | `auto` picks | exactness "
    "| worst \\|residual\\|/max(1,\\|output\\|) | status |\n"
    "|---|---|---|---|---|---|---|"
)


def line(outcome: Outcome) -> str:
    """One table row."""
    case = outcome.case
    data = dataset(case.data)
    family = case.family + (" — bare" if case.bare else "")
    if outcome.refused is not None:
        expected = case.refused is not None and case.refused in outcome.refused
        status = ("refused at load (expected): " if expected else "**refused**: ") + outcome.refused
        return f"| {case.group} | {family} | {data.describe} | – | – | – | {status} |"
    methods = ", ".join(f"`{m}`" for m in outcome.methods)
    exactness = ", ".join(outcome.exactness)
    ok = all(r.repeat_identical for r in outcome.rows)
    status = "served" + ("" if ok else ", **not repeatable**")
    return (
        f"| {case.group} | {family} | {data.describe} | {methods} | {exactness} | "
        f"{outcome.worst_relative_residual:.1e} | {status} |"
    )


def main() -> None:
    print(HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            outcome = run_case(case, Path(tmp))
            print(line(outcome), flush=True)
            print(f"  {case.id}: {outcome.seconds:.1f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
