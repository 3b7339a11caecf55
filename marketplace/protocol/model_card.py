"""A job's model card: what is being trained, told the way model hubs do (the task, the data, how the model is
evaluated, its license), written by the project's owner.

The contract does not hold it (its config names the model architecture, the rounds and the CID of the initial
weights, no more): the card travels in the initial weights themselves, in their safetensors header, under
``__metadata__["model_card"]`` (:data:`METADATA_KEY`) as a JSON object of strings (:data:`FIELDS`). The
initial weights' CID is on chain, so the card is fixed with the project and anyone can read it.

Two readings, one format:

* :func:`check_card`, what an owner types: each field optional, plain text within its length
  (:data:`FIELDS`), no HTML markup (``<`` and ``>`` are refused: the card is shown as text), no control
  characters (the data description may have line breaks); a typed :class:`InvalidCard` names each field at fault;
* :func:`read_card`, what a reader finds in weights on IPFS, which anyone may have written: never an error. The
  JSON text is bounded (:data:`MAX_CARD_BYTES`, nesting :data:`MAX_CARD_DEPTH`), a field that is not a string is
  dropped, control characters are removed and each text is cut to its length (ending in "…"); a card with
  nothing left is no card. Markup is kept as text: whoever shows it escapes it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from marketplace.protocol.safejson import loads_bounded

#: The key of the card in the initial weights' safetensors ``__metadata__``.
METADATA_KEY = "model_card"
#: The card's fields and the most characters each holds.
FIELDS: dict[str, int] = {"task": 120, "data": 1000, "metric": 120, "license": 64}
#: Fields whose text may span lines.
MULTILINE = frozenset({"data"})
#: The largest card read from weights, in bytes of JSON (what :func:`card_metadata` writes is at most ~5 KB).
MAX_CARD_BYTES = 16 * 1024
#: The deepest JSON nesting read (a card is one object of strings).
MAX_CARD_DEPTH = 4
#: What ends a text cut to its length.
ELLIPSIS = "…"


class InvalidCard(ValueError):
    """Text an owner typed that a card does not take; ``errors`` maps each field at fault to words that follow
    its name ("must be at most 120 characters")."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k} {v}" for k, v in errors.items()))
        self.errors = errors


class ModelCard(BaseModel):
    """What is being trained: the task, the data, the evaluation metric and the license (each may be missing)."""

    model_config = ConfigDict(frozen=True)

    task: str | None = Field(default=None, max_length=FIELDS["task"], description="what the model learns to do")
    data: str | None = Field(
        default=None, max_length=FIELDS["data"], description="the data trainers train on: what it is, its labels"
    )
    metric: str | None = Field(default=None, max_length=FIELDS["metric"], description="how the model is evaluated")
    license: str | None = Field(default=None, max_length=FIELDS["license"], description="the trained model's license")


def _control(ch: str, multiline: bool) -> bool:
    """Whether ``ch`` is a control or format character a card does not keep (a line break is kept in
    :data:`MULTILINE` fields)."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") and not (multiline and ch == "\n")


def check_card(values: Mapping[str, Any]) -> ModelCard | None:
    """The card an owner typed in ``values`` (by :data:`FIELDS` name; other keys are ignored), None when every
    field is empty; :class:`InvalidCard` with words per field at fault."""
    errors: dict[str, str] = {}
    card: dict[str, str] = {}
    for name, most in FIELDS.items():
        value = values.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = "must be text"
            continue
        multiline = name in MULTILINE
        text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
        if not text:
            continue
        if "<" in text or ">" in text:
            errors[name] = "must not contain < or > (no HTML: the card is shown as plain text)"
        elif not multiline and "\n" in text:
            errors[name] = "must be one line"
        elif any(_control(ch, multiline) for ch in text):
            errors[name] = "must not contain control characters"
        elif len(text) > most:
            errors[name] = f"must be at most {most:,} characters (it has {len(text):,})"
        else:
            card[name] = text
    if errors:
        raise InvalidCard(errors)
    return ModelCard(**card) if card else None


def card_metadata(card: ModelCard) -> dict[str, str]:
    """The safetensors ``__metadata__`` entry that carries ``card`` (its fields that are set, as a JSON object)."""
    fields = card.model_dump(exclude_none=True)
    return {METADATA_KEY: json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))}


def _cleaned(text: str, multiline: bool, most: int) -> str:
    """``text`` without control characters, trimmed, at most ``most`` characters (cut ones end in "…")."""
    kept = "".join(
        (" " if ch.isspace() else "") if _control(ch, multiline) else ch for ch in text.replace("\r\n", "\n")
    ).strip()
    return kept if len(kept) <= most else kept[: most - 1].rstrip() + ELLIPSIS


def read_card(metadata: Mapping[str, Any]) -> ModelCard | None:
    """The card in weights' safetensors ``metadata`` (untrusted: see the module docstring), None when there is
    none that can be read: no :data:`METADATA_KEY`, not a string, more than :data:`MAX_CARD_BYTES`, not a JSON
    object (or nested deeper than :data:`MAX_CARD_DEPTH`), or no field that is a non-empty string."""
    raw = metadata.get(METADATA_KEY)
    if not isinstance(raw, str) or len(raw.encode("utf-8", errors="surrogatepass")) > MAX_CARD_BYTES:
        return None
    try:
        parsed = loads_bounded(raw, MAX_CARD_DEPTH)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    card: dict[str, str] = {}
    for name, most in FIELDS.items():
        value = parsed.get(name)
        if isinstance(value, str):
            text = _cleaned(value, name in MULTILINE, most)
            if text:
                card[name] = text
    return ModelCard(**card) if card else None
