"""Reading chain data that anyone wrote: ABI strings that are not UTF-8 decode with U+FFFD instead of
raising.

A Solidity ``string`` is any bytes. ``createProject`` and ``submitUpdate`` check a CID's length, not its
encoding, so an owner, a trainer or an aggregator can put bytes such as ``0xff`` into a model name or a
CID. web3 decodes event and return values with a strict UTF-8 codec: one such string raised
``UnicodeDecodeError`` out of every read that met it (the aggregator's ``collect_round`` and so its daemon,
``get_project`` and ``join`` for that project, every sync of the web app's event index).

:func:`lenient_codec` is web3's own codec with one change: its ``string`` decoder replaces invalid bytes
with :data:`REPLACEMENT`. Every :class:`~marketplace.adapters.chain.client.ChainClient` uses it, so every
contract, call and log it decodes is lenient; such a CID then reads as text with U+FFFD, which is not a
CID: whoever fetches it gets :class:`~marketplace.adapters.ipfs.errors.InvalidCid`, an ordinary rejection.
:func:`lenient_contract` gives a contract object made elsewhere the same codec.

Every other type decodes, and every type encodes, exactly as web3 does by default (strict bytes and
address checks: a 31-byte ``bytes32`` or a mis-checksummed address is still refused before sending).
"""

from __future__ import annotations

from functools import cache

from eth_abi import decoding, encoding
from eth_abi.codec import ABICodec
from eth_abi.registry import ABIRegistry, BaseEquals
from web3 import Web3
from web3._utils.abi import build_strict_registry  # the registry ``Web3()`` builds its codec from
from web3.contract import Contract

#: What an invalid UTF-8 sequence in a decoded string becomes.
REPLACEMENT = "\ufffd"


class LenientStringDecoder(decoding.StringDecoder):  # type: ignore[misc]
    """eth-abi's ``string`` decoder with ``errors="replace"``."""

    def __init__(self, handle_string_errors: str = "replace") -> None:
        super().__init__(handle_string_errors=handle_string_errors)


def lenient_registry() -> ABIRegistry:
    """web3's default (strict) registry with :class:`LenientStringDecoder` for ``string``."""
    registry = build_strict_registry()
    registry.unregister("string")
    registry.register(BaseEquals("string"), encoding.TextStringEncoder, LenientStringDecoder, label="string")
    return registry


@cache
def lenient_codec() -> ABICodec:
    """The codec of :func:`lenient_registry` (one per process; it holds no per-call state)."""
    return ABICodec(lenient_registry())


def lenient_contract(contract: Contract) -> Contract:
    """``contract`` at the same address with the same ABI, talking to the same provider (so through the
    same retries), whose calls and logs decode non-UTF-8 strings with :data:`REPLACEMENT`."""
    w3 = Web3(contract.w3.provider)
    w3.codec = lenient_codec()
    return w3.eth.contract(address=contract.address, abi=contract.abi)
