"""Rationale's benchmark: ``python -m bench`` (or ``make bench``), see
docs/operations/benchmarks.md.

One run on one machine measures the bare explainer call in-process, the model-agnostic
path against naive KernelExplainer (error against a reference computed in the run, at least
10× more precise than what it judges), and the service over HTTP (1 and 2 workers,
durable records) on the three demo models and a 30-feature MLP pipeline built at bench time
(bench/breast_cancer.py), and writes ``bench/results.md``. The record-store section (1M
records) is opt-in: ``--store``.

Sections are registered in ``bench.__main__.SECTIONS`` (name → function taking a ``Run``
and returning a ``report.Section``); ``OPT_IN`` ones run only when asked for. To add one,
write ``bench/<name>.py`` and a section function, and add it to the registry; the report
renders every section it is given.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, as the service runs each worker (docs/operations/benchmarks.md: one
# BLAS thread per worker). Set before numpy is imported anywhere in the bench;
# OPENBLAS_CORETYPE is left.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
