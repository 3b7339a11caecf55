"""ezkl's circuit-specific verifier of a round circuit, split in two contracts under EIP-170's 24,576-byte limit.

ezkl generates, from a circuit's keys, a verifier with the verifying key compiled into its code
(``create_evm_verifier(reusable=False)``). It verifies a round for about 300k gas less than the reusable
verifier, which interprets the VKA at run time, but at about 30.5 KB it does not fit in one contract. Its
quotient evaluation (the circuit's gates, unrolled: about 19 KB) is a block of field arithmetic that reads
only the calldata and the verifier's fixed memory layout, so it moves, unchanged, into a helper:

- ``Halo2QuotientEval`` (the helper): an assembly-only fallback whose calldata is the verifier's own calldata
  (so every ``calldataload`` offset of the block stays right) followed by a snapshot of the verifier's memory
  below :attr:`SplitSources.snapshot` (the end of its fixed layout: challenges, Lagrange values, instance
  evaluation); it restores that memory, runs the block and returns the quotient evaluation, one word.
- ``Halo2Verifier`` (the entry point, ``verifyProof(bytes, uint256[])``): ezkl's code with the block replaced
  by a ``staticcall`` to the helper, an immutable address set by its constructor (``helper()`` reads it). It
  reverts unless the call succeeds and answers exactly one word.

The split is mechanical and checked (:func:`split_verifier`): it cuts ezkl 23's template at two markers and
refuses (:class:`UnrecognisedTemplate`) a source where they are not found exactly once, or whose block calls
anything but field arithmetic and loads (no verifier function, no ``success``), writes memory other than its
scratch word and its result, or reads memory at or above the snapshot. A template changed by an ezkl upgrade
therefore fails loudly instead of giving a wrong verifier; the reusable verifier (the adapter with
``roundVerifier == 0``) stays the fallback.

The generated source is cached beside the keys (``<keys>/dedicated/Halo2Verifier.sol``, made on first use: the
keys' fingerprint covers the ezkl version), the two parts and their compiled artifacts next to it
(:func:`split_artifacts`). What the market admin approves is both deployed codes: :func:`check_deployed`
compares them with the code compiled here from the keys.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from marketplace.adapters.chain.compile import CODE_SIZE_LIMIT, Artifact, compile_contracts
from marketplace.adapters.ezkl.keys import CircuitKeys
from marketplace.adapters.toolchain import install_svm_solc

#: The record's and the compiler's names of the two parts.
VERIFIER, HELPER = "Halo2Verifier", "Halo2QuotientEval"
#: Where the generated code's quotient evaluation starts and ends (ezkl 23's template, its spelling).
START = "            // Compute quotient evavluation\n"
END = "            // Compute quotient commitment\n"
#: The only Yul builtins the block may call: field arithmetic, calldata and memory.
BLOCK_CALLS = frozenset({"addmod", "mulmod", "sub", "calldataload", "mload", "mstore", "pop"})
#: The entry point's signature in ezkl 23's template (its body is one assembly block).
ENTRY = ") public returns (bool) {\n        assembly {"
CONTRACT = "contract Halo2Verifier {"
#: The BN254 scalar field modulus (the block's ``r``).
R = "21888242871839275222246405745257275088548364400416034343698204186575808495617"


class DedicatedVerifierError(RuntimeError):
    """ezkl's circuit-specific verifier of these keys cannot be used split (see the subclasses)."""


class UnrecognisedTemplate(DedicatedVerifierError):
    """The generated verifier does not have the shape the split expects (another ezkl template)."""


class DoesNotFit(DedicatedVerifierError):
    """A part of the split verifier is over EIP-170's 24,576-byte limit."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        over = ", ".join(f"{name} {size:,} B" for name, size in sizes.items() if size > CODE_SIZE_LIMIT)
        super().__init__(f"the split verifier does not fit in {CODE_SIZE_LIMIT:,} bytes per contract: {over}")


class UnexpectedRoundVerifier(DedicatedVerifierError):
    """A deployed round verifier or its helper is not the code compiled from the keys."""


@dataclass(frozen=True)
class SplitSources:
    """The two Solidity sources of a split verifier and the memory snapshot's size (bytes) the helper gets."""

    verifier: str
    helper: str
    snapshot: int


def _constants(source: str) -> dict[str, int]:
    """The ``uint256 internal constant NAME = 0x...;`` hex constants of a generated verifier."""
    return {m[1]: int(m[2], 16) for m in re.finditer(r"internal constant\s+(\w+)\s*=\s*(0x[0-9a-fA-F]+);", source)}


def _check_block(block: str, constants: dict[str, int], snapshot: int, result: str) -> None:
    """Raises :class:`UnrecognisedTemplate` unless ``block`` is field arithmetic over the calldata and the memory
    below ``snapshot``, writing only its scratch word (0x00) and ``result``."""
    if "success" in block or re.search(r"\b(return|revert|leave|function|staticcall|call|sstore)\b", block):
        raise UnrecognisedTemplate("the quotient evaluation uses the verifier's state, functions or control flow")
    called = set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", block))
    if not called <= BLOCK_CALLS:
        raise UnrecognisedTemplate(f"the quotient evaluation calls {sorted(called - BLOCK_CALLS)}")

    def address(operand: str) -> int:
        operand = operand.strip()
        if operand in constants:
            return constants[operand]
        if re.fullmatch(r"0x[0-9a-fA-F]+", operand):
            return int(operand, 16)
        raise UnrecognisedTemplate(f"the quotient evaluation addresses memory at {operand!r}")

    loads = re.findall(r"\bmload\(([^()]*)\)", block)
    stores = re.findall(r"\bmstore\(([^(),]*),", block)
    if len(loads) != block.count("mload(") or len(stores) != block.count("mstore("):
        raise UnrecognisedTemplate("the quotient evaluation addresses memory at a computed address")
    if any(address(a) >= snapshot for a in loads):
        raise UnrecognisedTemplate("the quotient evaluation reads memory outside the verifier's fixed layout")
    written = {address(a) for a in stores}
    if not written <= {0, constants[result]} or constants[result] not in written:
        raise UnrecognisedTemplate("the quotient evaluation writes memory other than its scratch and its result")


def split_verifier(source: str) -> SplitSources:
    """The split of ezkl's generated ``Halo2Verifier`` source (ezkl 23): the entry point calling the helper, and the
    helper. Raises :class:`UnrecognisedTemplate` for a source of another shape (see the module docstring)."""
    if source.count(START) != 1 or source.count(END) != 1 or source.index(START) > source.index(END):
        raise UnrecognisedTemplate("the quotient evaluation's markers are not found exactly once, in order")
    if source.count(CONTRACT) != 1 or source.count(ENTRY) != 1 or "function verifyProof(" not in source:
        raise UnrecognisedTemplate("the verifier's contract or entry point is not where the split expects it")
    constants = _constants(source)
    pointers = [v for name, v in constants.items() if name.endswith("_MPTR")]
    if "QUOTIENT_EVAL_MPTR" not in constants or not pointers:
        raise UnrecognisedTemplate("the verifier's memory layout constants are not found")
    snapshot = (max(pointers) + 0x20 + 0x1F) // 0x20 * 0x20  # the fixed layout, in whole words
    head, rest = source.split(START)
    block, tail = rest.split(END)
    _check_block(block, constants, snapshot, "QUOTIENT_EVAL_MPTR")
    call = f"""            // Quotient evaluation in {HELPER} (this calldata, then the memory below {snapshot:#x})
            {{
                let size := calldatasize()
                calldatacopy({snapshot:#x}, 0, size)
                mcopy(add({snapshot:#x}, size), 0, {snapshot:#x})
                if iszero(staticcall(gas(), helper, {snapshot:#x}, add(size, {snapshot:#x}), 0x00, 0x20)) {{
                    revert(0, 0)
                }}
                if iszero(eq(returndatasize(), 0x20)) {{ revert(0, 0) }}
                mstore(QUOTIENT_EVAL_MPTR, mload(0x00))
            }}

"""
    verifier = (head + call + END + tail).replace(
        CONTRACT,
        f"/// @dev ezkl's circuit-specific verifier, its quotient evaluation in {HELPER}\n"
        "/// (marketplace.adapters.ezkl.dedicated).\n"
        f"{CONTRACT}\n    address internal immutable HELPER;\n\n"
        "    constructor(address helper_) {\n        HELPER = helper_;\n    }\n\n"
        f"    /// @notice The {HELPER} this verifier calls.\n"
        "    function helper() external view returns (address) {\n        return HELPER;\n    }\n",
    )
    entry = ") public returns (bool) {\n        address helper = HELPER;\n        assembly {"
    verifier = verifier.replace(ENTRY, entry)
    declared = "\n".join(line for line in source.splitlines() if "internal constant" in line)
    helper = f"""// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

/// @dev The quotient evaluation of ezkl's generated Halo2Verifier, moved out unchanged
/// (marketplace.adapters.ezkl.dedicated): calldata is the verifier's calldata, then its memory below {snapshot:#x}.
contract {HELPER} {{
{declared}

    fallback() external {{
        assembly {{
            let r := {R}
            if lt(calldatasize(), {snapshot:#x}) {{ revert(0, 0) }}
            calldatacopy(0, sub(calldatasize(), {snapshot:#x}), {snapshot:#x})
{block}            mstore(0x00, mload(QUOTIENT_EVAL_MPTR))
            return(0x00, 0x20)
        }}
    }}
}}
"""
    return SplitSources(verifier, helper, snapshot)


def generated_source(keys: CircuitKeys) -> Path:
    """ezkl's circuit-specific verifier of ``keys`` (``<keys>/dedicated/Halo2Verifier.sol``), generated on first use
    (written to a temporary file and moved into place: a reader never sees half a file)."""
    folder = keys.root / "dedicated"
    sol = folder / "Halo2Verifier.sol"
    if sol.is_file():
        return sol
    folder.mkdir(exist_ok=True)
    install_svm_solc()  # ezkl's create_evm_verifier looks for solc under ~/.svm
    with tempfile.TemporaryDirectory(prefix=".gen-", dir=folder) as tmp:
        out = Path(tmp) / "Halo2Verifier.sol"

        async def generate() -> None:  # ezkl's futures need a running event loop when created
            await ezkl.create_evm_verifier(
                str(keys.vk), str(keys.settings), str(out), str(Path(tmp) / "abi.json"),
                srs_path=str(keys.srs), reusable=False,
            )  # fmt: skip

        import ezkl

        asyncio.run(generate())
        out.chmod(0o644)
        os.replace(out, sol)
    return sol


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class SplitVerifier:
    """The compiled parts of a circuit's split verifier: deploy ``helper``, then ``verifier`` with its address."""

    verifier: Artifact
    helper: Artifact
    snapshot: int

    @property
    def sizes(self) -> dict[str, int]:
        """Each part's runtime size in bytes."""
        return {VERIFIER: self.verifier.deployed_size, HELPER: self.helper.deployed_size}


def split_artifacts(keys: CircuitKeys) -> SplitVerifier:
    """The split verifier of ``keys``' circuit, compiled (sources and artifacts cached in ``<keys>/dedicated/``).
    Raises :class:`UnrecognisedTemplate` (see :func:`split_verifier`) or :class:`DoesNotFit` (a part over
    24,576 bytes)."""
    parts = split_verifier(generated_source(keys).read_text())
    folder = keys.root / "dedicated" / "split"
    folder.mkdir(parents=True, exist_ok=True)
    _write_if_changed(folder / f"{VERIFIER}.sol", parts.verifier)
    _write_if_changed(folder / f"{HELPER}.sol", parts.helper)
    compiled = compile_contracts([folder], out=keys.root / "dedicated" / "contracts.json")
    split = SplitVerifier(compiled[VERIFIER], compiled[HELPER], parts.snapshot)
    if max(split.sizes.values()) > CODE_SIZE_LIMIT:
        raise DoesNotFit(split.sizes)
    return split


def code_hash(code: bytes) -> str:
    """The keccak256 of deployed code, ``0x``-hex (what ``EXTCODEHASH`` answers)."""
    from eth_utils import keccak

    return "0x" + keccak(code).hex()


def check_deployed(split: SplitVerifier, verifier_code: bytes, helper_code: bytes) -> None:
    """Returns if ``verifier_code`` is the split verifier's code (but for its immutable helper address) and
    ``helper_code`` the helper's code, byte for byte (the helper at the address the verifier calls:
    ``helper()``). :class:`UnexpectedRoundVerifier` otherwise."""
    if not split.verifier.is_runtime_of(verifier_code):
        raise UnexpectedRoundVerifier("the round verifier's code is not the split verifier compiled from the keys")
    if helper_code != bytes.fromhex(split.helper.deployed_bytecode):
        raise UnexpectedRoundVerifier("the quotient helper's code is not the one compiled from the keys")
