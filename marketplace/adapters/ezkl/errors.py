"""Errors of the ezkl adapter, importable without loading ezkl (the aggregator's loop catches them)."""

from __future__ import annotations


class ProvingFailed(RuntimeError):
    """ezkl could not make the proof (no witness for the values, keys that do not fit, a panic in
    ezkl's Rust code), or the proof it made is not about the values asked for."""
