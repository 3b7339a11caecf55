"""Sealed submissions (commit-reveal): the seal binds every field, salts are secret and stable, and a
commit note opens only with its trainer's key."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.protocol.seal import InvalidNote, RoundAddress, derive_salt, open_note, seal, seal_note

A, B = Account.from_key(b"\x01" * 32), Account.from_key(b"\x02" * 32)
WHERE = RoundAddress(31337, "0x" + "ab" * 20, 3, 1)
C = bytes(range(32))
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_seal_binds_every_field() -> None:
    salt = derive_salt(A, WHERE, C)
    base = seal(C, CID, A.address, WHERE, salt)
    changed = [
        seal(bytes(32), CID, A.address, WHERE, salt),
        seal(C, CID + "x", A.address, WHERE, salt),
        seal(C, CID, B.address, WHERE, salt),  # a copier's address: the original's seal does not open for it
        seal(C, CID, A.address, dataclasses.replace(WHERE, chain_id=1), salt),
        seal(C, CID, A.address, dataclasses.replace(WHERE, market="0x" + "cd" * 20), salt),
        seal(C, CID, A.address, dataclasses.replace(WHERE, project_id=4), salt),
        seal(C, CID, A.address, dataclasses.replace(WHERE, round=2), salt),
        seal(C, CID, A.address, WHERE, bytes(32)),
    ]
    assert len({base, *changed}) == len(changed) + 1


def test_salt_is_stable_per_trainer_round_and_commitment() -> None:
    assert derive_salt(A, WHERE, C) == derive_salt(A, WHERE, C)  # a restarted trainer finds it again
    assert derive_salt(B, WHERE, C) != derive_salt(A, WHERE, C)
    assert derive_salt(A, dataclasses.replace(WHERE, round=2), C) != derive_salt(A, WHERE, C)
    assert derive_salt(A, WHERE, bytes(32)) != derive_salt(A, WHERE, C)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.text(min_size=1, max_size=40))
def test_note_round_trip(commitment: bytes, cid: str) -> None:
    note = seal_note(A, WHERE, commitment, cid)
    assert open_note(A, WHERE, note) == (commitment, cid)
    assert (commitment not in note and cid.encode() not in note) or len(cid) < 4


def test_note_opens_only_with_its_key_and_round() -> None:
    note = seal_note(A, WHERE, C, CID)
    with pytest.raises(InvalidNote):
        open_note(B, WHERE, note)
    with pytest.raises(InvalidNote):
        open_note(A, dataclasses.replace(WHERE, round=2), note)
    with pytest.raises(InvalidNote):
        open_note(A, WHERE, note[:-1] + bytes([note[-1] ^ 1]))
    with pytest.raises(InvalidNote):
        open_note(A, WHERE, b"short")
    with pytest.raises(ValueError):
        seal_note(A, WHERE, C, "x" * 129)
