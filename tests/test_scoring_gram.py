"""The Gram-matrix paying rule: hand-computed cases, properties, detection on real training.

Detection setting (as ``test_scoring_detection.py``): 8 trainers on digits, 2 local epochs of
SGD (lr 0.5), two rounds, attackers 6 and 7 (25%), committed 64-wide CountSketches.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketplace.demo.attacks import Attack
from marketplace.fl.data import LocalData, load_npz, partition_digits
from marketplace.protocol.commitment import committed_row, committed_rows, quantize, sanitize_rows
from marketplace.protocol.constants import LOG_CLIP
from marketplace.rule.aggregate import MAX_STEP, step_cap
from marketplace.rule.gram import GramConfig, gram_rule_float, gram_rule_int, shares
from marketplace.rule.scorer import GramScorer
from marketplace.rule.strategy import RoundResult
from research.simulate import run_rounds

ATTACKERS = (6, 7)
HONEST = list(range(6))


def _unit_rows(vectors: list[list[float]], logs: list[float] | None = None) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    lg = np.zeros(len(v)) if logs is None else np.asarray(logs, dtype=np.float64)
    return np.concatenate([v, lg[:, None], np.ones((len(v), 1))], axis=1)


# --------------------------------------------------------------------------- hand-computed cases


def test_hand_computed_round() -> None:
    """Four slots in the plane: three near (1, 0), one at 90 degrees.

    Angles 0, 0.2, -0.2 rad and pi/2: the cosines among the first three are cos 0.2 = 0.980 and
    cos 0.4 = 0.921; with the fourth they are cos(pi/2 - a) = 0, 0.199 and -0.199.
    m = (median{.980, .980, 0}, median{.980, .921, .199}, median{.980, .921, -.199}, median{0, .199, -.199})
      = (.980, .921, .921, 0),  M = median(m) = (.921 + .921) / 2 = .921,
    far_i: 1 - m_i > 2.5 (1 - .921) = .197  ->  only slot 3 (1 - 0 = 1).
    Scores: inliers 0..2 (each agrees with the others), p_i = sum_{j in I} G_ij = (1 + 2 * .980, .980 + 1 + .921,
    .980 + .921 + 1).
    """
    ang = [0.0, 0.2, -0.2, np.pi / 2]
    rows = _unit_rows([[np.cos(a), np.sin(a)] for a in ang])
    res = gram_rule_float(rows)
    c2, c4 = np.cos(0.2), np.cos(0.4)
    np.testing.assert_allclose(res.med_cos, [c2, c4, c4, 0.0], atol=1e-12)
    assert res.flags.tolist() == [False, False, False, True]
    np.testing.assert_allclose(res.scores, [1 + 2 * c2, c2 + 1 + c4, c2 + c4 + 1, 0.0], atol=1e-12)
    ires = gram_rule_int(quantize(rows))
    assert ires.flags.tolist() == res.flags.tolist()
    np.testing.assert_allclose(ires.scores / 2**13, res.scores, atol=2e-3)


def test_norm_rules_and_duplicates_keep_the_earliest() -> None:
    """Log-norms (0, 0.5, -0.5, 1.5, -4, 0): median 0; slot 3 is boosted (> 1), slot 4 lazy
    (< -log2 10 = -3.32). Slot 5 copies slot 1's direction (a later duplicate); slot 1 is kept."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    vecs = [base + 0.3 * rng.normal(size=16) for _ in range(5)]
    vecs.append(vecs[1] * 3.0)  # same direction as slot 1, different norm: still a copy
    rows = _unit_rows([list(v) for v in vecs], [0.0, 0.5, -0.5, 1.5, -4.0, 0.0])
    for res in (gram_rule_float(rows), gram_rule_int(quantize(rows))):
        assert res.flags.tolist() == [False, False, False, True, True, True]
        assert res.scores[3:].tolist() == [0, 0, 0] and np.all(res.scores[:3] > 0)
    res = gram_rule_int(quantize(rows), GramConfig(earliest_wins=False))
    assert res.flags[1] and res.flags[5]


def test_invalid_absent_and_too_few() -> None:
    rows = _unit_rows([[1.0, 0.0], [0.9, 0.1], [0.8, 0.3], [0.7, 0.2]])
    rows[1, :2] *= 1.1  # not a unit vector: invalid, flagged, excluded from every statistic
    rows[3] = 0.0  # absent slot: never flagged, never paid
    res = gram_rule_int(quantize(rows))
    assert res.valid.tolist() == [True, False, True, False]
    assert res.flags.tolist() == [False, True, False, False]  # 2 valid rows: no rule flags them
    assert res.scores[1] == 0 and res.scores[3] == 0 and res.scores[0] > 0


def test_sign_flippers_the_far_test_misses_are_paid_nothing_and_left_out_of_the_model() -> None:
    """Late in training honest updates agree little (typical cosine M ~ 0.2 < (T - 1) / (T + 1) = 0.38),
    and 4 sign-flippers among 6 honest trainers are no longer ``far``. They still point against the
    other inliers on net, so the leave-one-out gate pays them 0 and the new model leaves them out;
    an honest trainer may be too (its own agreement with the others is drowned by the flippers' and the
    64-wide sketch's noise), but most are paid and the model's step is the mean of the paid updates (lengthened
    at most ``MAX_STEP * sqrt(n / 10)`` times, n the updates in it, below ``MAX_STEP``: the four flippers at hand
    are left out): no flipper's update agrees with it, so none is taken unpaid."""
    rng = np.random.default_rng(3)
    d = 4_000
    base = rng.normal(size=d)
    honest = np.stack([0.6 * base + rng.normal(size=d) for _ in range(6)])  # pairwise cosine ~0.26
    flippers = -np.stack([0.6 * base + rng.normal(size=d) for _ in range(4)])
    updates = np.concatenate([honest, flippers]).astype(np.float32)
    scorer = GramScorer(64, seed=1, weighting="equal")
    res = scorer.run_round(updates)
    assert not res.flags.any(), "the far test no longer separates them (the regime this gate is for)"
    assert (res.details["int_scores"][6:] == 0).all() and (res.scores[6:] == 0).all()
    paid = res.scores > 0
    assert paid[:6].sum() >= 4
    assert res.admitted is not None and not res.admitted[6:].any()
    count = int(paid.sum() + res.admitted.sum())
    stretch = float(res.weights[paid][0] * count)
    assert 1.0 <= stretch <= step_cap(count, 10) < MAX_STEP
    np.testing.assert_allclose(res.weights[paid], stretch / count)
    assert not res.weights[~paid & ~res.admitted].any()
    np.testing.assert_allclose(res.aggregate, res.weights @ updates, rtol=1e-5, atol=1e-5)
    # The same verdict from the float rule on the committed rows (the circuit proves the int rule).
    assert ((gram_rule_float(scorer.summarize(updates)).scores > 0) == paid).all()


def test_a_lone_inlier_is_paid() -> None:
    """With one inlier there are no others to agree with: it is paid for itself (and makes the model)."""
    rows = _unit_rows([[1.0, 0.0], [0.0, 1.0]])
    rows[1] = 0.0  # absent
    res = gram_rule_int(quantize(rows))
    assert res.flags.tolist() == [False, False] and res.scores[0] > 0 and res.scores[1] == 0


def test_committed_row_and_sanitize() -> None:
    s = np.array([3.0, 4.0])
    row = committed_row(s)
    assert row.tolist() == pytest.approx([0.6, 0.8, np.log2(5.0), 1.0], abs=2**-14)
    assert np.all(row * 2**13 == np.round(row * 2**13))  # on the grid
    assert committed_row(np.zeros(3)).tolist() == [0.0, 0.0, 0.0, -32.0, 1.0]
    bad = np.stack([row, row * 3, np.array([0.5, np.nan, 0, 1]), np.array([0.1, 0.1, 40.0, 1.0])])
    clean, replaced = sanitize_rows(bad)
    assert replaced.tolist() == [False, True, True, True]
    assert np.all(clean[1:] == 0)


# --------------------------------------------------------------------------- properties


@st.composite
def sketch_rounds(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 9))
    k = draw(st.integers(2, 16))
    s = draw(arrays(np.float64, (n, k), elements=st.floats(-10, 10, allow_nan=False, width=64)))
    active = draw(arrays(np.bool_, (n,)))
    return s, active


@settings(max_examples=80, deadline=None)
@given(sketch_rounds())
def test_scores_nonnegative_and_zero_off_inliers(rnd: tuple[np.ndarray, np.ndarray]) -> None:
    s, active = rnd
    res = gram_rule_int(quantize(committed_rows(s, active)))
    assert np.all(res.scores >= 0)
    assert not np.any(res.flags & ~active)
    assert np.all(res.scores[res.flags | ~active] == 0)
    sh = shares(res.scores)
    assert sh.sum() == pytest.approx(1.0) or sh.sum() == 0.0


@settings(max_examples=60, deadline=None)
@given(sketch_rounds(), st.integers(-6, 6))
def test_common_power_of_two_scale_changes_nothing(rnd: tuple[np.ndarray, np.ndarray], j: int) -> None:
    """Scaling every sketch by 2**j moves every l by exactly j and leaves v unchanged: same flags, and
    the same scores up to the rounding of the median log-norm (half away from zero, so a shift
    across 0 may move it by one grid step, and the size factor with it)."""
    s, active = rnd
    rows_a, rows_b = committed_rows(s, active), committed_rows(s * 2.0**j, active)
    clipped = (np.abs(rows_a[:, -2]) >= LOG_CLIP) | (np.abs(rows_b[:, -2]) >= LOG_CLIP)
    if np.any(active & clipped):
        return  # zero and tiny sketches (norm below 2**-32) sit at the clip -32, which does not move
    a = gram_rule_int(quantize(rows_a))
    b = gram_rule_int(quantize(rows_b))
    assert a.flags.tolist() == b.flags.tolist()
    np.testing.assert_allclose(a.scores, b.scores, rtol=2.0**-11, atol=2)


@settings(max_examples=60, deadline=None)
@given(sketch_rounds(), st.randoms(use_true_random=False))
def test_permutation_equivariant_without_order(rnd: tuple[np.ndarray, np.ndarray], r: random.Random) -> None:
    s, active = rnd
    perm = np.array(r.sample(range(len(s)), len(s)))
    cfg = GramConfig(earliest_wins=False)
    a = gram_rule_int(quantize(committed_rows(s, active)), cfg)
    b = gram_rule_int(quantize(committed_rows(s[perm], active[perm])), cfg)
    assert b.flags.tolist() == a.flags[perm].tolist() and b.scores.tolist() == a.scores[perm].tolist()


@settings(max_examples=60, deadline=None)
@given(sketch_rounds())
def test_integer_rule_tracks_the_float_rule(rnd: tuple[np.ndarray, np.ndarray]) -> None:
    """Where no statistic sits within rounding of a threshold, flags agree; scores within 1e-2. A score may differ
    more only where the agreement gate's statistics (the median cosine ``m_i`` and the net agreement
    ``sum_{j != i} G_ij`` over the inliers) sit within the integer rule's rounding (1e-2) of 0: there the gate
    may decide either way (hypothesis found ``m_i`` just above 0 in floats, not in integers: 0.024 against 0)."""
    s, active = rnd
    rows = committed_rows(s, active)
    f, i = gram_rule_float(rows), gram_rule_int(quantize(rows))
    if f.flags.tolist() != i.flags.tolist():
        return
    v = np.where(f.valid[:, None], rows[:, :-2], 0.0)
    gram, inliers = v @ v.T, active & ~f.flags
    net = gram @ inliers - np.where(inliers.sum() >= 2, np.diag(gram), 0.0)
    at_the_gate = (np.abs(f.med_cos) < 1e-2) | (np.abs(net) < 1e-2)
    np.testing.assert_allclose((i.scores / 2**13)[~at_the_gate], f.scores[~at_the_gate], atol=1e-2)


# --------------------------------------------------------------------------- real training


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[LocalData]]:
    out: Path = tmp_path_factory.mktemp("digits")
    return {
        scheme: [load_npz(p) for p in partition_digits(8, scheme, seed=0, out_dir=out / scheme)]
        for scheme in ("iid", "dirichlet")
    }


def _rounds(shards: list[LocalData], attack: Attack, scorer: GramScorer) -> list[RoundResult]:
    attackers = {} if attack is Attack.NONE else dict.fromkeys(ATTACKERS, attack)
    _, results = run_rounds("mlp", shards, scorer, rounds=2, attackers=attackers, epochs=2, lr=0.5, seed=0)
    return results


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_clean_rounds_flag_nobody(shards: dict[str, list[LocalData]], scheme: str) -> None:
    for res in _rounds(shards[scheme], Attack.NONE, GramScorer()):
        assert not res.flags.any(), res.details["med_cos"]
        assert np.all(res.scores > 0.02) and res.scores.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("attack", [a for a in Attack if a is not Attack.NONE])
def test_iid_attackers_flagged_honest_kept(shards: dict[str, list[LocalData]], attack: Attack) -> None:
    """Every attack at 25% on IID shards, both rounds. Copies: slots in submission order (index
    order here), so the source (trainer 0, earlier) is kept and paid, the two copies flagged."""
    for res in _rounds(shards["iid"], attack, GramScorer(arrival=range(8))):
        assert res.flags[list(ATTACKERS)].all(), (attack, res.details["med_cos"])
        assert not res.flags[HONEST].any(), (attack, res.details["med_cos"])
        assert np.all(res.scores[list(ATTACKERS)] == 0) and np.all(res.scores[HONEST] > 0)
