"""Openings handed to the aggregator, so that it reveals every trainer in one ``revealBatch``.

A trainer's **opening** is what opens its seal (:mod:`marketplace.protocol.seal`): the CID, the commitment
and the salt. The seal names the trainer, so an opening reveals exactly what that trainer committed,
whoever sends it; the aggregator can therefore reveal all its trainers in one transaction.

How the aggregator finds an opening, without a transaction per trainer, across hosts:

- At commit time the trainer writes its **opening document** (:class:`OpeningDocument`, JSON) and computes
  its CID locally, without adding it to IPFS. The commit's note carries that CID in the clear, in front of
  the trainer's own encrypted note (:func:`note_with_pointer`). The CID is a hash of a document that
  holds the secret salt: it tells nothing about the opening, and nobody can fetch the document yet.
- Once the commit phase has closed on chain (``revealOpens``), and never before, the trainer adds the
  document to its IPFS node. The aggregator reads the pointers from the round's ``UpdateCommitted``
  events (:func:`split_note`), fetches the documents over IPFS as it fetches updates, checks each against
  the trainer's committed seal, and reveals the valid ones in one batch.

Everything an aggregator reads here is untrusted: a note is anyone's bytes, and a document is whatever
its CID's holder serves. :meth:`OpeningDocument.parse` bounds the size, parses strictly (pydantic) and
raises :class:`InvalidOpening`; :meth:`OpeningDocument.check` says whether the document opens the seal
of that trainer in that round of that project of that market on that chain.
"""

from __future__ import annotations

import json
import re

from eth_utils import is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketplace.protocol.safejson import parse_document
from marketplace.protocol.seal import RoundAddress, seal

#: Largest opening document read, in bytes (one is about 400).
MAX_OPENING_BYTES = 2048
#: Longest pointer (the opening document's CID, as text) a note carries.
MAX_POINTER_BYTES = 100
#: Longest commit note the market accepts (``TrainingMarket.MAX_NOTE_LENGTH``): a pointer that would make the
#: note longer is left out (the trainer then reveals itself).
MAX_NOTE_BYTES = 192
#: The two bytes in front of a note that carries a pointer (then one length byte, then the CID).
POINTER_MAGIC = b"\xa7\x01"
KIND = "marketplace.opening/1"

_BYTES32 = re.compile(r"^0x[0-9a-f]{64}$")
_CID = re.compile(r"^[A-Za-z0-9]{1,128}$")


class InvalidOpening(ValueError):
    """The bytes are not an opening document (too large, not JSON, wrong or missing fields)."""


class OpeningMismatch(ValueError):
    """An opening document that is well formed but does not open the seal it was read for."""


class OpeningDocument(BaseModel):
    """One trainer's opening of its seal in one round (field names are the JSON keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: str = Field(pattern=f"^{re.escape(KIND)}$")
    chain_id: int = Field(ge=0, lt=2**64)
    market: str = Field(max_length=42)
    project: int = Field(ge=0, lt=2**256)
    round: int = Field(ge=0, lt=2**256)
    trainer: str = Field(max_length=42)
    cid: str = Field(max_length=128)
    commitment: str = Field(max_length=66)
    salt: str = Field(max_length=66)

    @field_validator("market", "trainer")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if not is_checksum_address(value):
            raise ValueError("not a checksummed address")
        return value

    @field_validator("commitment", "salt")
    @classmethod
    def _check_bytes32(cls, value: str) -> str:
        if not _BYTES32.match(value):
            raise ValueError("not 0x-prefixed lowercase hex of 32 bytes")
        return value

    @field_validator("cid")
    @classmethod
    def _check_cid(cls, value: str) -> str:
        if not _CID.match(value):
            raise ValueError("not a CID")
        return value

    @classmethod
    def of(cls, where: RoundAddress, trainer: str, cid: str, commitment: bytes, salt: bytes) -> OpeningDocument:
        """The document of ``trainer``'s opening ``(cid, commitment, salt)`` in round ``where``."""
        return cls(
            kind=KIND, chain_id=where.chain_id, market=to_checksum_address(where.market),
            project=where.project_id, round=where.round, trainer=to_checksum_address(trainer), cid=cid,
            commitment="0x" + commitment.hex(), salt="0x" + salt.hex(),
        )  # fmt: skip

    @property
    def commitment_bytes(self) -> bytes:
        return bytes.fromhex(self.commitment[2:])

    @property
    def salt_bytes(self) -> bytes:
        return bytes.fromhex(self.salt[2:])

    def to_bytes(self) -> bytes:
        """The document as added to IPFS: JSON with sorted keys (the same bytes, so the same CID, every time)."""
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":")).encode()

    def check(self, where: RoundAddress, trainer: str, committed_seal: bytes) -> None:
        """Raises :class:`OpeningMismatch` unless this document names round ``where`` and ``trainer`` and opens
        ``committed_seal`` (the seal that trainer committed there)."""
        named = (self.chain_id, self.market, self.project, self.round, self.trainer)
        expected = (where.chain_id, to_checksum_address(where.market), where.project_id, where.round)
        if named != (*expected, to_checksum_address(trainer)):
            raise OpeningMismatch(f"the opening names {named}, not {(*expected, trainer)}")
        opened = seal(self.commitment_bytes, self.cid, self.trainer, where, self.salt_bytes)
        if opened != committed_seal:
            raise OpeningMismatch(f"the opening does not open {self.trainer}'s committed seal")

    @classmethod
    def parse(cls, raw: bytes) -> OpeningDocument:
        """The document in ``raw``; raises :class:`InvalidOpening` saying what is wrong."""
        return parse_document(cls, raw, max_bytes=MAX_OPENING_BYTES, error=InvalidOpening, what="an opening document")


def note_with_pointer(note: bytes, pointer: str) -> bytes:
    """``note`` with the CID ``pointer`` (the trainer's opening document) in the clear in front of it."""
    raw = pointer.encode()
    if not _CID.match(pointer) or len(raw) > MAX_POINTER_BYTES:
        raise ValueError(f"not a CID of at most {MAX_POINTER_BYTES} characters: {pointer[:120]!r}")
    return POINTER_MAGIC + bytes([len(raw)]) + raw + note


def split_note(note: bytes) -> tuple[str | None, bytes]:
    """(the pointer, the trainer's own note) of a commit's note; (None, ``note``) for a note that carries no
    well-formed pointer (an older trainer's, or garbage: the aggregator then finds no opening for it)."""
    if len(note) < 3 or not note.startswith(POINTER_MAGIC):
        return None, note
    length = note[2]
    raw = note[3 : 3 + length]
    if not 0 < length <= MAX_POINTER_BYTES or len(raw) != length:
        return None, note
    try:
        pointer = raw.decode("ascii")
    except UnicodeDecodeError:
        return None, note
    if not _CID.match(pointer):
        return None, note
    return pointer, note[3 + length :]
