"""ezkl 23.0.5 pipeline for the prototype scoring circuit: build (export, settings, compile, SRS,
keys: the production steps of :mod:`marketplace.adapters.ezkl.keys`), prove, verify, EVM check.

Everything is written under ``research/zk_prototype/build/<tag>/`` (git-ignored): ONNX, settings,
compiled circuit, SRS (generated offline with ``gen_srs``: TEST ONLY, whoever generates it knows
its secret), keys, witnesses, proofs, Solidity. Run one prove at a time (2 shared cores).
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ezkl
import numpy as np

from marketplace.adapters.ezkl.keys import CircuitKeys, compile_circuit, export_onnx, generate_keys, settings_for
from marketplace.protocol.constants import SCALE
from research.zk_prototype.circuit import CircuitConfig, ScoringCircuit

BUILD = Path(__file__).resolve().parent / "build"


def paths_for(cfg: CircuitConfig, tag: str = "") -> CircuitKeys:
    """The artefact paths of one configuration, in ``build/n{N}_k{K}{tag}`` (created)."""
    keys = CircuitKeys(cfg.n, cfg.k, BUILD / f"n{cfg.n}_k{cfg.k}{tag}")
    keys.root.mkdir(parents=True, exist_ok=True)
    return keys


@dataclass
class Timings:
    """Seconds per step plus the peak RSS of this process (MB)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - t0, 3)
        return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_input(rows: np.ndarray, path: Path) -> None:
    """ezkl input JSON: one flat list per trainer row."""
    data = {"input_data": [[float(v) for v in row] for row in np.asarray(rows, dtype=np.float64)]}
    path.write_text(json.dumps(data))


def build(
    cfg: CircuitConfig,
    sample_rows: np.ndarray,
    *,
    tag: str = "",
    logrows: int | None = None,
    legs: int = 2,
    calibrate: bool = True,
) -> tuple[CircuitKeys, Timings, dict[str, Any]]:
    """Export, settings (+ calibrate for resources), compile, SRS and keys. Returns the settings."""
    p = paths_for(cfg, tag)
    tm = Timings()
    tm.run("export", export_onnx, ScoringCircuit(cfg), cfg.n, cfg.k + 1, p.onnx)
    settings_for(p.onnx, p.settings, logrows=logrows, legs=legs)
    sample = p.root / "calib.json"
    write_input(sample_rows, sample)
    if calibrate:
        # scales are fixed: calibrate only sizes the lookup range / logrows
        tm.run(
            "calibrate",
            ezkl.calibrate_settings,
            str(sample),
            str(p.onnx),
            str(p.settings),
            "resources",
            scales=[SCALE],
        )
    settings = json.loads(p.settings.read_text())
    if logrows is not None and settings["run_args"]["logrows"] != logrows:
        settings["run_args"]["logrows"] = logrows
        p.settings.write_text(json.dumps(settings))
    tm.run("compile", compile_circuit, p.onnx, p.compiled, p.settings)
    tm.run("setup", generate_keys, p)  # SRS (gen_srs, test only) + proving and verifying keys
    return p, tm, settings


def prove(p: CircuitKeys, rows: np.ndarray, name: str = "round", tm: Timings | None = None) -> dict[str, Any]:
    """Witness + proof for the given (n, k+1) float rows; returns the witness JSON."""
    tm = tm or Timings()
    inp = p.root / f"{name}.input.json"
    wit = p.root / f"{name}.witness.json"
    proof = p.root / f"{name}.proof.json"
    write_input(rows, inp)
    srs = str(p.srs)
    tm.run("witness", ezkl.gen_witness, str(inp), str(p.compiled), str(wit), vk_path=str(p.vk), srs_path=srs)
    tm.run("prove", ezkl.prove, str(wit), str(p.compiled), str(p.pk), str(proof), srs_path=srs)
    return json.loads(wit.read_text())


def verify(p: CircuitKeys, name: str = "round", tm: Timings | None = None) -> bool:
    """Off-chain verification of ``<name>.proof.json``."""
    tm = tm or Timings()
    proof = p.root / f"{name}.proof.json"
    return bool(tm.run("verify", ezkl.verify, str(proof), str(p.settings), str(p.vk), srs_path=str(p.srs)))


def evm_check(p: CircuitKeys, name: str = "round") -> dict[str, Any]:
    """Compile + deploy the reusable verifier on a throwaway anvil, register the VKA, verify on chain
    (after :func:`marketplace.adapters.ezkl.keys.evm_artifacts` wrote the verifier and the VKA).

    Returns sizes, gas figures, the decoded instances and whether a tampered instance fails.
    """
    from eth_abi import decode, encode

    from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
    from marketplace.adapters.chain.client import ChainClient
    from marketplace.adapters.chain.compile import compile_contracts

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    arts = compile_contracts([p.sol_dir], out=p.root / "contracts.json")
    out["compile_s"] = round(time.perf_counter() - t0, 2)
    art = arts["Halo2VerifierReusable"]
    out["verifier_runtime_bytes"] = art.deployed_size
    calldata_path = p.root / f"{name}.calldata"
    calldata = bytes(ezkl.encode_evm_calldata(str(p.root / f"{name}.proof.json"), str(calldata_path), str(p.vka)))
    out["calldata_bytes"] = len(calldata)
    proof_bytes, instances, vka = decode(["bytes", "uint256[]", "bytes32[]"], calldata[4:])
    out["proof_bytes"] = len(proof_bytes)
    out["instances"] = [hex(v) for v in instances]
    with AnvilNode() as node:
        client = ChainClient(node.url, dev_accounts(1)[0])
        verifier = client.deploy(art)
        words = p.vka_words()
        assert list(vka) == words, "calldata VKA differs from the VKA file"
        rec = client.transact(verifier.functions.registerVka(words))
        out["register_vka_gas"] = int(rec["gasUsed"])
        w3 = client.w3

        def call(data: bytes) -> tuple[bool, int | None]:
            tx = {"to": verifier.address, "data": "0x" + data.hex(), "from": client.account.address}
            try:
                ret = bytes(w3.eth.call(tx))  # type: ignore[arg-type]
                ok = int.from_bytes(ret[:32], "big") == 1  # (bool success, bytes32 digest, int256[] ...)
            except Exception:
                return False, None
            gas = int(w3.eth.estimate_gas(tx)) if ok else None  # type: ignore[arg-type]
            return ok, gas

        out["verified"], out["verify_gas"] = call(calldata)
        raw = bytes(w3.eth.call({"to": verifier.address, "data": "0x" + calldata.hex()}))
        out["return_words"] = [raw[i : i + 32].hex() for i in range(0, min(len(raw), 32 * 8), 32)]
        out["return_bytes"] = len(raw)
        tampered = list(instances)
        tampered[-1] = (tampered[-1] + 1) % (1 << 256)
        bad = calldata[:4] + encode(["bytes", "uint256[]", "bytes32[]"], [proof_bytes, tampered, list(vka)])
        out["tampered_verified"] = call(bad)[0]
        same = calldata[:4] + encode(["bytes", "uint256[]", "bytes32[]"], [proof_bytes, list(instances), list(vka)])
        out["reencoded_verified"] = call(same)[0]
    return out
