"""Words for people: principal reasons, what would change the outcome, reports and charts.

A library like ``app.explain``: no FastAPI, no SQL. Services call it."""
