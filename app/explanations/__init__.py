"""Use cases the routers call: explain-and-record, read records, models."""
