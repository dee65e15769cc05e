"""Registered model names to adapters (not yet loaded)."""

from __future__ import annotations

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import MODELS
from ultrabench_eval.models.adapter import Adapter


def make_adapter(name: str) -> Adapter:
    """A registered model, not yet loaded: classes and factories are called, instances copied."""
    entry = MODELS.get(name)
    adapter = entry() if callable(entry) and not isinstance(entry, Adapter) else entry
    if not isinstance(adapter, Adapter):
        raise UserError(f"model '{name}' is registered as {type(adapter).__name__}, not an Adapter")
    if not adapter.name:
        adapter.name = name
    return adapter


def pooling_of(adapter: Adapter, requested: str | None) -> str:
    """The pooling to use: the one asked for, which the model must have, or its default."""
    if requested is None:
        return adapter.default_pooling
    if requested not in adapter.poolings:
        raise UserError(
            f"model '{adapter.name}' has no pooling '{requested}' "
            f"(it has: {', '.join(adapter.poolings)})"
        )
    return requested
