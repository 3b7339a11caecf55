"""Signed commits handed to the aggregator, so that it commits every trainer in one ``commitBatch``.

A trainer's **signed commit** is its seal and note (:mod:`marketplace.protocol.seal`) with its EIP-712 signature
of ``Commit(uint256 projectId,uint256 round,bytes32 seal,bytes32 noteHash)`` (``noteHash = keccak256(note)``)
under the domain ``("TrainingMarket", "1", chainId, market)``, made with ``eth_account``'s ``sign_typed_data``.
``TrainingMarket.commitBatch`` recovers the signer and commits the seal for that trainer only, in that round of
that project of that market on that chain: a signed commit can commit nothing else, for nobody else.

It travels to the aggregator as a JSON **document** (:class:`SignedCommitDocument`) over an untrusted channel
(the aggregator's commit inbox, :mod:`marketplace.round.commit_inbox`). That is safe to publish: the seal hides
the update under the trainer's secret salt and the note is encrypted under the trainer's own key (its clear
pointer, if any, names an opening document nobody can fetch before the commit phase closes). Holding it lets
anyone commit it, which commits exactly the trainer's own seal; the only choice it gives the batcher is *when*,
hence the round's arrival order among the batch and the trainers' own commits.

Everything read here is untrusted: :meth:`SignedCommitDocument.parse` bounds the size, parses strictly (pydantic)
and raises :class:`InvalidSignedCommit`; :meth:`SignedCommit.signer` recovers who signed it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import is_checksum_address, keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketplace.protocol.opening import MAX_NOTE_BYTES
from marketplace.protocol.safejson import parse_document
from marketplace.protocol.seal import RoundAddress

#: Largest signed commit document read, in bytes (one with the longest note is about 900).
MAX_SIGNED_COMMIT_BYTES = 2048
KIND = "marketplace.signed-commit/1"
#: The EIP-712 domain's name and version (``TrainingMarket.commitBatch``).
DOMAIN_NAME, DOMAIN_VERSION = "TrainingMarket", "1"
COMMIT_TYPES = {
    "Commit": [
        {"name": "projectId", "type": "uint256"},
        {"name": "round", "type": "uint256"},
        {"name": "seal", "type": "bytes32"},
        {"name": "noteHash", "type": "bytes32"},
    ]
}

_BYTES32 = re.compile(r"^0x[0-9a-f]{64}$")
_SIGNATURE = re.compile(r"^0x[0-9a-f]{130}$")
_HEX = re.compile(r"^0x(?:[0-9a-f]{2})*$")


class InvalidSignedCommit(ValueError):
    """The bytes are not a signed commit document (too large, not JSON, wrong or missing fields)."""


def commit_message(where: RoundAddress, seal: bytes, note: bytes) -> SignableMessage:
    """The EIP-712 message a trainer signs to have ``seal`` (with ``note``) committed for it in round ``where``."""
    domain = {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": where.chain_id,
        "verifyingContract": to_checksum_address(where.market),
    }
    message = {"projectId": where.project_id, "round": where.round, "seal": seal, "noteHash": keccak(note)}
    return encode_typed_data(domain, COMMIT_TYPES, message)


@dataclass(frozen=True)
class SignedCommit:
    """One entry of ``commitBatch`` (``TrainingMarket.SignedCommit``): ``trainer``'s 32-byte ``seal`` and its
    ``note``, with the trainer's signature ``(v, r, s)`` of :func:`commit_message`."""

    trainer: str
    seal: bytes
    note: bytes
    v: int
    r: bytes
    s: bytes

    def __post_init__(self) -> None:
        if len(self.seal) != 32 or len(self.r) != 32 or len(self.s) != 32:
            raise ValueError("a seal and a signature's r and s are 32 bytes each")
        if not 0 <= self.v < 256:
            raise ValueError(f"a signature's v is one byte, not {self.v}")

    @property
    def signature(self) -> bytes:
        """The 65-byte signature ``r || s || v``."""
        return self.r + self.s + bytes([self.v])

    def signer(self, where: RoundAddress) -> str | None:
        """Who signed this commit for round ``where`` (checksummed), as ``commitBatch``'s ``ecrecover`` finds it;
        None for a signature that recovers no one there (``ecrecover`` answers the zero address). That includes a
        ``v`` other than 27 or 28, which eth_account would still recover (0 and 1, and 35 to 38 as EIP-155 values):
        such a twin of a trainer's signature, posted by anyone who saw it, would replace it in the commit inbox and
        never land."""
        if self.v not in (27, 28):
            return None
        try:
            return str(Account.recover_message(commit_message(where, self.seal, self.note), signature=self.signature))
        except Exception:  # eth_keys' BadSignature, ValueError: the contract recovers no one either
            return None

    def as_abi_tuple(self) -> tuple[str, bytes, bytes, int, bytes, bytes]:
        return (to_checksum_address(self.trainer), bytes(self.seal), bytes(self.note), self.v, self.r, self.s)


def sign_commit(account: LocalAccount, where: RoundAddress, seal: bytes, note: bytes) -> SignedCommit:
    """``account``'s signed commit of ``seal`` and ``note`` in round ``where`` (for anyone to send in a batch)."""
    if len(note) > MAX_NOTE_BYTES:
        raise ValueError(f"a note has at most {MAX_NOTE_BYTES} bytes, not {len(note)}")
    signed = account.sign_message(commit_message(where, seal, note))
    return SignedCommit(
        account.address, seal, note, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
    )


class SignedCommitDocument(BaseModel):
    """A signed commit and the round it is for, as handed over (field names are the JSON keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: str = Field(pattern=f"^{re.escape(KIND)}$")
    chain_id: int = Field(ge=0, lt=2**64)
    market: str = Field(max_length=42)
    project: int = Field(ge=0, lt=2**256)
    round: int = Field(ge=0, lt=2**16)
    trainer: str = Field(max_length=42)
    seal: str = Field(max_length=66)
    note: str = Field(max_length=2 + 2 * MAX_NOTE_BYTES)
    signature: str = Field(max_length=132)

    @field_validator("market", "trainer")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if not is_checksum_address(value):
            raise ValueError("not a checksummed address")
        return value

    @field_validator("seal")
    @classmethod
    def _check_seal(cls, value: str) -> str:
        if not _BYTES32.match(value) or value == "0x" + "00" * 32:
            raise ValueError("not 0x-prefixed lowercase hex of 32 bytes, not all zero")
        return value

    @field_validator("note")
    @classmethod
    def _check_note(cls, value: str) -> str:
        if not _HEX.match(value):
            raise ValueError("not 0x-prefixed lowercase hex")
        return value

    @field_validator("signature")
    @classmethod
    def _check_signature(cls, value: str) -> str:
        if not _SIGNATURE.match(value):
            raise ValueError("not 0x-prefixed lowercase hex of 65 bytes")
        return value

    @classmethod
    def of(cls, where: RoundAddress, signed: SignedCommit) -> SignedCommitDocument:
        """The document of ``signed``, a commit of round ``where``."""
        return cls(
            kind=KIND, chain_id=where.chain_id, market=to_checksum_address(where.market), project=where.project_id,
            round=where.round, trainer=to_checksum_address(signed.trainer), seal="0x" + signed.seal.hex(),
            note="0x" + signed.note.hex(), signature="0x" + signed.signature.hex(),
        )  # fmt: skip

    @property
    def where(self) -> RoundAddress:
        """The round this document says it is for."""
        return RoundAddress(self.chain_id, self.market, self.project, self.round)

    def signed_commit(self) -> SignedCommit:
        """The signed commit it carries (whoever signed it: see :meth:`SignedCommit.signer`)."""
        sig = bytes.fromhex(self.signature[2:])
        return SignedCommit(
            self.trainer, bytes.fromhex(self.seal[2:]), bytes.fromhex(self.note[2:]), sig[64], sig[:32], sig[32:64]
        )

    def to_bytes(self) -> bytes:
        """The document as sent: JSON with sorted keys."""
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: bytes) -> SignedCommitDocument:
        """The document in ``raw``; raises :class:`InvalidSignedCommit` saying what is wrong."""
        return parse_document(
            cls, raw, max_bytes=MAX_SIGNED_COMMIT_BYTES, error=InvalidSignedCommit, what="a signed commit"
        )
