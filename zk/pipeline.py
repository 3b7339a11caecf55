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

from zk.circuit import SCALE, CircuitConfig, ScoringCircuit

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


def run_args(cfg: CircuitConfig, logrows: int | None = None, legs: int = 2) -> ezkl.PyRunArgs:
    """Hashed inputs (one Poseidon hash per trainer), fixed params, public outputs, scale 13."""
    ra = ezkl.PyRunArgs()
    ra.input_visibility = "hashed"
    ra.param_visibility = "fixed"
    ra.output_visibility = "public"
    ra.input_scale = SCALE
    ra.param_scale = SCALE
    ra.num_inner_cols = 2
    ra.decomp_legs = legs
    if logrows is not None:
        ra.logrows = logrows
    return ra


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
    assert ezkl.gen_settings(p.onnx, p.settings, py_run_args=run_args(cfg, logrows, legs))
    sample = p.root / "calib.json"
    write_input(sample_rows, sample)
    if calibrate:
        # scales are fixed: calibrate only sizes the lookup range / logrows
        tm.run(
            "calibrate",
            ezkl.calibrate_settings,
            sample,
            p.onnx,
            p.settings,
            "resources",
            scales=[SCALE],
        )
    settings = json.loads(p.settings.read_text())
    if logrows is not None and settings["run_args"]["logrows"] != logrows:
        settings["run_args"]["logrows"] = logrows
        p.settings.write_text(json.dumps(settings))
    assert tm.run("compile", ezkl.compile_circuit, p.onnx, p.compiled, p.settings)
    k = settings["run_args"]["logrows"]
    srs = p.root / f"kzg{k}.srs"
    if not srs.exists():
        tm.run("gen_srs", ezkl.gen_srs, str(srs), k)
    assert tm.run("setup", ezkl.setup, p.compiled, p.vk, p.pk, srs_path=srs)
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
    tm.run("witness", ezkl.gen_witness, inp, p.compiled, wit, vk_path=p.vk, srs_path=srs_path(p))
    tm.run("prove", ezkl.prove, wit, p.compiled, p.pk, proof, srs_path=srs_path(p))
    return json.loads(wit.read_text())


def verify(p: Paths, name: str = "round", tm: Timings | None = None) -> bool:
    """Off-chain verification of ``<name>.proof.json``."""
    tm = tm or Timings()
    proof = p.root / f"{name}.proof.json"
    return bool(tm.run("verify", ezkl.verify, proof, p.settings, p.vk, srs_path=srs_path(p)))


def evm_artifacts(p: Paths) -> None:
    """Reusable Halo2 verifier Solidity + the circuit's VKA (needs the solc 0.8.20 stand-in)."""
    from marketplace.toolchain import install_svm_solc

    install_svm_solc()
    sol_dir = p.vka_sol_dir
    sol_dir.mkdir(exist_ok=True)
    sol = sol_dir / "Halo2VerifierReusable.sol"
    asyncio.run(ezkl.create_evm_verifier(p.vk, p.settings, sol, p.abi, srs_path=srs_path(p), reusable=True))
    asyncio.run(ezkl.create_evm_vka(p.vk, p.settings, p.vka, srs_path=srs_path(p)))


def row_commitment(row: np.ndarray, scale: int = SCALE) -> str:
    """Poseidon hash of one trainer row as ezkl computes it for a 'hashed' input (hex felt)."""
    felts = [ezkl.float_to_felt(float(v), scale) for v in np.asarray(row, dtype=np.float64).reshape(-1)]
    out = ezkl.poseidon_hash(felts)
    return out[0] if isinstance(out, list) else out
