"""Reported outcomes and the audits over stored decisions: fairness by group, impact over time."""
