"""Audits over the stored decisions: fairness by group, impact over time (pure: no HTTP, no SQL)."""
