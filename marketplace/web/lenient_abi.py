"""Reading chain data that anyone wrote: ABI strings that are not UTF-8 decode with U+FFFD instead of
raising.

A Solidity ``string`` is any bytes. ``createProject`` and ``submitUpdate`` check a CID's length, not its
encoding, so an owner, a trainer or an aggregator can put bytes such as ``0xff`` into a model name or a
CID. web3 decodes event and return values with a strict UTF-8 codec, and one such event then raised
``UnicodeDecodeError`` on every sync of the event index: every page and API call failed, for every
project. :func:`lenient_contract` gives the same contract (address, ABI, provider) with a codec whose
``string`` decoder replaces invalid bytes; such a CID is then shown with U+FFFD and is refused as a CID
by whoever tries to fetch it (:class:`~marketplace.adapters.ipfs.errors.InvalidCid`).

Every other type decodes exactly as before; encoding uses eth-abi's standard encoders, which give the
same bytes for the well-formed values the web app sends (it builds calldata only from checked input).
"""

from __future__ import annotations

from eth_abi import decoding, encoding
from eth_abi.codec import ABICodec
from eth_abi.registry import ABIRegistry, BaseEquals
from eth_abi.registry import registry as default_registry
from web3 import Web3
from web3.contract import Contract

#: What an invalid UTF-8 sequence in a decoded string becomes.
REPLACEMENT = "\ufffd"


class LenientStringDecoder(decoding.StringDecoder):  # type: ignore[misc]
    """eth-abi's ``string`` decoder with ``errors="replace"``."""

    def __init__(self, handle_string_errors: str = "replace") -> None:
        super().__init__(handle_string_errors=handle_string_errors)


def lenient_registry() -> ABIRegistry:
    """eth-abi's default registry with :class:`LenientStringDecoder` for ``string``."""
    registry = default_registry.copy()
    registry.unregister("string")
    registry.register_encoder(BaseEquals("string"), encoding.TextStringEncoder, label="string")
    registry.register_decoder(BaseEquals("string"), LenientStringDecoder, label="string")
    return registry


_CODEC = ABICodec(lenient_registry())


def lenient_contract(contract: Contract) -> Contract:
    """``contract`` at the same address with the same ABI, talking to the same provider (so through the
    same retries), whose calls and logs decode non-UTF-8 strings with :data:`REPLACEMENT`."""
    w3 = Web3(contract.w3.provider)
    w3.codec = _CODEC
    return w3.eth.contract(address=contract.address, abi=contract.abi)
