"""recidivism: was a defendant charged with a new offence within two years?

Data: ProPublica "Machine Bias" (2016), compas-scores-two-years, Broward County, Florida,
2013-14 (7,214 defendants; names, dates of birth and case numbers removed).

Not used (docs/decisions.md#demo-data): decile_score - the commercial COMPAS tool's own output, not
a fact about the person; age_cat - only repeats age. race is not a model input either: it is
declared under the manifest's `attributes:` so fairness audits can group by it.

Nothing here is actionable: age, sex and criminal history are all in the past.

Split: 75 % train / 25 % holdout, stratified on the target, random_state=0.

Train with:  python models/train.py recidivism
"""

import pandas as pd
from _common import DATA_DIR, SEED, attribute, categorical, names, numeric
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NAME = "recidivism"
DATA_FILES = ["compas_two_year.csv"]
CLASSES = ["no", "yes"]  # two_year_recid 0 / 1: charged again within two years?
FAVORABLE = "no"

FEATURES = [
    categorical("sex", "Sex", protected=True),
    numeric("age", "Age", unit="years", protected=True),
    numeric("juv_fel_count", "Felonies (serious crimes) charged as a juvenile", unit="charges"),
    numeric("juv_misd_count", "Misdemeanours (minor crimes) charged as a juvenile", unit="charges"),
    numeric("juv_other_count", "Other offences charged as a juvenile", unit="charges"),
    numeric("priors_count", "Earlier offences on record", unit="offences"),
    categorical(
        "c_charge_degree",
        "The current charge: F = felony (a serious crime), M = misdemeanour (a minor crime)",
    ),
]
ATTRIBUTES = [
    attribute(
        "race",
        "Race, as recorded in the county's records; "
        "not a model input, used only for fairness audits",
    ),
]

CARD = {
    "owner": "Rationale demo",
    "intended_use": "Demonstration and testing of Rationale's explanations and fairness "
    "audits on the data set behind ProPublica's 'Machine Bias' investigation. Must not be "
    "used for any decision about a real person (bail, sentencing, parole).",
    "limitations": "COMPAS and this data are at the centre of a well-known controversy: "
    "ProPublica found the commercial score's errors fall unequally on Black and white "
    "defendants; this model learns from the same data and can show the same kind of "
    "disparity, which is why race is declared for audits. The label is a new charge "
    "(arrest), not proven reoffending, and arrests reflect policing as much as behaviour. "
    "Race is left out of the inputs, but age, sex and prior counts correlate with it. "
    "One US county, 2013-14 only.",
    "training_data": "ProPublica compas-analysis (2016), compas-scores-two-years; no licence "
    "file in ProPublica's repository, cite ProPublica. {rows} rows; {train_rows} train, "
    "{holdout_rows} holdout (stratified 75/25 split, random_state=0). decile_score, age_cat "
    "and race are not model inputs.",
}


def load() -> tuple[pd.DataFrame, pd.Series]:
    raw = pd.read_csv(DATA_DIR / "compas_two_year.csv")
    return raw, raw["two_year_recid"].map({0: "no", 1: "yes"})


def build_pipeline(categories: dict[str, list[str]]) -> Pipeline:
    cats = names(FEATURES, "categorical")
    pre = ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(
                    categories=[categories[c] for c in cats],
                    handle_unknown="error",
                    sparse_output=False,
                ),
                cats,
            ),
            ("num", StandardScaler(), names(FEATURES, "numeric")),
        ]
    )
    model = LogisticRegression(max_iter=1000, random_state=SEED)
    return Pipeline([("pre", pre), ("model", model)])
