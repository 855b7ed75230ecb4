"""Explanations: explain a decision and record it; read one back by id or decision id."""
