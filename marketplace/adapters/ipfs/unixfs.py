"""A pure-Python UnixFS file importer: the CID a Kubo node gives to some bytes.

``ipfs add`` cuts a file into fixed-size chunks, stores each chunk as a leaf block and links the
leaves in a balanced tree of dag-pb nodes (at most 174 links each). The root's CID depends only
on the bytes and on the import options, so the aggregator can recompute it and check that what
a node returned is what the CID commits to. Only the profiles below are supported; they match
Kubo's defaults (``--chunker=size-262144``, balanced layout, sha2-256) and were checked against
the embedded Kubo 0.22 node for CIDv0 (see ``tests/test_storage_cid.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from marketplace.adapters.ipfs.errors import InvalidCid

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
CHUNK_SIZE = 262_144
MAX_LINKS = 174
_UNIXFS_FILE = 2


@dataclass(frozen=True)
class ImportProfile:
    """The ``ipfs add`` options that decide a file's CID.

    ``cid_version=0, raw_leaves=False`` is Kubo's default and the only profile the embedded
    node produces; ``cid_version=1, raw_leaves=True`` is what ``ipfs add --cid-version=1`` does.
    """

    cid_version: int = 0
    raw_leaves: bool = False
    chunk_size: int = CHUNK_SIZE
    max_links: int = MAX_LINKS

    def as_add_params(self) -> dict[str, str]:
        """Query parameters that make Kubo's ``/api/v0/add`` use this profile."""
        return {
            "cid-version": str(self.cid_version),
            "raw-leaves": "true" if self.raw_leaves else "false",
            "chunker": f"size-{self.chunk_size}",
            "hash": "sha2-256",
        }


KUBO_DEFAULT = ImportProfile()
CIDV1_RAW_LEAVES = ImportProfile(cid_version=1, raw_leaves=True)


@dataclass(frozen=True)
class DagNode:
    """One node of the import DAG: its binary CID, cumulative DAG size and file bytes covered."""

    cid: bytes
    tsize: int
    filesize: int


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _field_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _multihash(block: bytes | memoryview) -> bytes:
    return bytes([SHA2_256, 32]) + hashlib.sha256(block).digest()


def _cid_bytes(version: int, codec: int, block: bytes | memoryview) -> bytes:
    mh = _multihash(block)
    if version == 0:
        return mh
    return b"\x01" + _varint(codec) + mh


def _leaf(chunk: memoryview, profile: ImportProfile, empty_file: bool = False) -> DagNode:
    if profile.raw_leaves:
        return DagNode(_cid_bytes(1, RAW, chunk), len(chunk), len(chunk))
    unixfs = _field_varint(1, _UNIXFS_FILE)
    if not empty_file:
        unixfs += _field_bytes(2, bytes(chunk))
    unixfs += _field_varint(3, len(chunk))
    block = _field_bytes(1, unixfs)
    return DagNode(_cid_bytes(profile.cid_version, DAG_PB, block), len(block), len(chunk))


def _parent(children: list[DagNode], profile: ImportProfile) -> DagNode:
    filesize = sum(c.filesize for c in children)
    unixfs = _field_varint(1, _UNIXFS_FILE) + _field_varint(3, filesize)
    unixfs += b"".join(_field_varint(4, c.filesize) for c in children)
    links = b"".join(
        _field_bytes(2, _field_bytes(1, c.cid) + _field_bytes(2, b"") + _field_varint(3, c.tsize)) for c in children
    )
    block = links + _field_bytes(1, unixfs)
    tsize = len(block) + sum(c.tsize for c in children)
    return DagNode(_cid_bytes(profile.cid_version, DAG_PB, block), tsize, filesize)


def import_bytes(data: bytes | bytearray | memoryview, profile: ImportProfile = KUBO_DEFAULT) -> DagNode:
    """Compute the root of the DAG ``ipfs add`` builds for ``data`` with ``profile``.

    Kubo's balanced layout fills each level with up to ``max_links`` children before adding a
    level, which is the same as grouping each level's nodes ``max_links`` at a time bottom-up.
    A file of one chunk is its own root (no parent node).
    """
    view = memoryview(data).cast("B")
    if len(view) == 0:
        return _leaf(view, profile, empty_file=True)
    level = [_leaf(view[i : i + profile.chunk_size], profile) for i in range(0, len(view), profile.chunk_size)]
    while len(level) > 1:
        level = [_parent(level[i : i + profile.max_links], profile) for i in range(0, len(level), profile.max_links)]
    return level[0]


# --- reading dag-pb blocks (used by the local node to check it holds a whole DAG) ------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise InvalidCid("truncated protobuf varint in dag-pb block")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise InvalidCid("protobuf varint too long in dag-pb block")


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise InvalidCid("truncated protobuf field in dag-pb block")
            yield field, wire, buf[pos : pos + length]
            pos += length
        else:
            raise InvalidCid(f"unexpected protobuf wire type {wire} in dag-pb block")


def dag_pb_links(block: bytes) -> list[bytes]:
    """Binary CIDs of the links of a dag-pb block."""
    links: list[bytes] = []
    for field, wire, value in _fields(block):
        if field == 2 and wire == 2 and isinstance(value, bytes):
            for lf, lw, lv in _fields(value):
                if lf == 1 and lw == 2 and isinstance(lv, bytes):
                    links.append(lv)
    return links


def unixfs_file_size(block: bytes) -> int | None:
    """The ``filesize`` a dag-pb block's UnixFS data declares (a file's root says the whole file's size),
    or None when the block carries no UnixFS data or no size."""
    for field, wire, value in _fields(block):
        if field == 1 and wire == 2 and isinstance(value, bytes):
            for uf, uw, uv in _fields(value):
                if uf == 3 and uw == 0 and isinstance(uv, int):
                    return uv
    return None
