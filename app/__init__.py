"""Rationale: explains automated decisions about people and keeps the proof."""

__version__ = "0.1.0"
