"""The Gram circuit: the paying scorer's integer rule equals ezkl's witness, at every offered size and
in both sort layouts, with and without the owner's reference row; commitments; worst-case inputs;
the round tag passes through unchanged and hashed.

Builds the production circuit of each size exactly as production does (:mod:`marketplace.adapters.ezkl.keys`:
its layout from :func:`marketplace.rule.circuit.layout_for`, the same ONNX export, settings and
compile; seconds, no keys): 8x64 and 16x32 here, 32x32 (TopK) and 64x32 ``heavy``. The property test draws
adversarial rounds (``tests/zk_rounds.py``: absent slots, zero sketches, exact and near copies at
the duplicate distance +-1 unit, sign flips, log-norms at the lazy/boost thresholds +-1 unit,
non-unit rows at ``q = 1 +- tol`` +-1 unit, ties, 0-3 valid slots; the owner's reference row
absent, agreeing, disagreeing, far, invalid, at the unit-norm boundaries, a copy or a mixture of the
trainers' rows) and checks that the witness's flags and scores are
:func:`marketplace.rule.gram.gram_rule_ref_int`'s, bit for bit, and
:func:`marketplace.rule.gram.gram_rule_int`'s when the reference is the zero row (no reference). Proving:
``tests/test_zk_onchain.py`` and ``python -m bench.zk``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

ezkl = pytest.importorskip("ezkl")

from marketplace.adapters.ezkl.keys import (  # noqa: E402
    CircuitKeys,
    compile_circuit,
    export_onnx,
    run_args,
    settings_for,
)
from marketplace.protocol.commitment import (  # noqa: E402
    commit_update,
    commitment_bytes,
    committed_rows,
    quantize,
    row_commitment,
)
from marketplace.protocol.round_tag import round_tag, tag_chunks, tag_input  # noqa: E402
from marketplace.rule.circuit import GramCircuit, Sort, layout_for  # noqa: E402
from marketplace.rule.gram import GramConfig, gram_rule_int, gram_rule_ref_int  # noqa: E402
from tests.zk_rounds import ONE, REFERENCES, SPECS, RoundSpec, build_reference, build_round, worst_rows  # noqa: E402

N, K = 8, 64
R = 21888242871839275222246405745257275088548364400416034343698204186575808495617  # BN254 scalar field
#: The production sizes checked here (32 x 32 and 64 x 32: heavy, their compile and witnesses take minutes).
SIZES = [
    (8, 64),
    (16, 32),
    pytest.param((32, 32), marks=pytest.mark.heavy, id="32x32"),  # TopK in the default run: test_sort_layouts_agree
    pytest.param((64, 32), marks=pytest.mark.heavy, id="64x32"),
]


def _compile(
    root: Path, n: int, k: int, sort: Sort, cfg: GramConfig | None = None, cols: int = 2, *, hashed: bool = True
) -> CircuitKeys:
    """The circuit compiled as :func:`marketplace.adapters.ezkl.keys.setup` does (no keys). Without
    ``hashed`` the inputs are private: the same layout and logrows, and a witness without the Poseidon
    hashing of the inputs (2.4x faster at 32 x 32; the hashes are checked on hashed circuits)."""
    p = CircuitKeys(n, k, root)
    export_onnx(GramCircuit(n, k, cfg, sort=sort), n, k + 2, p.onnx, tag_width=GramCircuit.tag_width)
    settings = settings_for(p.onnx, p.settings, cols=cols)
    if not hashed:
        args = run_args(int(settings["run_args"]["logrows"]), cols)
        args.input_visibility = "private"
        assert ezkl.gen_settings(str(p.onnx), str(p.settings), py_run_args=args)
    compile_circuit(p.onnx, p.compiled, p.settings)
    return p


@pytest.fixture(scope="module", params=SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def production(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CircuitKeys:
    """The production circuit of one size (its layout's sort and inner columns), private inputs."""
    n, k = request.param
    layout = layout_for(n)
    return _compile(tmp_path_factory.mktemp(f"gram{n}x{k}"), n, k, layout.sort, cols=layout.cols, hashed=False)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CircuitKeys:
    """The production 8 x 64 circuit."""
    return _compile(tmp_path_factory.mktemp("gram8"), N, K, layout_for(N).sort)


TAG = round_tag(31337, "0x" + "12" * 20, 1, 0)


def _witness(
    p: CircuitKeys, rows: np.ndarray, tag: bytes = TAG, reference: np.ndarray | None = None
) -> tuple[list[int], list[int], list[str]]:
    """(flags, scores, Poseidon hashes of the rows then the reference: none for private inputs) of
    ezkl's witness for the trainers' ``rows`` and the owner's ``reference`` row (None: the zero row);
    checks the tag's pass-through."""
    ref = np.zeros(p.k + 2) if reference is None else reference
    data = [[float(v) for v in row] for row in rows] + [[float(v) for v in ref], tag_input(tag)]
    (p.root / "in.json").write_text(json.dumps({"input_data": data}))
    ezkl.gen_witness(str(p.root / "in.json"), str(p.compiled), str(p.root / "w.json"))
    w = json.loads((p.root / "w.json").read_text())
    flags = [ezkl.felt_to_int(v) for v in w["outputs"][0]]
    scores = [ezkl.felt_to_int(v) for v in w["outputs"][1]]
    assert [ezkl.felt_to_int(v) for v in w["outputs"][2]] == tag_chunks(tag)  # the tag output is the tag
    hashes = (w.get("processed_inputs") or {}).get("poseidon_hash")
    if not hashes:  # private inputs
        return flags, scores, []
    assert len(hashes) == p.n + 2  # one per row, the reference's, then the tag's
    return flags, scores, hashes[: p.n + 1]


def _matches(
    p: CircuitKeys, rows_q: np.ndarray, cfg: GramConfig | None = None, reference_q: np.ndarray | None = None
) -> tuple[list[int], list[int]]:
    """The witness's (flags, scores) for the integer rows ``rows_q`` and reference row ``reference_q``
    (scale 2**13; None: the zero row), asserted equal to :func:`gram_rule_ref_int`'s, and to
    :func:`gram_rule_int`'s when the reference is the zero row."""
    zero = reference_q is None or not reference_q.any()
    flags, scores, _ = _witness(p, rows_q / ONE, reference=None if reference_q is None else reference_q / ONE)
    ref = gram_rule_ref_int(rows_q, None if zero else reference_q, cfg)
    assert flags == ref.flags.astype(int).tolist()
    assert scores == ref.scores.tolist()
    if zero:
        base = gram_rule_int(rows_q, cfg)
        assert (flags, scores) == (base.flags.astype(int).tolist(), base.scores.tolist())
    return flags, scores


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
            assert hashes == [row_commitment(r) for r in [*rows, np.zeros(K + 2)]]


def test_worst_case_rows_inside_the_box_have_a_witness(production: CircuitKeys) -> None:
    """Entries at +-1 (norm^2 = K), log-norms at +-32, all-equal rows: witness generation succeeds
    and the reference still matches, so no in-box commitment can block proving."""
    flags, _ = _matches(production, worst_rows(production.n, production.k))
    assert all(flags)  # none of them is a unit vector


#: Boundary rounds of the property test, whatever the size (kinds repeat over the slots).
BOUNDARY = [
    RoundSpec(1, ("absent",)),  # nobody
    RoundSpec(2, ("zero",)),  # only zero sketches: present, none valid
    RoundSpec(3, ("honest", "copy")),  # exact copies: ties in every sorted column, every later copy a duplicate
    RoundSpec(4, ("honest", "honest", "near-1", "near", "near+1")),  # at the duplicate distance and 1 unit off
    RoundSpec(5, ("honest", "honest", "flip")),  # sign flips
    RoundSpec(6, ("honest", "lazy-1", "lazy", "lazy+1", "honest")),  # at the lazy threshold and 1 unit off
    RoundSpec(7, ("honest", "boost-1", "boost", "boost+1", "honest")),  # at the boost threshold and 1 unit off
    RoundSpec(8, ("honest", "qlo-1", "qlo", "qlo+1", "qhi-1", "qhi", "qhi+1")),  # q at 1 -+ tol and 1 unit off
    RoundSpec(9, ("honest", "worst", "zero", "absent")),
    *(RoundSpec(10 + c, ("honest", "near", "flip", "lazy", "boost"), valid_cap=c) for c in range(4)),  # 0-3 valid
    # the owner's reference row, on rounds where the rule's gate leaves trainers unpaid (flips among the honest)
    *(
        RoundSpec(30 + i, ("honest", "flip", "honest", "honest", "flip"), reference=ref)
        for i, ref in enumerate(REFERENCES)
    ),
    RoundSpec(50, ("honest", "copy", "worst", "zero"), reference="agree"),  # invalid slots beside a valid reference
    *(RoundSpec(51 + c, ("honest", "flip", "honest"), valid_cap=c, reference="agree") for c in range(4)),  # 0-3 valid
]


#: Rounds of 8 slots in which the reference decides: 5 honest trainers and 3 sign-flippers of them; the
#: reference pays one the rule's gate leaves unpaid (seeds 44 and 78: three), pays one and unpays one (101),
#: or unpays one (116). Found by a search over seeds (about 3 % of such rounds; pinned here).
DECIDING = [RoundSpec(seed, ("honest", "honest", "flip", "honest", "flip", "honest", "honest", "flip"), reference=ref)
            for seed, ref in ((44, "agree"), (78, "mix"), (101, "agree"), (116, "mix"))]  # fmt: skip


def _with_examples(test):  # type: ignore[no-untyped-def]
    for spec in [*BOUNDARY, *DECIDING]:
        test = example(spec=spec)(test)
    return test


PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@PROPERTY
@given(spec=SPECS)
@_with_examples
def test_reference_equals_witness_property(production: CircuitKeys, spec: RoundSpec) -> None:
    """Adversarial rounds and reference rows (module doc), 100 per size plus the boundary rounds: the
    witness's flags and scores are the integer rule's (with the reference; without it when the
    reference is the zero row)."""
    rows = build_round(spec, production.n, production.k)
    _matches(production, rows, reference_q=build_reference(spec, rows))


@pytest.mark.parametrize("spec", DECIDING, ids=lambda spec: f"seed{spec.seed}")
def test_a_deciding_reference_changes_the_scores_as_the_integer_rule_does(spec: RoundSpec, tmp_path: Path) -> None:
    """The rounds of :data:`DECIDING` at 8 x 32 (both sorts): the reference passes its checks and moves pay
    (the scores differ from the rule without it), and the witness has the reference's scores; with the zero
    row as reference, the same circuit proves the rule without it."""
    rows = build_round(spec, 8, 32)
    ref = build_reference(spec, rows)
    with_ref, without = gram_rule_ref_int(rows, ref), gram_rule_int(rows)
    assert with_ref.stats["ref_ok"] and with_ref.scores.tolist() != without.scores.tolist()
    for sort in ("batcher", "topk"):
        (tmp_path / sort).mkdir()
        p = _compile(tmp_path / sort, 8, 32, sort, hashed=False)
        assert _matches(p, rows, reference_q=ref)[1] == with_ref.scores.tolist()
        assert _matches(p, rows)[1] == without.scores.tolist()


@pytest.fixture(scope="module")
def topk16(tmp_path_factory: pytest.TempPathFactory) -> CircuitKeys:
    """The 16 x 32 circuit with TopK sorts (production sorts it with the Batcher network)."""
    assert layout_for(16).sort == "batcher"
    return _compile(tmp_path_factory.mktemp("topk16"), 16, 32, "topk", hashed=False)


@pytest.fixture(scope="module")
def batcher16(tmp_path_factory: pytest.TempPathFactory) -> CircuitKeys:
    return _compile(tmp_path_factory.mktemp("batcher16"), 16, 32, "batcher", hashed=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(spec=SPECS)
@example(spec=BOUNDARY[2])
def test_sort_layouts_agree(batcher16: CircuitKeys, topk16: CircuitKeys, spec: RoundSpec) -> None:
    """Batcher networks and ezkl's TopK give the same witness outputs (and both the integer rule's)."""
    rows = build_round(spec, 16, 32)
    assert _matches(batcher16, rows) == _matches(topk16, rows)


@pytest.mark.parametrize("sort", ["batcher", "topk"])
def test_every_copy_is_flagged_when_earliest_wins_is_off(sort: Sort, tmp_path: Path) -> None:
    """``earliest_wins=False``: every member of a group of near copies is a duplicate (both triangles of
    the pairs), as in the integer rule; the default keeps the earliest."""
    cfg = GramConfig(earliest_wins=False)
    p = _compile(tmp_path, 8, 32, sort, cfg, hashed=False)
    spec = RoundSpec(21, ("honest", "copy", "honest", "near", "flip", "honest"))
    rows = build_round(spec, 8, 32)
    flags, _ = _matches(p, rows, cfg)
    copies = gram_rule_int(rows, cfg).stats["dup"]
    assert copies.sum() >= 2 and all(flags[i] for i in np.flatnonzero(copies))
    assert copies.sum() > gram_rule_int(rows).stats["dup"].sum()  # the earliest copies too
    for seed in range(8):
        _matches(p, build_round(RoundSpec(100 + seed, ("honest", "copy", "near", "near+1", "honest")), 8, 32), cfg)


def test_the_tag_passes_through_and_changes_nothing_else(compiled: CircuitKeys) -> None:
    """The tag input reaches an output unchanged (so ezkl keeps and constrains it), its chunks are
    exact at scale 13 (felt = chunk, also for 0xffff), its Poseidon hash is the prover's h_tag, and
    the flags and scores do not depend on it."""
    rows = _random_round(np.random.default_rng(5), 0)
    other = (b"\xff" * 2) + round_tag(1, "0x" + "34" * 20, 7, 3)[2:]
    assert tag_chunks(other)[0] == 0xFFFF
    outputs = []
    for tag in (TAG, other):
        data = [[float(v) for v in row] for row in rows] + [[0.0] * (K + 2), tag_input(tag)]  # no reference
        (compiled.root / "in.json").write_text(json.dumps({"input_data": data}))
        ezkl.gen_witness(str(compiled.root / "in.json"), str(compiled.compiled), str(compiled.root / "w.json"))
        w = json.loads((compiled.root / "w.json").read_text())
        assert [ezkl.felt_to_int(v) for v in w["outputs"][2]] == tag_chunks(tag)
        felts = [ezkl.float_to_felt(x, 13) for x in tag_input(tag)]
        assert [ezkl.felt_to_int(f) for f in felts] == tag_chunks(tag)
        poseidon = ezkl.poseidon_hash(felts)
        hashes = w["processed_inputs"]["poseidon_hash"]  # the rows', the reference's, then the tag's
        assert hashes[N + 1] == (poseidon[0] if isinstance(poseidon, list) else poseidon)
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
