"""Rationale's benchmark: ``python -m bench`` (or ``make bench``), see SPEC §9 and §10.10.

One run on one machine measures the bare explainer call in-process and the service over
HTTP (1 and 2 workers, durable records), and writes ``bench/results.md``.

Sections are registered in ``bench.__main__.SECTIONS`` (name → function taking a ``Run``
and returning a ``report.Section``). To add one (e.g. model-agnostic fidelity, or the
record store at 1M records), write ``bench/<name>.py`` with a ``run(run) -> Section``
function and add it to the registry; the report renders every section it is given.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, as the service runs each worker (SPEC: one BLAS thread per
# worker). Set before numpy is imported anywhere in the bench; OPENBLAS_CORETYPE is left.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
