"""A circuit-specific (non-reusable) ezkl verifier beside the reusable one (issue 16, gas design study): for
the keys and the proof that :mod:`research.gas.zk_trace` saved, generate ezkl's dedicated ``Halo2Verifier``
(the verifying key compiled into its code), deploy both on anvil and verify the same proof with each.

Reports each verifier's runtime size and the gas of ``verifyProof`` as a transaction (21,000 and its
calldata included; the reusable one also gets the VKA words as an argument, as ``EzklRoundVerifier`` passes
them), and the same split of precompiles and computation as ``zk_trace``.

    python -m research.gas.dedicated 16x32 [--cache /tmp/hgas-zk]

Not imported by the package or the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ezkl

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.ezkl.keys import setup
from marketplace.adapters.ezkl.prover import round_instances
from marketplace.adapters.toolchain import install_svm_solc
from research.gas.zk_trace import _trace, split


def dedicated_sol(keys_root: Path, out: Path) -> Path:
    """ezkl's non-reusable verifier for the keys in ``keys_root``, written under ``out``."""
    install_svm_solc()
    out.mkdir(parents=True, exist_ok=True)
    sol = out / "Halo2Verifier.sol"
    if not sol.exists():

        async def generate() -> None:
            await ezkl.create_evm_verifier(
                str(keys_root / "vk.key"), str(keys_root / "settings.json"), str(sol), str(out / "abi.json"),
                srs_path=str(keys_root / "kzg.srs"), reusable=False,
            )  # fmt: skip

        asyncio.run(generate())
    return sol


def saved_proof(cache: Path, n: int, k: int) -> tuple[dict[str, Any], bytes, list[int]]:
    """The proof :mod:`research.gas.zk_trace` saved: its record, the Halo2 proof bytes and the public instances
    in the circuit's order (``[h_0 .. h_{N-1}, h_ref, h_tag | flags | scores | tag chunks]``: ``round_instances``)."""
    saved = json.loads((cache / f"proof-n{n}-k{k}.json").read_text())
    tag = [int(saved["tag"][4 * j : 4 * j + 4], 16) for j in range(8)]
    instances = round_instances(
        saved["hashes"], saved["reference_hash"], saved["tag_hash"], saved["flags"], saved["scores"], tag
    )
    return saved, bytes.fromhex(saved["halo2_proof"]), instances


def measure(n: int, k: int, cache: Path) -> dict[str, object]:
    keys = setup(n, k, root=cache)
    sol_dir = cache / f"dedicated-n{n}-k{k}"
    dedicated_sol(keys.root, sol_dir)
    dedicated = compile_contracts([sol_dir], out=sol_dir / "contracts.json")
    reusable = compile_contracts([keys.sol_dir], out=keys.root / "contracts.json")
    proof, instances = saved_proof(cache, n, k)[1:]
    out: dict[str, object] = {"n": n, "k": k, "instances": len(instances)}
    with AnvilNode(extra_args=("--steps-tracing", "--disable-code-size-limit")) as node:
        chain = ChainClient(node.url, dev_accounts(1)[0])
        d = chain.deploy(dedicated["Halo2Verifier"])
        r = chain.deploy(reusable["Halo2VerifierReusable"])
        words = keys.vka_words()
        chain.transact(r.functions.registerVka(words))
        for name, call in (("dedicated", d.functions.verifyProof(proof, instances)),
                           ("reusable", r.functions.verifyProof(proof, instances, words))):  # fmt: skip
            raw = chain.w3.eth.call({"to": call.address, "data": call._encode_transaction_data()})
            ok = int.from_bytes(bytes(raw)[:32], "big") == 1  # the first word is the verdict in both
            receipt = chain.transact(call, gas=6_000_000)
            data = bytes(chain.get_transaction(receipt["transactionHash"])["input"])
            zeros = data.count(0)
            out[name] = {
                "accepts": ok,
                "runtime_bytes": len(chain.code(d.address if name == "dedicated" else r.address)),
                "gas_used": int(receipt["gasUsed"]), "calldata_bytes": len(data),
                "calldata_gas": 4 * zeros + 16 * (len(data) - zeros),
                **split(_trace(chain, bytes(receipt["transactionHash"]))),
            }  # fmt: skip
    return out


def size_cli(description: str, measure: Callable[[int, int, Path], Any]) -> None:
    """``python -m <module> NxK [--cache DIR]``: prints ``measure(N, K, DIR)`` as one JSON line."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("size")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hgas-zk"))
    args = ap.parse_args()
    n, k = map(int, args.size.split("x"))
    print(json.dumps(measure(n, k, args.cache)), flush=True)


def main() -> None:
    size_cli(__doc__.splitlines()[0], measure)


if __name__ == "__main__":
    main()
