"""The zk scoring circuit prototype: float semantics, exact quantized reference, commitments.

The witness tests compile the N=8 circuit (a few seconds, no keys); proving is ``heavy``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ezkl = pytest.importorskip("ezkl")

from marketplace.adapters.ezkl.keys import CircuitKeys, compile_circuit, export_onnx, settings_for  # noqa: E402
from marketplace.protocol.commitment import row_commitment  # noqa: E402
from research.baselines.contribution import projection_scores  # noqa: E402
from research.baselines.flags import (  # noqa: E402
    duplicate_flags,
    median_distance_flags,
    norm_flags,
    opposing_flags,
)
from research.zk_prototype.circuit import (  # noqa: E402
    CircuitConfig,
    ScoringCircuit,
    batcher_layers,
    make_rows,
    quantize,
    reference_int,
)
from research.zk_prototype.pipeline import write_input  # noqa: E402


def _scenario(rng: np.random.Generator, n: int, k: int, kind: int) -> tuple[np.ndarray, np.ndarray]:
    base = rng.normal(size=k) * rng.uniform(0, 1)
    s = base + rng.normal(size=(n, k)) * rng.uniform(0.3, 1.5)
    active = rng.random(n) > rng.uniform(0, 0.5)
    if kind == 1:
        s[0] *= rng.uniform(3, 20)
    elif kind == 2:
        s[1] *= rng.uniform(0, 0.2)
    elif kind == 3:
        s[2] = s[3]
    elif kind == 4:
        s[4] = -3 * s[4]
    elif kind == 5:
        s[:] = np.round(s * 4) / 4
    return s, active


@pytest.mark.parametrize("n", [8, 16, 32])
def test_batcher_network_sorts(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(50):
        x = rng.integers(0, 5, size=n).astype(float)
        y = x.copy()
        for layer in batcher_layers(n):
            for a, b in layer:
                if y[a] > y[b]:
                    y[a], y[b] = y[b], y[a]
        assert (y == np.sort(x)).all()


def test_float_circuit_matches_numpy_scoring() -> None:
    """Without clipping effects the circuit's flags equal the numpy rules and payout shares agree."""
    cfg = CircuitConfig(n=8, k=64)
    mod = ScoringCircuit(cfg)
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.normal(size=(8, 64)) * 0.5 + 0.3
        s[0] *= 3.0
        s[1] *= 0.01
        s[2] = s[3]
        active = rng.random(8) > 0.25
        rows = make_rows(s, active)
        flags, p = mod(*[torch.tensor(r, dtype=torch.float32).reshape(1, -1) for r in rows])
        sa = np.where(active[:, None], rows[:, :64], 0.0)
        want = median_distance_flags(sa, active) | norm_flags(sa, active) | duplicate_flags(sa, active)
        want |= opposing_flags(sa, active)
        if active.sum() < 3:
            want[:] = False
        assert flags.numpy()[0].astype(bool).tolist() == want.tolist()
        pp = p.detach().numpy()[0].astype(np.float64)
        if pp.sum() > 0:
            np.testing.assert_allclose(pp / pp.sum(), projection_scores(sa, active, want), atol=1e-5)


@pytest.fixture(scope="module")
def compiled8(tmp_path_factory: pytest.TempPathFactory) -> tuple[CircuitConfig, CircuitKeys]:
    cfg = CircuitConfig(n=8, k=64)
    p = CircuitKeys(cfg.n, cfg.k, Path(tmp_path_factory.mktemp("zk8")))
    export_onnx(ScoringCircuit(cfg), cfg.n, cfg.k + 1, p.onnx)
    settings_for(p.onnx, p.settings)
    compile_circuit(p.onnx, p.compiled, p.settings)
    return cfg, p


def test_reference_equals_ezkl_witness_and_commitments(compiled8: tuple[CircuitConfig, CircuitKeys]) -> None:
    cfg, p = compiled8
    rng = np.random.default_rng(7)
    for t in range(12):
        s, active = _scenario(rng, cfg.n, cfg.k, t % 6)
        rows = make_rows(s, active)
        write_input(rows, p.root / "in.json")
        ezkl.gen_witness(str(p.root / "in.json"), str(p.compiled), str(p.root / "w.json"))
        w = json.loads((p.root / "w.json").read_text())
        flags = [ezkl.felt_to_int(v) for v in w["outputs"][0]]
        scores = [ezkl.felt_to_int(v) for v in w["outputs"][1]]
        ref_flags, ref_scores = reference_int(quantize(rows), cfg)
        assert flags == ref_flags.tolist()
        assert scores == ref_scores.tolist()
        if t < 2:
            hashes = w["processed_inputs"]["poseidon_hash"]
            assert [row_commitment(r) for r in rows] == hashes


def test_quantize_matches_float_to_felt_on_grid() -> None:
    rng = np.random.default_rng(1)
    rows = make_rows(rng.normal(size=(4, 64)) * 3, np.ones(4, dtype=bool))
    ours = quantize(rows[0])
    theirs = [ezkl.felt_to_int(ezkl.float_to_felt(float(v), 13)) for v in rows[0]]
    assert ours.tolist() == theirs
