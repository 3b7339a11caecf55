"""CIDs computed in pure Python equal the real Kubo node's; malformed and mismatching CIDs are rejected."""

# ruff: noqa: F811  (the fixtures imported from tests.ipfs_fixtures are used as test arguments)

from __future__ import annotations

import os

import pytest
from multiformats import CID, multihash

from marketplace.adapters.ipfs.cid import compute_cid, normalize_cid, parse_cid, verify_cid
from marketplace.adapters.ipfs.errors import CidMismatch, InvalidCid, UnsupportedCid
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.unixfs import CHUNK_SIZE, CIDV1_RAW_LEAVES, MAX_LINKS, import_bytes
from tests.ipfs_fixtures import ipfs, ipfs_node  # noqa: F401

EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"  # Kubo's well-known empty file
EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7])
def test_python_cid_equals_node_cid(ipfs: IpfsClient, size: int) -> None:
    data = os.urandom(size)
    cid = ipfs.add(data)
    assert cid == compute_cid(data)
    assert ipfs.cat(cid) == data
    verify_cid(data, cid)


def test_python_cid_equals_node_cid_two_level_tree(ipfs: IpfsClient) -> None:
    """175 chunks need a second level of dag-pb nodes (174 links at most per node)."""
    data = os.urandom(MAX_LINKS * CHUNK_SIZE + 5)
    cid = ipfs.add(data)
    assert cid == compute_cid(data)
    verify_cid(ipfs.cat(cid), cid)


def test_known_vectors() -> None:
    assert compute_cid(b"") == EMPTY_V0
    assert compute_cid(b"", CIDV1_RAW_LEAVES) == EMPTY_RAW
    assert import_bytes(b"hello world").tsize == 19  # Kubo's "Size" for this file


def test_verify_rejects_other_bytes(ipfs: IpfsClient) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 10)
    cid = ipfs.add(data)
    tampered = bytearray(data)
    tampered[CHUNK_SIZE + 3] ^= 1
    with pytest.raises(CidMismatch, match=f"does not match CID {cid}"):
        verify_cid(bytes(tampered), cid)
    with pytest.raises(CidMismatch):
        verify_cid(data[:-1], cid)
    with pytest.raises(CidMismatch):
        verify_cid(b"something else", EMPTY_V0)


def test_verify_cidv1_raw_and_rejects_mismatch() -> None:
    data = b"update bytes"
    cid = str(CID("base32", 1, "raw", multihash.digest(data, "sha2-256")))
    verify_cid(data, cid)
    with pytest.raises(CidMismatch):
        verify_cid(data + b"!", cid)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "Qm",
        "hello",
        EMPTY_V0[:-1] + "0",  # '0' is not a base58 digit
        EMPTY_V0[:20],  # truncated
        "bafy" + "!" * 40,
        " " + EMPTY_V0,
        "Q" * 500,
        b"\x01\x02\x03",
    ],
)
def test_malformed_cids_raise_invalid_cid(bad: str | bytes) -> None:
    with pytest.raises(InvalidCid, match="invalid CID"):
        parse_cid(bad)


def test_non_string_cid_is_invalid() -> None:
    with pytest.raises(InvalidCid, match="expected str or bytes"):
        parse_cid(123)  # type: ignore[arg-type]


def test_unsupported_hash_and_codec() -> None:
    blake = str(CID("base32", 1, "raw", multihash.digest(b"x", "blake2b-256")))
    with pytest.raises(UnsupportedCid, match="only sha2-256"):
        parse_cid(blake)
    cbor = str(CID("base32", 1, "dag-cbor", multihash.digest(b"x", "sha2-256")))
    with pytest.raises(UnsupportedCid, match="codec dag-cbor"):
        parse_cid(cbor)


def test_normalize_cid_accepts_binary_and_other_bases() -> None:
    cid = CID.decode(EMPTY_RAW)
    assert normalize_cid(bytes(cid)) == EMPTY_RAW
    assert normalize_cid(str(cid.set(base="base58btc"))) == EMPTY_RAW
    assert normalize_cid(EMPTY_V0) == EMPTY_V0


def test_invalid_cid_is_rejected_by_client_before_any_request(ipfs: IpfsClient) -> None:
    with pytest.raises(InvalidCid):
        ipfs.cat("not-a-cid")
