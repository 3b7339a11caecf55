"""ezkl 23.0.5 pipeline for the scoring circuit: export, settings, compile, SRS, setup, prove, verify, EVM.

Everything is written under ``zk/build/<tag>/`` (git-ignored): ONNX, settings, compiled circuit,
SRS (generated offline with ``gen_srs``: TEST ONLY, whoever generates it knows its secret),
keys, witnesses, proofs, Solidity. Run one prove at a time (2 shared cores).
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ezkl
import numpy as np
import torch

from marketplace.adapters.ezkl.keys import run_args
from research.zk_prototype.circuit import SCALE, CircuitConfig, ScoringCircuit

BUILD = Path(__file__).resolve().parent / "build"


@dataclass
class Paths:
    """Artefact paths of one circuit configuration."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def __getattr__(self, name: str) -> Path:  # onnx, settings, compiled, pk, vk, srs, ...
        names = {
            "onnx": "network.onnx",
            "settings": "settings.json",
            "compiled": "network.ezkl",
            "pk": "pk.key",
            "vk": "vk.key",
            "srs": "kzg.srs",
            "sol": "Halo2VerifierReusable.sol",
            "abi": "verifier_abi.json",
            "vka": "vka.bin",
            "vka_sol_dir": "sol",
        }
        if name in names:
            return self.root / names[name]
        raise AttributeError(name)


def paths_for(cfg: CircuitConfig, tag: str = "") -> Paths:
    """``zk/build/n{N}_k{K}{tag}``."""
    return Paths(BUILD / f"n{cfg.n}_k{cfg.k}{tag}")


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


def export_onnx(cfg: CircuitConfig, path: Path) -> None:
    """Export :class:`ScoringCircuit` with N inputs of shape (1, K+1)."""
    model = ScoringCircuit(cfg).eval()
    dummy = tuple(torch.zeros(1, cfg.k + 1) for _ in range(cfg.n))
    names = [f"row{i}" for i in range(cfg.n)]
    torch.onnx.export(
        model,
        dummy,
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=names,
        output_names=["flags", "scores"],
    )


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
) -> tuple[Paths, Timings, dict[str, Any]]:
    """Export, gen_settings (+ calibrate for resources), compile, gen_srs, setup. Returns settings."""
    p = paths_for(cfg, tag)
    tm = Timings()
    tm.run("export", export_onnx, cfg, p.onnx)
    assert ezkl.gen_settings(str(p.onnx), str(p.settings), py_run_args=run_args(logrows, legs=legs))
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
    assert tm.run("compile", ezkl.compile_circuit, str(p.onnx), str(p.compiled), str(p.settings))
    k = settings["run_args"]["logrows"]
    srs = p.root / f"kzg{k}.srs"
    if not srs.exists():
        tm.run("gen_srs", ezkl.gen_srs, str(srs), k)
    assert tm.run("setup", ezkl.setup, str(p.compiled), str(p.vk), str(p.pk), srs_path=str(srs))
    return p, tm, settings


def srs_path(p: Paths) -> Path:
    """The SRS matching the compiled settings' logrows."""
    k = json.loads(p.settings.read_text())["run_args"]["logrows"]
    return p.root / f"kzg{k}.srs"


def prove(p: Paths, rows: np.ndarray, name: str = "round", tm: Timings | None = None) -> dict[str, Any]:
    """Witness + proof for the given (n, k+1) float rows; returns the witness JSON."""
    tm = tm or Timings()
    inp = p.root / f"{name}.input.json"
    wit = p.root / f"{name}.witness.json"
    proof = p.root / f"{name}.proof.json"
    write_input(rows, inp)
    srs = str(srs_path(p))
    tm.run("witness", ezkl.gen_witness, str(inp), str(p.compiled), str(wit), vk_path=str(p.vk), srs_path=srs)
    tm.run("prove", ezkl.prove, str(wit), str(p.compiled), str(p.pk), str(proof), srs_path=srs)
    return json.loads(wit.read_text())


def verify(p: Paths, name: str = "round", tm: Timings | None = None) -> bool:
    """Off-chain verification of ``<name>.proof.json``."""
    tm = tm or Timings()
    proof = p.root / f"{name}.proof.json"
    return bool(tm.run("verify", ezkl.verify, str(proof), str(p.settings), str(p.vk), srs_path=str(srs_path(p))))


def evm_artifacts(p: Paths) -> None:
    """Reusable Halo2 verifier Solidity + the circuit's VKA (needs the solc 0.8.20 stand-in)."""
    from marketplace.adapters.toolchain import install_svm_solc

    install_svm_solc()
    sol_dir = p.vka_sol_dir
    sol_dir.mkdir(exist_ok=True)
    sol = sol_dir / "Halo2VerifierReusable.sol"
    srs = str(srs_path(p))

    async def _gen() -> None:  # ezkl's futures need a running event loop when created
        await ezkl.create_evm_verifier(str(p.vk), str(p.settings), str(sol), str(p.abi), srs_path=srs, reusable=True)
        await ezkl.create_evm_vka(str(p.vk), str(p.settings), str(p.vka), srs_path=srs)

    asyncio.run(_gen())


def row_commitment(row: np.ndarray, scale: int = SCALE) -> str:
    """Poseidon hash of one trainer row as ezkl computes it for a 'hashed' input (hex felt)."""
    felts = [ezkl.float_to_felt(float(v), scale) for v in np.asarray(row, dtype=np.float64).reshape(-1)]
    out = ezkl.poseidon_hash(felts)
    return out[0] if isinstance(out, list) else out


def read_vka(p: Paths) -> list[bytes]:
    """The VKA words: ``create_evm_vka`` writes a little-endian u64 count, then 32-byte words."""
    raw = p.vka.read_bytes()
    count = int.from_bytes(raw[:8], "little")
    words = [raw[8 + 32 * i : 8 + 32 * (i + 1)] for i in range(count)]
    if len(raw) != 8 + 32 * count:
        raise ValueError(f"unexpected VKA file size {len(raw)} for {count} words")
    return words


def evm_check(p: Paths, name: str = "round") -> dict[str, Any]:
    """Compile + deploy the reusable verifier on a throwaway anvil, register the VKA, verify on chain.

    Returns sizes, gas figures, the decoded instances and whether a tampered instance fails.
    """
    from eth_abi import decode, encode

    from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
    from marketplace.adapters.chain.client import ChainClient
    from marketplace.adapters.chain.compile import compile_contracts

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    arts = compile_contracts([p.vka_sol_dir], out=p.root / "contracts.json")
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
        words = read_vka(p)
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
