"""ezkl's circuit-specific verifier split in two contracts under the 24 KB limit (issue 16, gas design study):
the generated ``Halo2Verifier.sol`` (``research.gas.dedicated``) is cut at its quotient evaluation, the unrolled
gate evaluation that is ~19 KB of its 30.5 KB. That block moves, unchanged, into ``Halo2QuotientEval``, an
assembly-only contract that gets the verifier's own calldata (so every ``calldataload`` offset of the block stays
right) followed by a snapshot of the verifier's memory below :data:`SNAPSHOT` (challenges, Lagrange values,
instance evaluation: everything the block ``mload``s), runs the block and returns the quotient evaluation. The
verifier calls it with ``staticcall`` where the block was.

Measures both runtime sizes and, on anvil, the gas of ``verifyProof`` of the saved proof as a transaction beside
the unsplit verifier; checks that one changed proof byte, instance or helper answer is refused.

    python -m research.gas.split_verifier 16x32 [--cache /tmp/hgas-zk]

Not imported by the package or the tests. In production since: :mod:`marketplace.adapters.ezkl.dedicated` (the
snapshot's size read from the generated layout, which ends above 0x2000 in the TopK circuits of 32 and 64 slots;
stricter checks of the block; the code checked against the keys at deployment).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.ezkl.keys import setup
from research.gas.dedicated import dedicated_sol, saved_proof, size_cli

HERE = Path(__file__).resolve().parent

#: Where the generated code's quotient evaluation starts and ends (ezkl 23's template, its spelling).
START, END = "            // Compute quotient evavluation\n", "            // Compute quotient commitment\n"
#: The verifier's fixed memory layout ends below this (its highest constant pointer is 0x1f60).
SNAPSHOT = 0x2000
R = "21888242871839275222246405745257275088548364400416034343698204186575808495617"


class SplitError(RuntimeError):
    """The generated verifier does not have the shape this split expects."""


def split(source: str) -> tuple[str, str]:
    """(verifier calling the helper, helper) from ezkl's generated ``Halo2Verifier`` source."""
    if source.count(START) != 1 or source.count(END) != 1:
        raise SplitError("the quotient evaluation's markers are not found exactly once")
    head, rest = source.split(START)
    block, tail = rest.split(END)
    if "success" in block or re.search(r"\b(ec_\w+|batch_invert|squeeze_\w+|read_ec_point)\(", block):
        raise SplitError("the quotient evaluation uses the verifier's functions or state")
    constants = "\n".join(line for line in source.splitlines() if "internal constant" in line)
    call = f"""            // Quotient evaluation in Halo2QuotientEval (this calldata, memory below {SNAPSHOT:#x})
            {{
                let size := calldatasize()
                calldatacopy({SNAPSHOT:#x}, 0, size)
                mcopy(add({SNAPSHOT:#x}, size), 0, {SNAPSHOT:#x})
                if iszero(staticcall(gas(), helper, {SNAPSHOT:#x}, add(size, {SNAPSHOT:#x}), 0x00, 0x20)) {{
                    revert(0, 0)
                }}
                if iszero(eq(returndatasize(), 0x20)) {{ revert(0, 0) }}
                mstore(QUOTIENT_EVAL_MPTR, mload(0x00))
            }}

"""
    verifier = head + call + END + tail
    verifier = verifier.replace(
        "contract Halo2Verifier {",
        "contract Halo2Verifier {\n    address internal immutable HELPER;\n\n"
        "    constructor(address helper) {\n        HELPER = helper;\n    }\n",
        1,
    )
    verifier = verifier.replace(") public returns (bool) {\n        assembly {", ") public returns (bool) {\n"
                                "        address helper = HELPER;\n        assembly {", 1)  # fmt: skip
    helper = f"""// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

/// @dev The quotient evaluation of ezkl's generated Halo2Verifier, moved out unchanged (research/gas).
contract Halo2QuotientEval {{
{constants}

    fallback() external {{
        assembly {{
            let r := {R}
            calldatacopy(0, sub(calldatasize(), {SNAPSHOT:#x}), {SNAPSHOT:#x})
{block}            mstore(0x00, mload(QUOTIENT_EVAL_MPTR))
            return(0x00, 0x20)
        }}
    }}
}}
"""
    if "function verifyProof" not in verifier or "address helper = HELPER;" not in verifier:
        raise SplitError("the verifier's entry point is not where the split expects it")
    return verifier, helper


def _size(artifacts: Any, name: str) -> int:
    return len(bytes.fromhex(artifacts[name].deployed_bytecode.removeprefix("0x")))


def _accepts(chain: ChainClient, call: Any) -> bool:
    try:
        raw = chain.w3.eth.call({"to": call.address, "data": call._encode_transaction_data(), "gas": 5_000_000})
    except Exception:  # a revert is a refusal
        return False
    return int.from_bytes(bytes(raw)[:32], "big") == 1


def measure(n: int, k: int, cache: Path) -> dict[str, Any]:
    saved, proof, instances = saved_proof(cache, n, k)
    keys = setup(n, k, root=cache)
    whole_dir = cache / f"dedicated-n{n}-k{k}"
    source = dedicated_sol(keys.root, whole_dir).read_text()
    verifier, helper = split(source)
    split_dir = cache / f"split-n{n}-k{k}"
    split_dir.mkdir(exist_ok=True)
    (split_dir / "Halo2Verifier.sol").write_text(verifier)
    (split_dir / "Halo2QuotientEval.sol").write_text(helper)
    parts = compile_contracts([split_dir], out=split_dir / "contracts.json")
    whole = compile_contracts([whole_dir], out=whole_dir / "contracts.json")
    out: dict[str, Any] = {
        "n": n, "k": k, "whole_bytes": _size(whole, "Halo2Verifier"),
        "verifier_bytes": _size(parts, "Halo2Verifier"), "helper_bytes": _size(parts, "Halo2QuotientEval"),
    }  # fmt: skip
    with AnvilNode(extra_args=("--disable-code-size-limit",)) as node:
        chain = ChainClient(node.url, dev_accounts(1)[0])
        w = chain.deploy(whole["Halo2Verifier"])
        h = chain.deploy(parts["Halo2QuotientEval"])
        s = chain.deploy(parts["Halo2Verifier"], h.address)
        bad_proof = bytearray(proof)
        bad_proof[200] ^= 1
        bad_instances = list(instances)
        bad_instances[n + 2] ^= 1  # a flag (after the hashes, h_ref and h_tag)
        for name, c in (("whole", w), ("split", s)):
            good = c.functions.verifyProof(proof, instances)
            out[name] = {
                "accepts": _accepts(chain, good),
                "refuses_changed_proof": not _accepts(chain, c.functions.verifyProof(bytes(bad_proof), instances)),
                "refuses_changed_instance": not _accepts(chain, c.functions.verifyProof(proof, bad_instances)),
                "gas_used": int(chain.transact(good, gas=5_000_000)["gasUsed"]),
            }
        # A helper that answers something else makes the split verifier refuse.
        liar = chain.deploy(parts["Halo2Verifier"], w.address)  # "helper" returning 1 for any call data
        out["split"]["refuses_wrong_helper"] = not _accepts(chain, liar.functions.verifyProof(proof, instances))
        out["adapter"] = adapters(chain, keys, saved, s.address)
    out["glue_gas"] = out["split"]["gas_used"] - out["whole"]["gas_used"]
    return out


def adapters(chain: ChainClient, keys: Any, saved: dict[str, Any], split_verifier: str) -> dict[str, Any]:
    """``verifyRound`` of the saved proof as a transaction through today's ``EzklRoundVerifier`` (reusable
    verifier, VKA) and through the adapter of ``dedicated_adapter.patch`` (the split circuit-specific verifier):
    the difference is what a finalization saves, the inputs and calldata being the same."""
    from eth_abi import encode

    from marketplace.adapters.chain.market import encode_rule_version
    from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
    from marketplace.adapters.ezkl.keys import row_keys_for
    from marketplace.protocol.commitment import zero_row_commitment
    from marketplace.rule import RULE_VERSION
    from research.gas.batched import prototype_artifacts

    halo2 = deploy_halo2_verifier(chain, keys)
    today = deploy_round_verifier(chain, keys, halo2.address)
    patched = prototype_artifacts(HERE / "dedicated_adapter.patch")["EzklRoundVerifier"]
    zero_row = int.from_bytes(zero_row_commitment(keys.k), "big")
    new = chain.deploy(
        patched, halo2.address, keys.vka_words(), row_keys_for(keys).vka_words(), keys.n, keys.k, zero_row,
        encode_rule_version(RULE_VERSION), "split", "split verifier prototype", split_verifier,
    )  # fmt: skip
    proof = encode(["bytes", "uint256"], [bytes.fromhex(saved["halo2_proof"]), saved["tag_hash"]])
    tag = bytes.fromhex(saved["tag"])
    result = {}
    for name, adapter in (("reusable", today), ("split", new)):
        call = adapter.functions.verifyRound(
            tag,
            [h.to_bytes(32, "big") for h in saved["hashes"]],
            saved["scores"],
            saved["flags"],
            b"\0" * 32,
            proof,
        )
        bad = adapter.functions.verifyRound(
            tag, [h.to_bytes(32, "big") for h in saved["hashes"]], saved["scores"], [not f for f in saved["flags"]],
            b"\0" * 32, proof,
        )  # fmt: skip
        result[name] = {
            "accepts": bool(chain.call(call)),
            "refuses_changed_flags": not chain.call(bad),
            "gas_used": int(chain.transact(call, gas=5_000_000)["gasUsed"]),
        }
    result["saved_per_round"] = result["reusable"]["gas_used"] - result["split"]["gas_used"]
    return result


def main() -> None:
    size_cli(__doc__.splitlines()[0], measure)


if __name__ == "__main__":
    main()
