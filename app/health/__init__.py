"""Liveness, readiness and the Prometheus exposition (open endpoints)."""
