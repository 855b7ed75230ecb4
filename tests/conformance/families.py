"""The conformance table: scikit-learn's families, each registered and served as a model
owner would (Pipeline with scaling and one-hot encoding, skops artifact, manifest,
background.csv), loaded by the service's own loader and explained under ``auto``; and each
family again as a bare estimator (fitted on the raw numeric features, no Pipeline: the
commonest artifact people save), which must be served as its Pipeline twin is.

``run_case`` returns what the service did with one family; ``tests/conformance`` asserts
the fidelity bars (docs/explanations.md#fidelity-bars) on it; ``python -m tests.conformance`` prints
the table of docs/conformance.md.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
import yaml
from sklearn import datasets
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import (
    BayesianRidge,
    ElasticNet,
    HuberRegressor,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from app.catalog.loader import LoadRefused
from app.catalog.model import LoadedModel, load_version
from app.catalog.service import warm
from app.compute.batcher import Options, compute_one
from app.errors import RationaleError

GERMAN_CREDIT = Path(__file__).resolve().parents[2] / "models" / "data" / "german_credit.csv"
"""The German credit data (UCI Statlog) the demo models are trained on, kept in the repo."""

TRAIN_ROWS = 300
BACKGROUND_ROWS = 24
EXPLAINED_ROWS = 2

EXACT_BAR = 1e-6
"""|residual| of an ``exact`` explanation (docs/explanations.md#fidelity-bars)."""
AUTO_BAR = 1e-4
"""|residual| / max(1, |output|) of anything ``auto`` returns
(docs/explanations.md#fidelity-bars)."""


@dataclass(frozen=True)
class Data:
    """A data set as a model owner has it: raw features, a target, its task."""

    key: str
    describe: str
    frame: pd.DataFrame
    target: np.ndarray
    task: str
    numeric: list[str]
    categorical: list[str]

    @property
    def classes(self) -> list[str] | None:
        return sorted(set(self.target.tolist())) if self.task == "classification" else None


def _credit_frame() -> pd.DataFrame:
    return pd.read_csv(GERMAN_CREDIT)


def _bundled(key: str, loader: Callable[..., Any], task: str, describe: str) -> Data:
    bunch = loader(as_frame=True)
    frame = bunch.frame.drop(columns=["target"])
    if task == "classification":
        target = np.asarray([str(bunch.target_names[i]) for i in bunch.target])
    else:
        target = bunch.target.to_numpy(dtype=np.float64)
    return Data(key, describe, frame, target, task, list(frame.columns), [])


@cache
def dataset(key: str) -> Data:
    """One of the conformance data sets, by key."""
    if key == "credit":
        frame = _credit_frame()
        numeric = ["duration_in_month", "credit_amount", "age_in_years"]
        categorical = [
            "status_of_existing_checking_account",
            "credit_history",
            "purpose",
            "savings_account_and_bonds",
        ]
        return Data(
            key,
            "German credit, binary, 3 numeric + 4 one-hot features",
            frame[numeric + categorical],
            frame["creditability"].astype(str).to_numpy(),
            "classification",
            numeric,
            categorical,
        )
    if key == "credit-amount":
        frame = _credit_frame()
        numeric = [
            "duration_in_month",
            "age_in_years",
            "installment_rate_in_percentage_of_disposable_income",
        ]
        categorical = ["purpose", "property", "job"]
        return Data(
            key,
            "German credit amount, regression, 3 numeric + 3 one-hot features",
            frame[numeric + categorical],
            frame["credit_amount"].to_numpy(dtype=np.float64),
            "regression",
            numeric,
            categorical,
        )
    if key == "breast_cancer":
        return _bundled(
            key, datasets.load_breast_cancer, "classification", "breast cancer, binary, 30 numeric"
        )
    if key == "wine":
        return _bundled(key, datasets.load_wine, "classification", "wine, 3 classes, 13 numeric")
    if key == "iris":
        return _bundled(key, datasets.load_iris, "classification", "iris, 3 classes, 4 numeric")
    if key == "diabetes":
        return _bundled(
            key, datasets.load_diabetes, "regression", "diabetes, regression, 10 numeric"
        )
    raise KeyError(key)


@dataclass(frozen=True)
class Case:
    """One row of the table: a family, the data it is fitted on, how to build it."""

    family: str
    group: str
    data: str
    make: Callable[[], Any]
    refused: str | None = None
    """Expected refusal at load: a phrase of the reason the service gives."""
    engine_gap: str | None = None
    """A failure of today's engine that is being fixed elsewhere (the suite still asserts)."""
    bare: bool = False
    """Fitted on the raw numeric features with no Pipeline (the identity-encoded case)."""

    @property
    def id(self) -> str:
        return f"{self.family} [{self.data}]" + (" bare" if self.bare else "")


def _lr() -> LogisticRegression:
    return LogisticRegression(max_iter=500)


CASES: list[Case] = [
    # linear
    Case("LinearRegression", "linear", "credit-amount", LinearRegression),
    Case("Ridge", "linear", "diabetes", lambda: Ridge(alpha=1.0)),
    Case("Lasso", "linear", "diabetes", lambda: Lasso(alpha=0.1)),
    Case("ElasticNet", "linear", "credit-amount", lambda: ElasticNet(alpha=0.1)),
    Case("BayesianRidge", "linear", "diabetes", BayesianRidge),
    Case("HuberRegressor", "linear", "diabetes", lambda: HuberRegressor(max_iter=1000)),
    Case("LogisticRegression (binary)", "linear", "credit", _lr),
    Case("LogisticRegression (multinomial)", "linear", "wine", _lr),
    Case(
        "SGDClassifier (log loss)",
        "linear",
        "breast_cancer",
        lambda: SGDClassifier(loss="log_loss", random_state=0),
    ),
    # trees
    Case(
        "DecisionTreeClassifier", "trees", "credit", lambda: DecisionTreeClassifier(random_state=0)
    ),
    Case(
        "DecisionTreeClassifier (max_depth=3)",
        "trees",
        "iris",
        lambda: DecisionTreeClassifier(max_depth=3, random_state=0),
    ),
    Case(
        "DecisionTreeRegressor (max_depth=4)",
        "trees",
        "diabetes",
        lambda: DecisionTreeRegressor(max_depth=4, random_state=0),
    ),
    Case(
        "RandomForestClassifier",
        "trees",
        "breast_cancer",
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    ),
    Case(
        "RandomForestClassifier (max_depth=4)",
        "trees",
        "wine",
        lambda: RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0),
    ),
    Case(
        "RandomForestRegressor",
        "trees",
        "credit-amount",
        lambda: RandomForestRegressor(n_estimators=20, random_state=0),
    ),
    Case(
        "ExtraTreesClassifier",
        "trees",
        "credit",
        lambda: ExtraTreesClassifier(n_estimators=20, random_state=0),
    ),
    Case(
        "ExtraTreesClassifier",
        "trees",
        "wine",
        lambda: ExtraTreesClassifier(n_estimators=20, random_state=0),
    ),
    Case(
        "ExtraTreesRegressor (max_depth=5)",
        "trees",
        "diabetes",
        lambda: ExtraTreesRegressor(n_estimators=20, max_depth=5, random_state=0),
    ),
    Case(
        "GradientBoostingClassifier",
        "trees",
        "credit",
        lambda: GradientBoostingClassifier(n_estimators=30, random_state=0),
    ),
    Case(
        "GradientBoostingClassifier (max_depth=2)",
        "trees",
        "iris",
        lambda: GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0),
    ),
    Case(
        "GradientBoostingRegressor",
        "trees",
        "diabetes",
        lambda: GradientBoostingRegressor(n_estimators=30, random_state=0),
    ),
    Case(
        "HistGradientBoostingClassifier",
        "trees",
        "credit",
        lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    ),
    Case(
        "HistGradientBoostingClassifier (max_depth=3)",
        "trees",
        "iris",
        lambda: HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0),
    ),
    Case(
        "HistGradientBoostingRegressor",
        "trees",
        "credit-amount",
        lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0),
    ),
    # others
    Case("SVC (probability)", "others", "credit", lambda: SVC(probability=True, random_state=0)),
    Case("SVC (probability)", "others", "iris", lambda: SVC(probability=True, random_state=0)),
    Case("SVR", "others", "diabetes", SVR),
    Case("KNeighborsClassifier", "others", "wine", KNeighborsClassifier),
    Case("KNeighborsRegressor", "others", "credit-amount", KNeighborsRegressor),
    Case(
        "MLPClassifier",
        "others",
        "breast_cancer",
        lambda: MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
    ),
    Case(
        "MLPRegressor",
        "others",
        "diabetes",
        lambda: MLPRegressor(hidden_layer_sizes=(16,), max_iter=500, random_state=0),
    ),
    Case("GaussianNB", "others", "wine", GaussianNB),
    Case(
        "CalibratedClassifierCV (logistic)",
        "others",
        "credit",
        lambda: CalibratedClassifierCV(_lr(), cv=3),
    ),
    Case(
        "BaggingClassifier (trees)",
        "others",
        "iris",
        lambda: BaggingClassifier(DecisionTreeClassifier(), n_estimators=10, random_state=0),
    ),
    Case(
        "BaggingRegressor (trees)",
        "others",
        "diabetes",
        lambda: BaggingRegressor(DecisionTreeRegressor(), n_estimators=10, random_state=0),
    ),
    Case(
        "AdaBoostClassifier",
        "others",
        "credit",
        lambda: AdaBoostClassifier(n_estimators=20, random_state=0),
    ),
    Case(
        "AdaBoostRegressor",
        "others",
        "diabetes",
        lambda: AdaBoostRegressor(n_estimators=20, random_state=0),
    ),
    Case(
        "VotingClassifier (soft: logistic, forest, naive Bayes)",
        "others",
        "credit",
        lambda: VotingClassifier(
            [
                ("lr", _lr()),
                ("rf", RandomForestClassifier(n_estimators=10, random_state=0)),
                ("nb", GaussianNB()),
            ],
            voting="soft",
        ),
    ),
    Case(
        "VotingRegressor (ridge, tree)",
        "others",
        "diabetes",
        lambda: VotingRegressor(
            [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))]
        ),
    ),
    Case(
        "StackingClassifier (logistic, tree → logistic)",
        "others",
        "iris",
        lambda: StackingClassifier(
            [("lr", _lr()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))],
            final_estimator=_lr(),
            cv=3,
        ),
    ),
    Case(
        "StackingRegressor (ridge, tree → ridge)",
        "others",
        "diabetes",
        lambda: StackingRegressor(
            [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))],
            final_estimator=Ridge(),
            cv=3,
        ),
    ),
    Case(
        "DummyClassifier (stratified, unseeded)",
        "others",
        "credit",
        lambda: DummyClassifier(strategy="stratified"),
        refused="not deterministic",
    ),
]
"""Every family the service is checked against in a Pipeline."""

NUMERIC_TWIN = {"credit": "breast_cancer", "credit-amount": "diabetes"}
"""For a bare row, numeric data of the same task where a family's data has categories."""


def bare_twin(case: Case) -> Case:
    """The family as a bare estimator on numeric data (its own, or ``NUMERIC_TWIN``'s)."""
    return replace(case, data=NUMERIC_TWIN.get(case.data, case.data), bare=True)


def pipeline_twin(case: Case) -> Case:
    """The Pipeline row a bare row is checked against: the same family on the same data."""
    return replace(case, bare=False)


BARE_CASES: list[Case] = list({bare_twin(c).id: bare_twin(c) for c in CASES}.values())
"""Every family again as a bare estimator (one row per family and data)."""
CASES = CASES + BARE_CASES
"""Every row of the table, Pipelines first; the table of docs/conformance.md is printed from it."""


def pipeline_for(data: Data, estimator: Any) -> Pipeline:
    """Scaling for numeric features, one-hot encoding for categorical ones, the estimator."""
    parts: list[tuple[str, Any, list[str]]] = [("num", StandardScaler(), data.numeric)]
    if data.categorical:
        parts.append(
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), data.categorical)
        )
    return Pipeline([("prep", ColumnTransformer(parts)), ("model", estimator)])


def _split(data: Data) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Training rows, their target, background rows and explained rows (held out)."""
    order = np.random.default_rng(7).permutation(len(data.frame))
    train = order[: min(TRAIN_ROWS, len(order) - EXPLAINED_ROWS)]
    rest = order[len(train) :]
    background = data.frame.iloc[train[:BACKGROUND_ROWS]]
    explained = data.frame.iloc[rest[:EXPLAINED_ROWS]]
    return data.frame.iloc[train], data.target[train], background, explained


def register(case: Case, root: Path) -> Path:
    """Fit the family's pipeline and write its version folder as a model owner would."""
    data = dataset(case.data)
    x, y, background, _ = _split(data)
    if case.bare and data.categorical:
        raise ValueError(f"{case.id}: a bare row needs numeric data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = (case.make() if case.bare else pipeline_for(data, case.make())).fit(x, y)
    name = "".join(c if c.isalnum() else "-" for c in case.family.lower()).strip("-")[:45]
    name = "-".join(part for part in name.split("-") if part) + f"-{case.data}"
    name += "-bare" if case.bare else ""
    folder = root / name[:64] / "1"
    folder.mkdir(parents=True)
    sio.dump(pipeline, folder / "model.skops")
    background.to_csv(folder / "background.csv", index=False)
    features: list[dict[str, Any]] = [{"name": n, "type": "numeric"} for n in data.numeric]
    for column in data.categorical:
        categories = sorted(set(data.frame[column].astype(str)))
        features.append({"name": column, "type": "categorical", "categories": categories})
    classes = data.classes
    manifest: dict[str, Any] = {
        "name": folder.parent.name,
        "version": "1",
        "task": data.task,
        "artifact": "model.skops",
        "sha256": hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest(),
        "favorable": classes[-1] if classes else "higher",
        "background": "background.csv",
        "features": features,
    }
    if classes:
        manifest["classes"] = classes
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


@dataclass
class Served:
    """One explained row: the explanation against the artifact's own prediction."""

    method: str
    exactness: str
    approximates: str | None
    has_standard_errors: bool
    output: float
    artifact_output: float
    residual: float
    repeat_identical: bool


@dataclass
class Outcome:
    """What the service did with one family."""

    case: Case
    features: int
    refused: str | None = None
    rows: list[Served] = field(default_factory=list)
    seconds: float = 0.0
    decomposed: bool = False
    """Whether the engine saw the estimator's encoded columns (else: a black box)."""

    @property
    def methods(self) -> list[str]:
        return sorted({r.method for r in self.rows})

    @property
    def exactness(self) -> list[str]:
        return sorted({r.exactness for r in self.rows})

    @property
    def worst_relative_residual(self) -> float:
        return max((abs(r.residual) / max(1.0, abs(r.output)) for r in self.rows), default=0.0)


def _artifact_output(model: LoadedModel, row: dict[str, Any], class_name: str | None) -> float:
    """The artifact's own prediction of the row, through its own pipeline and DataFrame."""
    frame = model.model.frame_from_records([row])
    pipeline = model.model.pipeline
    if class_name is None:
        return float(np.asarray(pipeline.predict(frame), dtype=np.float64)[0])
    index = [str(c) for c in pipeline.classes_].index(class_name)
    return float(np.asarray(pipeline.predict_proba(frame), dtype=np.float64)[0, index])


def run_case(case: Case, root: Path) -> Outcome:
    """Register the family, load and warm it with the service's loader, explain held-out
    rows under ``auto`` twice each, with one BLAS/OpenMP thread as a worker runs."""
    with threadpool_limits(1):
        return _run_case(case, root)


def _run_case(case: Case, root: Path) -> Outcome:
    started = time.perf_counter()
    data = dataset(case.data)
    folder = register(case, root)
    outcome = Outcome(case, len(data.numeric) + len(data.categorical))
    try:
        model = load_version(folder, allow_unsafe=False)
        warm(model)
    except LoadRefused as exc:
        outcome.refused = str(exc)
        outcome.seconds = time.perf_counter() - started
        return outcome
    outcome.decomposed = model.model.decomposed
    _, _, _, explained = _split(data)
    for raw_row in explained.to_dict("records"):
        row = {str(k): (v if isinstance(v, str) else float(v)) for k, v in raw_row.items()}
        try:
            first = compute_one(model, row, Options())
            again = compute_one(model, row, Options())
        except RationaleError as exc:
            outcome.refused = f"a held-out row was refused under auto: {exc.detail}"
            break
        e = first.explanation
        class_name = None
        if model.model.classes is not None:
            assert first.target.class_index is not None
            class_name = model.model.classes[first.target.class_index]
        artifact = _artifact_output(model, row, class_name)
        outcome.rows.append(
            Served(
                method=e.method,
                exactness=e.exactness,
                approximates=e.approximates,
                has_standard_errors=e.standard_errors is not None,
                output=e.model_output,
                artifact_output=artifact,
                residual=float(e.base_value + float(np.sum(e.contributions)) - artifact),
                repeat_identical=(
                    again.explanation.method == e.method
                    and again.explanation.contributions.tobytes() == e.contributions.tobytes()
                    and again.explanation.base_value == e.base_value
                ),
            )
        )
    outcome.seconds = time.perf_counter() - started
    return outcome


def bar(served: Served) -> float:
    """The additivity bar for this explanation (docs/explanations.md#fidelity-bars)."""
    if served.exactness == "exact":
        return EXACT_BAR
    return AUTO_BAR * max(1.0, abs(served.output))
