"""The round's proof document: what the aggregator pins to IPFS next to ``finalizeRound``.

It repeats the public values the proof was made for (commitments, scores and flags in trainer
order), says why submissions were rejected, carries the proof bytes and the new model's CID, names the
unpaid trainers whose update is in the new model (``admitted``) and the trainers whose update the owner's
reference kept out of it, paid as scored (``screened``) (both the aggregator's word, which ``marketplace audit``
recomputes), and reports the new model's accuracy on the aggregator's own held-out data (not proven). Its CID is
recorded on chain with the round, so anyone can fetch it; everything in it is attacker-controlled
input for whoever reads it: :meth:`ProofDocument.parse` bounds the size and nesting, checks every
type, and refuses non-finite numbers, so one bad document is a typed error, never a crash.
"""

from __future__ import annotations

import json
import math
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketplace.protocol.safejson import parse_document

#: Largest proof document read, in bytes (proofs are 5-10 KB; 64 trainers' values a few KB more).
MAX_PROOF_DOCUMENT_BYTES = 4 * 1024 * 1024
#: Deepest JSON nesting a proof document has (an object of arrays and one object of strings).
MAX_PROOF_DOCUMENT_DEPTH = 8

_HEX = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


class InvalidProofDocument(ValueError):
    """The bytes are not a proof document (too large, not JSON, wrong types, non-finite numbers)."""


class ProofDocument(BaseModel):
    """One finalized round's proof document (field names are the JSON keys)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    project: int = Field(ge=0)
    round: int = Field(ge=0)
    prover: str = Field(max_length=64)
    commitments: list[str] = Field(max_length=1024)
    """Each trainer's on-chain commitment, 0x-hex bytes32, in trainer order."""
    scores: list[int] = Field(max_length=1024)
    """The recorded integer scores (fixed point ``2**13``), in trainer order."""
    flags: list[bool] = Field(max_length=1024)
    rejected: dict[str, str] = Field(default_factory=dict, max_length=1024)
    """Trainer address -> why its submission was rejected."""
    published: dict[str, str] = Field(default_factory=dict, max_length=1024)
    """Trainer address -> why its update was rejected, for trainers that then published their committed row
    on chain (a dispute): scored and paid on that row, their update left out of the model."""
    admitted: list[str] = Field(default_factory=list, max_length=1024)
    """Trainer addresses whose update is in the new model although they are not paid (it agrees with the paid
    updates; clipped to their median norm: :func:`marketplace.rule.aggregate.agreeing_clipped_mean`)."""
    screened: list[str] = Field(default_factory=list, max_length=1024)
    """Trainer addresses whose update the owner's reference kept out of the new model, their pay the rule's
    (the committed row points against the reference row: :func:`marketplace.rule.scorer.reference_screen`);
    absent from documents made before the screen (read as empty)."""
    reference: str | None = Field(default=None, max_length=66)
    """The owner's revealed reference commitment the round was scored and proven with (None: no reference)."""
    proof: str = Field(max_length=2 * MAX_PROOF_DOCUMENT_BYTES)
    model_cid: str = Field(max_length=128)
    accuracy: float | None = None
    """Test accuracy of the new model on the aggregator's held-out data, in [0, 1] (not proven)."""
    loss: float | None = None

    @field_validator("commitments")
    @classmethod
    def _check_commitments(cls, value: list[str]) -> list[str]:
        for c in value:
            if not _BYTES32.match(c):
                raise ValueError(f"commitment {c[:80]!r} is not a 0x-prefixed bytes32")
        return value

    @field_validator("reference")
    @classmethod
    def _check_reference(cls, value: str | None) -> str | None:
        if value is not None and not _BYTES32.match(value):
            raise ValueError(f"reference {value[:80]!r} is not a 0x-prefixed bytes32")
        return value

    @field_validator("scores")
    @classmethod
    def _check_scores(cls, value: list[int]) -> list[int]:
        for s in value:
            if not 0 <= s < 2**256:
                raise ValueError("a score is not a uint256")
        return value

    @field_validator("proof")
    @classmethod
    def _check_proof(cls, value: str) -> str:
        if not _HEX.match(value):
            raise ValueError("the proof is not 0x-prefixed hex bytes")
        return value

    @field_validator("accuracy", "loss", mode="before")
    @classmethod
    def _check_finite(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a number, not a boolean")
        if isinstance(value, int):  # JSON integers are unbounded: 10**400 does not fit a float
            if abs(value) > 2**53:
                raise ValueError("number out of range")
            value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a finite number")
        return value

    @field_validator("accuracy")
    @classmethod
    def _check_accuracy(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError("accuracy is a fraction in [0, 1]")
        return value

    @property
    def proof_bytes(self) -> bytes:
        return bytes.fromhex(self.proof[2:])

    @property
    def commitment_bytes(self) -> list[bytes]:
        return [bytes.fromhex(c[2:]) for c in self.commitments]

    def to_bytes(self) -> bytes:
        """The document as pinned: JSON with sorted keys."""
        return json.dumps(self.model_dump(), sort_keys=True, allow_nan=False).encode()

    @classmethod
    def parse(cls, raw: bytes) -> ProofDocument:
        """The document in ``raw``; raises :class:`InvalidProofDocument` saying what is wrong."""
        return parse_document(
            cls, raw, max_bytes=MAX_PROOF_DOCUMENT_BYTES, error=InvalidProofDocument, what="a proof document",
            max_depth=MAX_PROOF_DOCUMENT_DEPTH,
        )  # fmt: skip
