"""Encrypted updates: in a project whose aggregator published an update key (``UpdateKeys`` on chain), a
trainer pins its update encrypted to that key, so that only the aggregator can read it (nobody else can run
gradient inversion on it); the commitment stays the Poseidon hash of the **plaintext** update's committed row,
and the seal's CID is the CID of the **envelope** (the bytes pinned).

The scheme is NaCl's ``crypto_box`` (X25519 key agreement, XSalsa20-Poly1305 authenticated encryption;
PyNaCl's :class:`~nacl.public.Box`) between a sender key of the trainer's and the aggregator's public key,
with a fresh random 24-byte nonce per envelope::

    envelope  = MAGIC (8 bytes) || sender public key (32) || nonce (24) || ciphertext (plaintext + 16-byte tag)
    plaintext = origin (136 bytes) || update (safetensors)
    origin    = chain id (32, big-endian) || market (20) || project id (32) || round (32) || trainer (20)

- **Bound to its submission**: the origin names the one submission the envelope is for (:class:`UpdateOrigin`).
  It is inside the box, so it is authenticated with the update: whoever pins a copy of someone else's envelope
  (public on IPFS once revealed), or its own envelope again in a later round, cannot change it, and the
  aggregator, which opens an envelope only for the submission it was revealed by (:meth:`UpdateKey.open`),
  refuses it (:class:`EnvelopeOriginMismatch`) instead of scoring it as that trainer's update of that round.
- **Anonymous**: the sender key is not the trainer's identity: it is derived from a signature of the
  trainer's wallet over the round (:func:`sender_key`; RFC 6979 signatures are deterministic), so it differs
  per trainer, project and round, and says nothing about who sent the envelope to anyone but the aggregator
  (the trainer's reveal does). Because it is derived, the trainer can open its own envelope again after a
  restart (:func:`open_own`), to recompute the row it must publish if its update is rejected; a one-off random
  key (``SealedBox``) would not allow that. A nonce is never reused: every envelope draws a fresh one.
- **Authenticated**: a changed byte anywhere, an envelope made for another key or a truncated one does not
  open (:class:`EnvelopeError`); an opened envelope is still untrusted input (the aggregator checks the
  plaintext as it checks a clear update, including its commitment).
- **Versioned**: the last byte of :data:`MAGIC` is the format's version. Version 1 (before the origin) is
  refused with :class:`UnsupportedEnvelopeVersion`, as any other version this code does not write.
- **The aggregator's key** is per project, derived from a signature of the aggregator's wallet over the chain,
  market and project (:func:`update_key`): never stored, protected exactly as the wallet's key is (a keystore
  and its password), and the same every time it is derived, so a restarted aggregator decrypts the same
  updates. Whoever holds the wallet's key can derive it.

A safetensors file starts with its header length as a little-endian u64; :data:`MAGIC` (of any version byte)
read that way is above 2.7e16, so no valid update starts with it and :func:`is_envelope` tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey

from marketplace.protocol.seal import RoundAddress

#: What every envelope starts with, whatever its version.
_PREFIX = b"mkt-enc"
#: The version of the envelopes this code writes and opens (the last byte of :data:`MAGIC`).
VERSION = 2
#: First 8 bytes of every envelope this code writes: :data:`_PREFIX` and the version byte.
MAGIC = _PREFIX + str(VERSION).encode()
_KEY_BYTES = 32
_NONCE_BYTES = Box.NONCE_SIZE
_TAG_BYTES = 16  # Poly1305
_UINT_BYTES, _ADDRESS_BYTES = 32, 20
#: Bytes of an encoded :class:`UpdateOrigin`.
ORIGIN_BYTES = 3 * _UINT_BYTES + 2 * _ADDRESS_BYTES
#: Bytes an envelope adds to its update: magic, sender key, nonce, the Poly1305 tag and the origin.
OVERHEAD = len(MAGIC) + _KEY_BYTES + _NONCE_BYTES + _TAG_BYTES + ORIGIN_BYTES
_KEY_VERSION = 1


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this key opens: not an envelope, too short, made for another key,
    or changed after it was made."""


class UnsupportedEnvelopeVersion(EnvelopeError):
    """An envelope of a format version this code does not open (version 1: made before envelopes named
    their submission)."""


class EnvelopeOriginMismatch(EnvelopeError):
    """An envelope that opens, but was sealed for another submission (another trainer, round, project, market
    or chain) than the one that revealed it: a replayed copy."""


@dataclass(frozen=True)
class UpdateOrigin:
    """The one submission an envelope is for: trainer ``trainer``'s update of ``where``'s round."""

    where: RoundAddress
    trainer: str

    def encode(self) -> bytes:
        """The :data:`ORIGIN_BYTES` bytes sealed in front of the update (see the module doc)."""
        w = self.where
        return b"".join(
            (
                w.chain_id.to_bytes(_UINT_BYTES, "big"),
                bytes.fromhex(to_checksum_address(w.market)[2:]),
                w.project_id.to_bytes(_UINT_BYTES, "big"),
                w.round.to_bytes(_UINT_BYTES, "big"),
                bytes.fromhex(to_checksum_address(self.trainer)[2:]),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> UpdateOrigin:
        """Inverse of :meth:`encode` for any :data:`ORIGIN_BYTES` bytes."""
        if len(data) != ORIGIN_BYTES:
            raise ValueError(f"an origin is {ORIGIN_BYTES} bytes, got {len(data)}")
        fields, at = [], 0
        for size in (_UINT_BYTES, _ADDRESS_BYTES, _UINT_BYTES, _UINT_BYTES, _ADDRESS_BYTES):
            fields.append(data[at : at + size])
            at += size
        chain, market, project, round_, trainer = fields
        where = RoundAddress(
            int.from_bytes(chain, "big"),
            to_checksum_address(market),
            int.from_bytes(project, "big"),
            int.from_bytes(round_, "big"),
        )
        return cls(where, to_checksum_address(trainer))

    def __str__(self) -> str:
        w = self.where
        return (
            f"{to_checksum_address(self.trainer)}'s update of round {w.round} of project {w.project_id} "
            f"(chain {w.chain_id}, market {to_checksum_address(w.market)})"
        )


class InvalidUpdateKey(ValueError):
    """32 bytes that cannot serve as an X25519 public key to encrypt to: zero, or a point of small order
    (key agreement with it gives the all-zero secret, which libsodium refuses)."""


@dataclass(frozen=True)
class UpdateKey:
    """A project's update key pair (the aggregator's): ``public`` is what ``UpdateKeys`` publishes."""

    secret: bytes  # 32 bytes, X25519 scalar

    def __post_init__(self) -> None:
        if len(self.secret) != _KEY_BYTES:
            raise ValueError(f"an update key's secret is 32 bytes, got {len(self.secret)}")

    def __repr__(self) -> str:  # never show the secret
        return f"UpdateKey(public=0x{self.public.hex()})"

    @property
    def public(self) -> bytes:
        """The 32-byte X25519 public key."""
        return bytes(PrivateKey(self.secret).public_key)

    def open(self, envelope: bytes, origin: UpdateOrigin) -> bytes:
        """The update ``envelope`` holds for the submission ``origin`` (the one that revealed it).
        :class:`EnvelopeError` if it does not open with this key (:class:`UnsupportedEnvelopeVersion` for an
        older format), :class:`EnvelopeOriginMismatch` if it was sealed for another submission."""
        sender, nonce, ciphertext = _parse(envelope)
        return _checked(_decrypt(PrivateKey(self.secret), sender, nonce, ciphertext), origin)


def is_envelope(data: bytes) -> bool:
    """Whether ``data`` claims to be an envelope of any version (starts with ``mkt-enc`` and a version byte);
    it may still fail to open."""
    return len(data) >= len(MAGIC) and data[: len(_PREFIX)] == _PREFIX


def check_form(envelope: bytes) -> None:
    """What anyone can check of an envelope without a key: this code's version and at least
    :data:`OVERHEAD` bytes. :class:`UnsupportedEnvelopeVersion` / :class:`EnvelopeError` otherwise."""
    _parse(envelope)


def check_public_key(public_key: bytes) -> bytes:
    """``public_key`` if it is 32 bytes a trainer can encrypt to; :class:`InvalidUpdateKey` otherwise."""
    if len(public_key) != _KEY_BYTES or not any(public_key):
        raise InvalidUpdateKey(f"an update key is 32 non-zero bytes, got 0x{public_key.hex()}")
    try:
        Box(PrivateKey.generate(), PublicKey(public_key))
    except CryptoError:
        raise InvalidUpdateKey(f"0x{public_key.hex()} is of small order: nothing can be encrypted to it") from None
    return public_key


def seal_update(update: bytes, recipient: bytes, sender_secret: bytes, origin: UpdateOrigin) -> bytes:
    """``update`` sealed for the submission ``origin`` (the origin first, then the update, see the module doc),
    encrypted to the public key ``recipient`` from the sender key ``sender_secret`` with a fresh random nonce.
    :class:`InvalidUpdateKey` for a key nothing can be encrypted to."""
    sender = PrivateKey(sender_secret)
    box = Box(sender, PublicKey(check_public_key(recipient)))
    sealed = box.encrypt(origin.encode() + update)  # nonce || ciphertext, as the envelope lays them out
    return b"".join((MAGIC, bytes(sender.public_key), sealed))


def open_own(envelope: bytes, recipient: bytes, sender_secret: bytes, origin: UpdateOrigin) -> bytes:
    """The update of an envelope this sender key made for ``recipient`` and the submission ``origin`` (the
    trainer reading its own update again); :class:`EnvelopeError` if it was not made with this sender key for
    this recipient, :class:`EnvelopeOriginMismatch` if it was sealed for another submission."""
    sender, nonce, ciphertext = _parse(envelope)
    own = PrivateKey(sender_secret)
    if sender != bytes(own.public_key):
        raise EnvelopeError("the envelope was not made with this sender key")
    return _checked(_decrypt(own, check_public_key(recipient), nonce, ciphertext), origin)


def _checked(plaintext: bytes, origin: UpdateOrigin) -> bytes:
    """The update of an opened ``plaintext`` whose origin is ``origin``; :class:`EnvelopeOriginMismatch` if not."""
    sealed_for = plaintext[:ORIGIN_BYTES]
    if sealed_for != origin.encode():
        raise EnvelopeOriginMismatch(
            f"the envelope was sealed for {UpdateOrigin.decode(sealed_for)}, not for {origin}: a replayed copy"
        )
    return plaintext[ORIGIN_BYTES:]


def _parse(envelope: bytes) -> tuple[bytes, bytes, bytes]:
    if not is_envelope(envelope):
        raise EnvelopeError("not an encrypted update (no envelope header)")
    if envelope[: len(MAGIC)] != MAGIC:
        version = envelope[len(_PREFIX) : len(MAGIC)]
        raise UnsupportedEnvelopeVersion(
            f"an envelope of version {version.decode('ascii', 'replace')!r} (this code opens version {VERSION} "
            "only: version 1 did not name its trainer and round)"
        )
    if len(envelope) < OVERHEAD:
        raise EnvelopeError(f"an envelope has at least {OVERHEAD} bytes, got {len(envelope)}")
    start = len(MAGIC)
    sender = envelope[start : start + _KEY_BYTES]
    nonce = envelope[start + _KEY_BYTES : start + _KEY_BYTES + _NONCE_BYTES]
    return sender, nonce, envelope[start + _KEY_BYTES + _NONCE_BYTES :]


def _decrypt(own: PrivateKey, other: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    try:
        return Box(own, PublicKey(other)).decrypt(ciphertext, nonce)
    except CryptoError:
        raise EnvelopeError("the envelope does not open with this key (made for another key, or changed)") from None


def _derived(account: LocalAccount, text: str) -> bytes:
    """32 secret bytes only ``account``'s key can derive from ``text`` (the same every time)."""
    return keccak(account.sign_message(encode_defunct(text=text)).signature)


def update_key(account: LocalAccount, chain_id: int, market: str, project_id: int) -> UpdateKey:
    """The update key pair ``account`` (the project's aggregator) publishes for ``project_id`` of ``market``:
    derived from its wallet (see the module doc), a different one per chain, market and project."""
    text = (
        f"marketplace update key v{_KEY_VERSION}: chain {chain_id}, market {to_checksum_address(market)}, "
        f"project {project_id}"
    )
    return UpdateKey(_derived(account, text))


def sender_key(account: LocalAccount, where: RoundAddress) -> bytes:
    """The secret sender key a trainer encrypts its update of ``where``'s round with (derived from its wallet:
    the same after a restart, another for every project and round)."""
    return _derived(account, where.message("update envelope"))
