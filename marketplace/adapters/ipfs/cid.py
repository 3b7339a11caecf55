"""CID parsing and verification of fetched bytes against the CID that was asked for."""

from __future__ import annotations

from multiformats import CID

from marketplace.adapters.ipfs.errors import CidMismatch, InvalidCid, UnsupportedCid
from marketplace.adapters.ipfs.unixfs import (
    CIDV1_RAW_LEAVES,
    KUBO_DEFAULT,
    ImportProfile,
    import_bytes,
)

_MAX_CID_TEXT = 200
_SUPPORTED_CODECS = ("dag-pb", "raw")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_cid(value: str | bytes) -> CID:
    """Parse a CID given as text (any multibase, or base58 CIDv0) or as binary.

    Raises :class:`InvalidCid` with the reason when ``value`` is not a well-formed CID, and
    :class:`UnsupportedCid` for a well-formed CID whose hash or codec this project does not use.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidCid("invalid CID: empty string")
        if len(text) > _MAX_CID_TEXT:
            raise InvalidCid(f"invalid CID: {len(text)} characters is too long for a CID")
        if text != value:
            raise InvalidCid(f"invalid CID {_shown(value)}: surrounding whitespace")
    elif not isinstance(value, bytes | bytearray):
        raise InvalidCid(f"invalid CID: expected str or bytes, got {type(value).__name__}")
    try:
        cid = CID.decode(value if isinstance(value, str) else bytes(value))
    except Exception as exc:
        raise InvalidCid(f"invalid CID {_shown(value)}: {exc}") from exc
    if cid.hashfun.name != "sha2-256":
        raise UnsupportedCid(f"CID {cid} uses hash {cid.hashfun.name}; only sha2-256 is supported")
    if len(cid.raw_digest) != 32:
        raise InvalidCid(f"invalid CID {_shown(value)}: sha2-256 digest of {len(cid.raw_digest)} bytes")
    if cid.codec.name not in _SUPPORTED_CODECS:
        raise UnsupportedCid(f"CID {cid} has codec {cid.codec.name}; only dag-pb and raw are supported")
    return cid


def normalize_cid(value: str | bytes) -> str:
    """Canonical text of a CID: base58btc for CIDv0, base32 for CIDv1."""
    cid = parse_cid(value)
    return str(cid if cid.version == 0 else cid.set(base="base32"))


def compute_cid(data: bytes | bytearray | memoryview, profile: ImportProfile = KUBO_DEFAULT) -> str:
    """The CID ``ipfs add`` (with the options of ``profile``) gives to ``data``."""
    return normalize_cid(import_bytes(data, profile).cid)


def _candidate_profiles(cid: CID) -> list[ImportProfile]:
    if cid.version == 0:
        return [KUBO_DEFAULT]
    if cid.codec.name == "raw":
        return [CIDV1_RAW_LEAVES]  # a single raw block: the CID is the hash of the bytes
    return [CIDV1_RAW_LEAVES, ImportProfile(cid_version=1, raw_leaves=False)]


def verify_cid(data: bytes | bytearray | memoryview, cid: str | bytes) -> None:
    """Check that ``data`` is the file ``cid`` names; raise :class:`CidMismatch` otherwise.

    The CID is recomputed from the bytes with the import profiles a CID of that version and codec
    can come from (256 KiB chunks, balanced DAG, sha2-256); any other chunking cannot be checked
    and is reported as a mismatch naming the profiles tried.
    """
    parsed = parse_cid(cid)
    wanted = normalize_cid(bytes(parsed))
    tried = []
    for profile in _candidate_profiles(parsed):
        got = compute_cid(data, profile)
        if got == wanted:
            return
        tried.append(got)
    raise CidMismatch(
        f"content does not match CID {wanted}: {len(data)} bytes hash to {', '.join(tried)}"
        " (objects must be added with 256 KiB chunks and sha2-256)"
    )
