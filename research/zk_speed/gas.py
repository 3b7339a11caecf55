"""On-chain cost of a circuit variant's proofs (small sizes only): build its keys and VKA as
:func:`marketplace.adapters.ezkl.keys.setup` does, prove one round with the production prover, deploy
the reusable Halo2 verifier and an ``EzklRoundVerifier`` for it on a throwaway anvil, and report the
proof size, VKA words and the least gas with which ``verifyRound`` accepts (as ``bench/zk.py``).

    python -m research.zk_speed.gas tri 8x32 --cols 3 --srs /tmp/k15.srs
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
from marketplace.adapters.ezkl.keys import (
    CircuitKeys,
    compile_circuit,
    evm_artifacts,
    export_onnx,
    generate_keys,
    settings_for,
)
from marketplace.adapters.ezkl.prover import prove_rows
from marketplace.protocol.round_tag import round_tag
from marketplace.roles.verify import gas_to_succeed
from marketplace.rule.circuit import GramCircuit
from research.zk_speed.exact import VARIANTS, random_round


def measure(variant: str, n: int, k: int, cols: int, srs: Path | None) -> dict[str, object]:
    """Proof bytes, VKA words and verify gas of one proved round of ``variant``."""
    with tempfile.TemporaryDirectory(prefix="zk-gas-") as tmp:
        keys = CircuitKeys(n, k, Path(tmp))
        export_onnx(VARIANTS[variant](n, k), n, k + 2, keys.onnx, tag_width=GramCircuit.tag_width)
        settings_for(keys.onnx, keys.settings, cols=cols)
        compile_circuit(keys.onnx, keys.compiled, keys.settings)
        if srs is not None and srs.exists():
            generate_keys(keys, srs)
        else:
            generate_keys(keys)
            if srs is not None:
                shutil.copyfile(keys.srs, srs)
        evm_artifacts(keys)
        rows = random_round(np.random.default_rng(1), n, k, 2)
        tag = round_tag(31337, "0x" + "00" * 19 + "01", 1, 0)
        proof = prove_rows(keys, rows, tag)
        with AnvilNode() as node:
            chain = ChainClient(node.url, dev_accounts(1)[0])
            halo2 = deploy_halo2_verifier(chain, keys)
            adapter = deploy_round_verifier(chain, keys, halo2.address)
            call = adapter.functions.verifyRound(
                tag,
                [h.to_bytes(32, "big") for h in proof.hashes],
                proof.scores,
                proof.flags,
                b"\0" * 32,
                proof.proof,
            )
            valid = bool(chain.call(call))
            gas = gas_to_succeed(chain, call)
        return {
            "variant": variant, "n": n, "k": k, "cols": cols, "logrows": keys.logrows,
            "proof_bytes": len(proof.halo2_proof), "vka_words": len(keys.vka_words()),
            "valid_on_chain": valid, "verify_gas": gas,
        }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", choices=sorted(VARIANTS))
    ap.add_argument("size")
    ap.add_argument("--cols", type=int, default=2)
    ap.add_argument("--srs", type=Path, default=None)
    args = ap.parse_args()
    n, k = map(int, args.size.split("x"))
    if n >= 16:
        raise SystemExit("small circuits only (N < 16)")
    print(json.dumps(measure(args.variant, n, k, args.cols, args.srs)), flush=True)


if __name__ == "__main__":
    main()
