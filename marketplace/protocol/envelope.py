"""Encrypted updates: in a project whose aggregator published an update key (``UpdateKeys`` on chain), a
trainer pins its update encrypted to that key, so that only the aggregator can read it (nobody else can run
gradient inversion on it); the commitment stays the Poseidon hash of the **plaintext** update's committed row,
and the seal's CID is the CID of the **envelope** (the bytes pinned).

The scheme is NaCl's ``crypto_box`` (X25519 key agreement, XSalsa20-Poly1305 authenticated encryption;
PyNaCl's :class:`~nacl.public.Box`) between a sender key of the trainer's and the aggregator's public key,
with a fresh random 24-byte nonce per envelope::

    envelope = MAGIC (8 bytes) || sender public key (32) || nonce (24) || ciphertext (plaintext + 16-byte tag)

- **Anonymous**: the sender key is not the trainer's identity: it is derived from a signature of the
  trainer's wallet over the round (:func:`sender_key`; RFC 6979 signatures are deterministic), so it differs
  per trainer, project and round, and says nothing about who sent the envelope (the trainer's reveal does).
  Because it is derived, the trainer can open its own envelope again after a restart (:func:`open_own`), to
  recompute the row it must publish if its update is rejected; a one-off random key (``SealedBox``) would not
  allow that. A nonce is never reused: every envelope draws a fresh one.
- **Authenticated**: a changed byte anywhere, an envelope made for another key or a truncated one does not
  open (:class:`EnvelopeError`); an opened envelope is still untrusted input (the aggregator checks the
  plaintext as it checks a clear update, including its commitment).
- **The aggregator's key** is per project, derived from a signature of the aggregator's wallet over the chain,
  market and project (:func:`update_key`): never stored, protected exactly as the wallet's key is (a keystore
  and its password), and the same every time it is derived, so a restarted aggregator decrypts the same
  updates. Whoever holds the wallet's key can derive it.

A safetensors file starts with its header length as a little-endian u64; :data:`MAGIC` read that way is
about 3.6e18, so no valid update starts with it and :func:`is_envelope` tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey

from marketplace.protocol.seal import RoundAddress

#: First 8 bytes of every envelope.
MAGIC = b"mkt-enc1"
_KEY_BYTES = 32
_NONCE_BYTES = Box.NONCE_SIZE
_TAG_BYTES = 16  # Poly1305
#: Bytes an envelope adds to its plaintext: magic, sender key, nonce and the Poly1305 tag.
OVERHEAD = len(MAGIC) + _KEY_BYTES + _NONCE_BYTES + _TAG_BYTES
_KEY_VERSION = 1


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this key opens: not an envelope, too short, made for another key,
    or changed after it was made."""


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

    def open(self, envelope: bytes) -> bytes:
        """The plaintext of ``envelope``; :class:`EnvelopeError` if it does not open with this key."""
        sender, nonce, ciphertext = _parse(envelope)
        return _decrypt(PrivateKey(self.secret), sender, nonce, ciphertext)


def is_envelope(data: bytes) -> bool:
    """Whether ``data`` claims to be an envelope (starts with :data:`MAGIC`); it may still fail to open."""
    return data[: len(MAGIC)] == MAGIC


def check_public_key(public_key: bytes) -> bytes:
    """``public_key`` if it is 32 bytes a trainer can encrypt to; :class:`InvalidUpdateKey` otherwise."""
    if len(public_key) != _KEY_BYTES or not any(public_key):
        raise InvalidUpdateKey(f"an update key is 32 non-zero bytes, got 0x{public_key.hex()}")
    try:
        Box(PrivateKey.generate(), PublicKey(public_key))
    except CryptoError:
        raise InvalidUpdateKey(f"0x{public_key.hex()} is of small order: nothing can be encrypted to it") from None
    return public_key


def seal_update(plaintext: bytes, recipient: bytes, sender_secret: bytes) -> bytes:
    """``plaintext`` encrypted to the public key ``recipient`` from the sender key ``sender_secret`` (see the
    module doc), with a fresh random nonce. :class:`InvalidUpdateKey` for a key nothing can be encrypted to."""
    sender = PrivateKey(sender_secret)
    box = Box(sender, PublicKey(check_public_key(recipient)))
    sealed = box.encrypt(plaintext)  # nonce || ciphertext, as the envelope lays them out
    return b"".join((MAGIC, bytes(sender.public_key), sealed))


def open_own(envelope: bytes, recipient: bytes, sender_secret: bytes) -> bytes:
    """The plaintext of an envelope this sender key made for ``recipient`` (the trainer reading its own
    update again); :class:`EnvelopeError` if it was not made with this sender key for this recipient."""
    sender, nonce, ciphertext = _parse(envelope)
    own = PrivateKey(sender_secret)
    if sender != bytes(own.public_key):
        raise EnvelopeError("the envelope was not made with this sender key")
    return _decrypt(own, check_public_key(recipient), nonce, ciphertext)


def _parse(envelope: bytes) -> tuple[bytes, bytes, bytes]:
    if not is_envelope(envelope):
        raise EnvelopeError("not an encrypted update (no envelope header)")
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
