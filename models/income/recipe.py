"""income: does a person earn more than $50,000 a year (1994 US census)?

Data: UCI Adult, adult.data (32,561 rows) + adult.test (16,281 rows) = 48,842 rows.
Cleaning: spaces around values stripped; adult.test's first line (a comment) skipped and
the '.' at the end of its labels removed.

Missing values: '?' (in workclass, occupation, native_country) is kept as a category of
its own, "unknown" (docs/decisions.md#demo-data) - no row is dropped, so the model can be asked
about anyone, and "not stated" is itself informative in this data.

Dropped columns:
- fnlwgt: the census sampling weight (how many people the row stands for), a property of
  the survey design, not an attribute of the person.
- education: duplicates education_num one to one; education_num keeps the natural order
  (preschool < ... < doctorate) that an alphabetical ordinal code would scramble.

Encoding: categories as ordinal codes over explicit sorted lists, used as plain numeric
features by HistGradientBoosting (no native categorical support, so shap's TreeExplainer
sees ordinary numeric splits).

Split: the data set's own train/test split - train on adult.data, holdout adult.test.

Train with:  python models/train.py income
"""

import pandas as pd
from _common import DATA_DIR, SEED, categorical, names, numeric
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

NAME = "income"
DATA_FILES = ["adult.data", "adult.test", "adult.names"]
CLASSES = ["<=50K", ">50K"]
FAVORABLE = ">50K"
COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]

FEATURES = [
    numeric("age", "Age", unit="years", protected=True),
    categorical(
        "workclass", "Kind of employer (private, self-employed, government...)", actionable=True
    ),
    numeric(
        "education_num",
        "Highest level of education, from 1 (preschool) to 16 "
        "(doctorate); 9 is high-school graduate, 13 a bachelor's degree",
        actionable=True,
    ),
    categorical("marital_status", "Marital status"),
    categorical("occupation", "Kind of work", actionable=True),
    categorical("relationship", "Role in the household (husband, wife, own child...)"),
    categorical("race", "Race, as recorded by the census", protected=True),
    categorical("sex", "Sex", protected=True),
    numeric(
        "capital_gain", "Profit from selling investments or property that year", unit="US dollars"
    ),
    numeric(
        "capital_loss", "Loss from selling investments or property that year", unit="US dollars"
    ),
    numeric("hours_per_week", "Hours worked in a usual week", unit="hours", actionable=True),
    categorical("native_country", "Country of birth", protected=True),
]

CARD = {
    "owner": "Rationale demo",
    "intended_use": "Demonstration and testing of Rationale's explanations and fairness "
    "audits on a large, well-known census data set. Not for decisions about real people.",
    "limitations": "1994 US census (Current Population Survey) data: incomes are not "
    "inflation-adjusted and social patterns have changed. The $50K threshold is arbitrary. "
    "Sex, race, age and country of birth are model inputs, so the model learns the 1994 "
    "income gaps between groups. '?' answers are a category of their own, \"unknown\". "
    "Census sampling weights (fnlwgt) are ignored, so rows are not weighted to represent "
    "the US population.",
    "training_data": "UCI Adult (Census Income), B. Becker and R. Kohavi 1996, CC BY 4.0. "
    "{rows} rows (adult.data + adult.test, no row dropped); the data set's own split: "
    "{train_rows} train (adult.data), {holdout_rows} holdout (adult.test).",
}


def _read(file: str, skiprows: int) -> pd.DataFrame:
    df = pd.read_csv(
        DATA_DIR / file,
        header=None,
        names=COLUMNS,
        skiprows=skiprows,
        skipinitialspace=True,
        dtype=str,
        keep_default_na=False,
    )
    df = df.apply(lambda col: col.str.strip())
    df["income"] = df["income"].str.rstrip(".")
    return df.replace("?", "unknown")


def load() -> tuple[pd.DataFrame, pd.Series]:
    train, test = _read("adult.data", 0), _read("adult.test", 1)
    raw = pd.concat([train, test], keys=["train", "test"])
    return raw, raw["income"]


def split(raw: pd.DataFrame, y: pd.Series) -> tuple[pd.Index, pd.Index]:
    """Train on adult.data, hold out adult.test."""
    part = raw.index.get_level_values(0)
    return raw.index[part == "train"], raw.index[part == "test"]


def build_pipeline(categories: dict[str, list[str]]) -> Pipeline:
    cats = names(FEATURES, "categorical")
    pre = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(categories=[categories[c] for c in cats], handle_unknown="error"),
                cats,
            ),
            ("num", "passthrough", names(FEATURES, "numeric")),
        ]
    )
    model = HistGradientBoostingClassifier(max_iter=100, random_state=SEED)
    return Pipeline([("pre", pre), ("model", model)])
