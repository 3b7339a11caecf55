"""The Gram circuit: the paying scorer's integer rule equals ezkl's witness; commitments; worst-case
inputs; the round tag passes through unchanged and hashed.

Builds the N=8, K=64 circuit exactly as production does (:mod:`marketplace.adapters.ezkl.keys`:
the same ONNX export, settings and compile; a few seconds, no keys). Proving: ``tests/test_zk_onchain.py``
and ``python -m bench.zk``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ezkl = pytest.importorskip("ezkl")

from marketplace.adapters.ezkl.keys import CircuitKeys, compile_circuit, export_onnx, settings_for  # noqa: E402
from marketplace.protocol.commitment import (  # noqa: E402
    commit_update,
    commitment_bytes,
    committed_rows,
    quantize,
    row_commitment,
)
from marketplace.protocol.round_tag import round_tag, tag_chunks, tag_input  # noqa: E402
from marketplace.rule.circuit import GramCircuit  # noqa: E402
from marketplace.rule.gram import gram_rule_int  # noqa: E402

N, K = 8, 64
R = 21888242871839275222246405745257275088548364400416034343698204186575808495617  # BN254 scalar field


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CircuitKeys:
    p = CircuitKeys(N, K, Path(tmp_path_factory.mktemp("gram8")))
    export_onnx(GramCircuit(N, K), N, K + 2, p.onnx, tag_width=GramCircuit.tag_width)
    settings_for(p.onnx, p.settings)
    compile_circuit(p.onnx, p.compiled, p.settings)
    return p


TAG = round_tag(31337, "0x" + "12" * 20, 1, 0)


def _witness(p: CircuitKeys, rows: np.ndarray, tag: bytes = TAG) -> tuple[list[int], list[int], list[str]]:
    """(flags, scores, Poseidon hashes of the rows) of ezkl's witness; checks the tag's pass-through."""
    data = [[float(v) for v in row] for row in rows] + [tag_input(tag)]
    (p.root / "in.json").write_text(json.dumps({"input_data": data}))
    ezkl.gen_witness(str(p.root / "in.json"), str(p.compiled), str(p.root / "w.json"))
    w = json.loads((p.root / "w.json").read_text())
    flags = [ezkl.felt_to_int(v) for v in w["outputs"][0]]
    scores = [ezkl.felt_to_int(v) for v in w["outputs"][1]]
    assert [ezkl.felt_to_int(v) for v in w["outputs"][2]] == tag_chunks(tag)  # the tag output is the tag
    hashes = w["processed_inputs"]["poseidon_hash"]
    assert len(hashes) == N + 1  # one per row, then the tag's
    return flags, scores, hashes[:N]


def _random_round(rng: np.random.Generator, kind: int) -> np.ndarray:
    base = rng.normal(size=K) * rng.uniform(0, 1.5)
    s = base + rng.normal(size=(N, K)) * rng.uniform(0.2, 1.5)
    s *= np.exp(rng.normal(size=(N, 1)) * 0.3)
    active = rng.random(N) > rng.uniform(0, 0.4)
    if kind == 1:
        s[0] *= 10.0
        s[1] *= 0.01
    elif kind == 2:
        s[3] = s[2]
        s[5] = -s[5]
    elif kind == 3:
        s[4] = 0.0
    rows = committed_rows(s, active)
    if kind == 4:  # a non-unit vector inside the box: invalid, flagged
        rows[2, :K] = np.round(np.clip(rows[2, :K] * 1.05, -1, 1) * 8192) / 8192
    return rows


def test_reference_equals_witness(compiled: CircuitKeys) -> None:
    rng = np.random.default_rng(11)
    for t in range(15):
        rows = _random_round(rng, t % 5)
        flags, scores, hashes = _witness(compiled, rows)
        ref = gram_rule_int(quantize(rows))
        assert flags == ref.flags.astype(int).tolist()
        assert scores == ref.scores.tolist()
        if t < 2:
            assert hashes == [row_commitment(r) for r in rows]


def test_worst_case_rows_inside_the_box_have_a_witness(compiled: CircuitKeys) -> None:
    """Entries at +-1 (norm^2 = K), log-norms at +-32, all-equal rows: witness generation succeeds
    and the reference still matches, so no in-box commitment can block proving."""
    rows = np.zeros((N, K + 2))
    rows[:, :K] = 1.0
    rows[1, :K] = -1.0
    rows[2, : K // 2] = -1.0
    rows[:, K] = [32, -32, 32, -32, 0, 0, 32, -32]
    rows[:, K + 1] = 1.0
    rows[3, :K] = 0.0
    flags, scores, _ = _witness(compiled, rows)
    ref = gram_rule_int(quantize(rows))
    assert flags == ref.flags.astype(int).tolist() and scores == ref.scores.tolist()
    assert all(flags[i] == 1 for i in range(N))  # none of them is a unit vector


def test_the_tag_passes_through_and_changes_nothing_else(compiled: CircuitKeys) -> None:
    """The tag input reaches an output unchanged (so ezkl keeps and constrains it), its chunks are
    exact at scale 13 (felt = chunk, also for 0xffff), its Poseidon hash is the prover's h_tag, and
    the flags and scores do not depend on it."""
    rows = _random_round(np.random.default_rng(5), 0)
    other = (b"\xff" * 2) + round_tag(1, "0x" + "34" * 20, 7, 3)[2:]
    assert tag_chunks(other)[0] == 0xFFFF
    outputs = []
    for tag in (TAG, other):
        data = [[float(v) for v in row] for row in rows] + [tag_input(tag)]
        (compiled.root / "in.json").write_text(json.dumps({"input_data": data}))
        ezkl.gen_witness(str(compiled.root / "in.json"), str(compiled.compiled), str(compiled.root / "w.json"))
        w = json.loads((compiled.root / "w.json").read_text())
        assert [ezkl.felt_to_int(v) for v in w["outputs"][2]] == tag_chunks(tag)
        felts = [ezkl.float_to_felt(x, 13) for x in tag_input(tag)]
        assert [ezkl.felt_to_int(f) for f in felts] == tag_chunks(tag)
        poseidon = ezkl.poseidon_hash(felts)
        assert w["processed_inputs"]["poseidon_hash"][N] == (poseidon[0] if isinstance(poseidon, list) else poseidon)
        outputs.append(w["outputs"][:2])
    assert outputs[0] == outputs[1]


def test_trainer_commitment_is_the_public_hash() -> None:
    rng = np.random.default_rng(3)
    update = rng.normal(size=1000).astype(np.float32)
    row, commitment = commit_update(update, seed=5)
    assert row.shape == (K + 2,) and row[-1] == 1.0
    assert commitment == commitment_bytes(row)
    assert commitment == bytes.fromhex(row_commitment(row))[::-1]
    assert int.from_bytes(commitment, "big") < R
