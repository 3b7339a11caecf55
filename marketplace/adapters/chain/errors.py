"""Exceptions raised by the chain client, and decoding of EVM revert data into them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from marketplace.adapters.chain.redact import redact_url

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)

PANIC_REASONS: dict[int, str] = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop() on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to a zero-initialised internal function",
}


class ChainError(Exception):
    """Base class of every error raised by :mod:`marketplace.adapters.chain`."""


class RpcUnavailable(ChainError):
    """The JSON-RPC endpoint did not answer (after retries)."""


class ChainIdMismatch(ChainError):
    """The RPC endpoint serves a different chain than the one configured. The message names the
    endpoint ``url`` without its credentials (:func:`~marketplace.adapters.chain.redact.redact_url`)."""

    def __init__(self, expected: int, actual: int, url: str = "") -> None:
        self.expected = expected
        self.actual = actual
        where = f" at {redact_url(url)}" if url else ""
        super().__init__(f"chain id mismatch{where}: expected {expected}, the RPC reports {actual}")


class NoAccount(ChainError):
    """A transaction was requested from a read-only client (no account configured)."""


class TransactionFailed(ChainError):
    """A mined transaction has status 0 and its revert reason could not be recovered."""

    def __init__(self, tx_hash: str, gas_used: int | None = None) -> None:
        self.tx_hash = tx_hash
        self.gas_used = gas_used
        super().__init__(f"transaction {tx_hash} reverted (gas used {gas_used})")


class ContractRevert(ChainError):
    """A call, gas estimation or transaction reverted; the revert data decoded.

    ``name`` is ``"Error"`` for ``require(..., "msg")`` (args ``{"message": ...}``), ``"Panic"``
    for compiler panics (args ``{"code": ..., "reason": ...}``), the custom error's name when its
    ABI is known, ``"Revert"`` for an empty revert and ``"UnknownError"`` otherwise.
    """

    def __init__(self, name: str, args: dict[str, Any], raw: bytes, tx_hash: str | None = None) -> None:
        self.name = name
        self.args_dict = args
        self.raw = raw
        self.tx_hash = tx_hash
        super().__init__(self._format())

    @property
    def selector(self) -> bytes:
        """The 4-byte error selector (empty for a bare revert)."""
        return self.raw[:4]

    @property
    def message(self) -> str | None:
        """The reason string for ``Error(string)`` reverts."""
        value = self.args_dict.get("message") if self.name == "Error" else None
        return value if isinstance(value, str) else None

    def _format(self) -> str:
        if self.name == "Error":
            return f"Error({self.args_dict.get('message')!r})"
        if self.name == "Panic":
            return f"Panic(0x{self.args_dict['code']:02x}: {self.args_dict['reason']})"
        if self.name == "UnknownError":
            return f"UnknownError(0x{self.raw.hex()})"
        inner = ", ".join(f"{k}={_show(v)}" for k, v in self.args_dict.items())
        return f"{self.name}({inner})"

    def __str__(self) -> str:
        return self._format()

    def __repr__(self) -> str:
        return f"ContractRevert({self._format()})"

    @property  # type: ignore[override]
    def args(self) -> dict[str, Any]:  # type: ignore[override]
        """The decoded error arguments by name (shadows ``BaseException.args``)."""
        return self.args_dict

    def __reduce__(self) -> tuple[Any, ...]:
        return (ContractRevert, (self.name, self.args_dict, self.raw, self.tx_hash))


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str):
        is_address = len(value) == 42 and value.startswith("0x")
        return value if is_address else repr(value)
    return str(value)


def _canonical_type(param: dict[str, Any]) -> str:
    """ABI type string, expanding tuples (structs) into ``(t1,t2,...)``."""
    typ: str = param["type"]
    if typ.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param.get("components", []))
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def _normalise(value: Any, param: dict[str, Any]) -> Any:
    typ: str = param["type"]
    if typ == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if typ.startswith("tuple") and isinstance(value, tuple) and typ == "tuple":
        comps = param.get("components", [])
        return {
            c.get("name") or f"arg{i}": _normalise(v, c) for i, (c, v) in enumerate(zip(comps, value, strict=False))
        }
    return value


class RevertDecoder:
    """Decode revert data using ``Error``/``Panic`` and the custom errors of registered ABIs."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]] = ()) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for abi in abis:
            self.register(abi)

    def register(self, abi: list[dict[str, Any]]) -> None:
        """Learn every ``type: error`` entry of ``abi`` (indexed by 4-byte selector)."""
        for entry in abi:
            if entry.get("type") != "error":
                continue
            signature = f"{entry['name']}({','.join(_canonical_type(p) for p in entry.get('inputs', []))})"
            self._errors[function_signature_to_4byte_selector(signature)] = entry

    def known(self) -> list[str]:
        """Names of the custom errors this decoder can decode."""
        return sorted({e["name"] for e in self._errors.values()})

    def decode(self, data: bytes | str | None, tx_hash: str | None = None) -> ContractRevert:
        """Turn raw revert bytes (or 0x-hex) into a :class:`ContractRevert`."""
        raw = _to_bytes(data)
        selector, body = raw[:4], raw[4:]
        if not raw:
            return ContractRevert("Revert", {}, raw, tx_hash)
        try:
            if selector == ERROR_STRING_SELECTOR:
                (message,) = abi_decode(["string"], body)
                return ContractRevert("Error", {"message": message}, raw, tx_hash)
            if selector == PANIC_SELECTOR:
                (code,) = abi_decode(["uint256"], body)
                reason = PANIC_REASONS.get(code, "unknown panic code")
                return ContractRevert("Panic", {"code": code, "reason": reason}, raw, tx_hash)
            entry = self._errors.get(selector)
            if entry is not None:
                inputs = entry.get("inputs", [])
                values = abi_decode([_canonical_type(p) for p in inputs], body)
                args = {
                    p.get("name") or f"arg{i}": _normalise(v, p)
                    for i, (p, v) in enumerate(zip(inputs, values, strict=True))
                }
                return ContractRevert(entry["name"], args, raw, tx_hash)
        except (DecodingError, ValueError, TypeError):
            pass
        return ContractRevert("UnknownError", {}, raw, tx_hash)


def _to_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    text = data.strip()
    if text.startswith("Reverted "):
        text = text.split(" ", 1)[1]
    text = text.removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def revert_data(exc: BaseException) -> bytes | None:
    """Extract raw revert bytes from a web3 ``ContractLogicError`` (and subclasses).

    web3 8 puts the node's ``error.data`` on ``exc.data``: for anvil always a 0x-hex string of
    the full revert payload (``0x`` for a bare ``revert()``); some nodes send a dict with a
    ``data`` key, or nothing (None).
    """
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str | bytes):
        return _to_bytes(data)
    return None
