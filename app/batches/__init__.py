"""Batches: many decisions of one model explained asynchronously, in-process or on Celery."""
