"""Sealed submissions: a trainer commits to its update before anyone can see it, and reveals it only
after the commit phase has closed (commit-reveal, as in ENS registrations and sealed-bid auctions).

A submission is the update's CID and its row commitment (:mod:`marketplace.protocol.commitment`).
During the commit phase a trainer sends only its **seal**::

    seal = keccak256(abi.encode(commitment, keccak256(cid), trainer, chainId, market, projectId, round, salt))

which binds the submission to this trainer, chain, market, project and round and hides it behind a
secret 32-byte ``salt``. After the commit phase the trainer reveals ``(cid, commitment, salt)``; the
market recomputes the seal with ``msg.sender`` as the trainer. Consequences:

- Copying a pending commit (same seal, higher tip) gives the copier a seal it can never open: it was
  made for the original trainer's address. The copier is a trainer that committed and did not reveal.
- Copying a pending or mined reveal is useless: the commit phase is closed, and the copier's own seal
  (made before it could know the original) does not open to the original's values.
- Arrival order (which of two near-identical updates the rule keeps) is commit order, fixed before any
  update could be seen.

The salt is derived from a signature of the trainer's own key over the round and the commitment
(:func:`derive_salt`): deterministic (RFC 6979 signatures), so a restarted trainer finds it again, and
secret to the key holder. So that a restarted trainer also finds its CID and commitment, the commit
carries a **note**: ``(commitment, cid)`` encrypted under a key derived the same way
(:func:`seal_note` / :func:`open_note`); only the trainer can read it, and the market ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

#: Longest CID a note carries (the market refuses longer CIDs too).
MAX_NOTE_CID_BYTES = 128
_NOTE_VERSION = 1


class InvalidNote(ValueError):
    """A commit note that does not open with this trainer's key (not its own, or corrupted)."""


@dataclass(frozen=True)
class RoundAddress:
    """Where a submission belongs: the chain, the market contract, the project and the round."""

    chain_id: int
    market: str
    project_id: int
    round: int

    def message(self, purpose: str, commitment: bytes = b"") -> str:
        """The text a trainer signs to derive a per-round secret for ``purpose``."""
        market = to_checksum_address(self.market)
        text = f"marketplace {purpose} v{_NOTE_VERSION}: chain {self.chain_id}, market {market}, "
        text += f"project {self.project_id}, round {self.round}"
        return text + (f", commitment 0x{commitment.hex()}" if commitment else "")


def seal(commitment: bytes, cid: str, trainer: str, where: RoundAddress, salt: bytes) -> bytes:
    """The 32-byte seal the market stores at commit time (see the module doc; mirrors
    ``TrainingMarket.sealOf``)."""
    if len(commitment) != 32 or len(salt) != 32:
        raise ValueError("commitment and salt are 32 bytes each")
    encoded = abi_encode(
        ["bytes32", "bytes32", "address", "uint256", "address", "uint256", "uint256", "bytes32"],
        [
            commitment,
            keccak(text=cid),
            to_checksum_address(trainer),
            where.chain_id,
            to_checksum_address(where.market),
            where.project_id,
            where.round,
            salt,
        ],
    )
    return keccak(encoded)


def reference_seal(commitment: bytes, owner: str, where: RoundAddress, salt: bytes) -> bytes:
    """The seal of the project owner's reference row (``TrainingMarket.commitReference``): :func:`seal` with an
    empty CID (the row itself is revealed in calldata) and the owner in the trainer's place. No trainer's seal can
    be one: a trainer is never the owner, and its CID is never empty."""
    return seal(commitment, "", owner, where, salt)


def _secret(account: LocalAccount, text: str) -> bytes:
    return keccak(account.sign_message(encode_defunct(text=text)).signature)


def derive_salt(account: LocalAccount, where: RoundAddress, commitment: bytes) -> bytes:
    """This trainer's secret salt for ``commitment`` in this round (the same every time it is asked)."""
    return _secret(account, where.message("reveal salt", commitment))


def derive_reference_salt(account: LocalAccount, where: RoundAddress, commitment: bytes) -> bytes:
    """The project owner's secret salt for its reference ``commitment`` in this round (the same every time)."""
    return _secret(account, where.message("reference salt", commitment))


def _keystream(key: bytes, length: int) -> bytes:
    blocks = (keccak(key + i.to_bytes(4, "big")) for i in range((length + 31) // 32))
    return b"".join(blocks)[:length]


def seal_note(account: LocalAccount, where: RoundAddress, commitment: bytes, cid: str) -> bytes:
    """``(commitment, cid)`` encrypted for this trainer only, with a 4-byte check so a wrong key is noticed."""
    raw_cid = cid.encode()
    if len(commitment) != 32 or not 0 < len(raw_cid) <= MAX_NOTE_CID_BYTES:
        raise ValueError("a note holds a 32-byte commitment and a CID of 1 to 128 bytes")
    key = _secret(account, where.message("commit note"))
    plain = commitment + raw_cid
    check = keccak(key + plain)[:4]
    return bytes(a ^ b for a, b in zip(plain + check, _keystream(key, len(plain) + 4), strict=True))


def open_note(account: LocalAccount, where: RoundAddress, note: bytes) -> tuple[bytes, str]:
    """(commitment, cid) from this trainer's own note; :class:`InvalidNote` for any other bytes."""
    if not 32 + 1 + 4 <= len(note) <= 32 + MAX_NOTE_CID_BYTES + 4:
        raise InvalidNote(f"a note is 37 to {32 + MAX_NOTE_CID_BYTES + 4} bytes, got {len(note)}")
    key = _secret(account, where.message("commit note"))
    data = bytes(a ^ b for a, b in zip(note, _keystream(key, len(note)), strict=True))
    plain, check = data[:-4], data[-4:]
    if keccak(key + plain)[:4] != check:
        raise InvalidNote("the note does not open with this trainer's key")
    try:
        cid = plain[32:].decode()
    except UnicodeDecodeError:
        raise InvalidNote("the note's CID is not text") from None
    return plain[:32], cid
