"""The Gram rule with the owner's reference row (``gram_rule_ref_int``): no reference is the rule itself,
and what any reference - an adversarial owner's included - can change is bounded (docs/design/robust-reference.md).

Properties run on random sketches with references drawn at random and as mixtures of the trainers' own
rows (the references most likely to pass the rule's checks); the detection test trains on Dirichlet(0.5)
shards with 40 % sign-flippers and the owner's validation data.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench.owner_reference import adversarial_reference, colluder_mask, pay_moved
from marketplace.demo.attacks import Attack
from marketplace.fl.data import VALIDATION_FILE, LocalData, load_npz, partition_digits
from marketplace.fl.models import build_model, state_to_vector
from marketplace.fl.train import train_local
from marketplace.protocol.commitment import committed_row, committed_rows, quantize
from marketplace.protocol.constants import SCALE
from marketplace.rule.gram import GramConfig, gram_rule_float, gram_rule_int, gram_rule_ref_float, gram_rule_ref_int
from marketplace.rule.scorer import GramScorer
from research.simulate import collect_updates

ONE = 1 << SCALE


@st.composite
def rounds_with_reference(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Committed rows of 1-10 random sketches (some absent) and a committed reference row: a random sketch,
    or a random mixture of the sketches (absent or not)."""
    n = draw(st.integers(1, 10))
    k = draw(st.integers(2, 16))
    s = draw(arrays(np.float64, (n, k), elements=st.floats(-10, 10, allow_nan=False, width=64)))
    active = draw(arrays(np.bool_, (n,)))
    if draw(st.booleans()):
        ref = draw(arrays(np.float64, (k,), elements=st.floats(-10, 10, allow_nan=False, width=64)))
    else:
        ref = draw(arrays(np.float64, (n,), elements=st.floats(-1, 1, allow_nan=False, width=64))) @ s
    ref_row = committed_row(ref)
    ref_row[-1] = float(draw(st.booleans()) or draw(st.booleans()))  # present 3 times in 4
    return committed_rows(s, active), ref_row


# --------------------------------------------------------------------------- no reference: the rule itself


@settings(max_examples=80, deadline=None)
@given(rounds_with_reference())
def test_no_reference_is_the_rule_bit_for_bit(rnd: tuple[np.ndarray, np.ndarray]) -> None:
    rows, ref = rnd
    rows_q = quantize(rows)
    a, b = gram_rule_int(rows_q), gram_rule_ref_int(rows_q, None)
    for x, y in ((a.flags, b.flags), (a.scores, b.scores), (a.valid, b.valid), (a.med_cos, b.med_cos)):
        assert x.dtype == y.dtype and x.tolist() == y.tolist()
    absent = ref.copy()
    absent[-1] = 0.0  # committed but not present (a zero row after sanitising): no reference
    c = gram_rule_ref_int(rows_q, quantize(absent))
    assert c.scores.tolist() == a.scores.tolist() and not c.stats["ref_ok"]
    f = gram_rule_float(rows)
    assert gram_rule_ref_float(rows, None).scores.tolist() == f.scores.tolist()


def test_the_scorer_without_a_reference_is_unchanged() -> None:
    rng = np.random.default_rng(3)
    updates = rng.normal(size=(7, 300)) + rng.normal(size=300)
    scorer = GramScorer(sketch_dim=32, seed=1, arrival=[3, 1, 0, 6, 5, 4, 2])
    a, b = scorer.run_round(updates), scorer.run_round(updates, reference=None)
    assert a.flags.tolist() == b.flags.tolist() and a.scores.tolist() == b.scores.tolist()
    assert np.array_equal(a.aggregate, b.aggregate) and "ref_ok" not in a.details


# --------------------------------------------------------------------------- what any reference can change


@settings(max_examples=200, deadline=None)
@given(rounds_with_reference())
def test_any_reference_changes_no_flag_and_moves_pay_within_the_bounds(rnd: tuple[np.ndarray, np.ndarray]) -> None:
    """For every reference: the same flags, validity and medians; a trainer it unpays was paid by the rule
    and below the median typicality (``m_i < M``); a trainer it pays that the rule does not is an unflagged
    present slot with a score of at most ``q_i f(l_i - lam) <= 2 (1 + unit_tol)``; a round the rule pays
    stays paid; and a trainer paid both ways is paid the same integer."""
    rows, ref = rnd
    rows_q = quantize(rows)
    cfg = GramConfig()
    base, res = gram_rule_int(rows_q, cfg), gram_rule_ref_int(rows_q, quantize(ref), cfg)
    assert res.flags.tolist() == base.flags.tolist() and res.valid.tolist() == base.valid.tolist()
    assert res.med_cos.tolist() == base.med_cos.tolist()
    paid_before, paid_after = base.scores > 0, res.scores > 0
    unpaid = paid_before & ~paid_after
    assert np.all(base.med_cos[unpaid] < base.stats["M"])
    added = paid_after & ~paid_before
    active = rows_q[:, -1] > ONE // 2
    assert np.all(active[added] & ~res.flags[added])
    q, size = base.stats["q"], base.stats["size"]
    own = (np.maximum(q * size, 0) + ONE // 2) >> SCALE  # q_i f(l_i - lam), rounded as the rule rounds
    assert np.all(res.scores[added] <= own[added])
    assert np.all(own[added] <= 2 * int(np.ceil(ONE * (1 + cfg.unit_tol))) + 1)
    both = paid_before & paid_after
    assert res.scores[both].tolist() == base.scores[both].tolist()
    assert not (paid_before.any() and not paid_after.any())
    assert np.all(res.scores >= 0) and np.all(res.scores[res.flags | ~active] == 0)


@settings(max_examples=40, deadline=None)
@given(rounds_with_reference(), st.randoms(use_true_random=False))
def test_the_adversarial_owner_gets_no_budget_back_and_unpays_within_the_bound(
    rnd: tuple[np.ndarray, np.ndarray], r: random.Random
) -> None:
    """The bench's adversarial owner (knows every row, colludes with one trainer): no round goes unpaid that
    the rule pays, and the non-colluders it unpays held at most :attr:`PayMoved.bound` of the budget."""
    rows, _ = rnd
    col = colluder_mask(len(rows), [r.randrange(len(rows))])
    rows_q = quantize(rows)
    res = gram_rule_ref_int(rows_q, quantize(adversarial_reference(rows, col)))
    moved = pay_moved(res, col)
    assert not moved.owner_kept
    base = np.asarray(res.stats["base_scores"])
    before = base / base.sum() if base.sum() > 0 else np.zeros(len(base))
    unpaid = (base > 0) & (res.scores == 0) & ~col
    assert before[unpaid].sum() <= moved.bound + 1e-12
    assert res.flags.tolist() == gram_rule_int(rows_q).flags.tolist()


def test_colluders_the_owner_adds_are_paid_at_most_what_agreeing_with_oneself_scores() -> None:
    """Four honest rows ``e0 + e_j / 2`` (pairwise cosine 0.8) and three colluders ``-e0 + 0.35 e_k`` (0.89
    among them, -0.84 with the honest rows), K = 8: nobody is far and nobody agrees on net (honest
    3 x 0.8 - 3 x 0.84 < 0, m = -0.02), so the rule pays nobody. The owner's reference agrees with the
    colluders and one honest row (``g = +-0.23``, ``m_r > 0``): the colluders agree with each other
    (``t = 1 + 2 x 0.89 - 0.84 = 1.94``) and are added, but each is paid ``min(t, q) f = q f``, what a
    trainer agreeing only with itself scores, not ``t f``. (Here the round's budget would otherwise go
    back to the owner: the honest trainers lose nothing the rule paid them.)"""
    e = np.eye(8)
    rows = committed_rows(
        np.array([e[0] + 0.5 * e[1 + j] for j in range(4)] + [-e[0] + 0.35 * e[5 + k] for k in range(3)])
    )
    reference = committed_row(np.linalg.pinv(rows[:, :8]) @ np.array([1.0, -1, -1, -1, 1, 1, 1]))
    base = gram_rule_int(quantize(rows))
    res = gram_rule_ref_int(quantize(rows), quantize(reference))
    assert not base.flags.any() and not (base.scores > 0).any() and res.stats["ref_ok"]
    assert (res.scores > 0).tolist() == [False] * 4 + [True] * 3
    q, size = base.stats["q"], base.stats["size"]
    own = (q * size + ONE // 2) >> SCALE
    assert res.scores[4:].tolist() == own[4:].tolist()


def test_a_reference_against_most_trainers_is_ignored() -> None:
    """Five trainers near e1, one near -e1: the reference -e1 (the minority's side) agrees with fewer than
    half of the trainers (``m_r < 0``), so it changes nothing; e1 itself passes and keeps the majority paid."""
    rng = np.random.default_rng(0)
    v = np.array([[1.0, 0.0, 0.0, 0.0]] * 5 + [[-1.0, 0.0, 0.0, 0.0]]) + 0.3 * rng.normal(size=(6, 4))
    rows_q = quantize(committed_rows(v))
    base = gram_rule_int(rows_q)
    against = gram_rule_ref_int(rows_q, quantize(committed_row(np.array([-1.0, 0.0, 0.0, 0.0]))))
    assert not against.stats["ref_ok"] and against.scores.tolist() == base.scores.tolist()
    along = gram_rule_ref_int(rows_q, quantize(committed_row(np.array([1.0, 0.0, 0.0, 0.0]))))
    assert along.stats["ref_ok"] and np.all(along.scores[:5] > 0) and along.scores[5] == 0


def test_invalid_slots_do_not_move_the_references_median() -> None:
    """``m_r`` is the median of ``g`` over the valid slots only: invalid slots (a present row that is not a
    unit vector, here entries at -1 against the reference) are padded above every valid ``g``. Padded as
    ``g + BIG`` instead, four such rows sorted below the three valid trainers and turned the reference off
    (``m_r = 0``): flagged trainers deciding whether the reference counts."""
    k = 16
    v_r = np.full(k, ONE // 4)  # a unit vector (16 entries of 1/4)
    rng = np.random.default_rng(0)
    rows = np.zeros((7, k + 2), dtype=np.int64)
    for i in range(3):  # valid trainers about along the reference
        u = v_r / ONE + rng.normal(size=k) * 0.1
        rows[i, :k] = np.round(u / np.linalg.norm(u) * ONE)
    rows[3:, :k] = -ONE  # <v_i, v_r> = -4: present, not unit vectors (invalid, flagged)
    rows[:, k + 1] = ONE
    reference = np.concatenate([v_r, [0, ONE]])
    res = gram_rule_ref_int(rows, reference)
    valid = res.valid
    assert valid.tolist() == [True] * 3 + [False] * 4
    g = res.stats["ref_cos"]
    assert int(res.stats["ref_med"]) == int(np.sort(g[valid])[1]) > 0  # the median of the 3 valid g
    assert int(res.stats["ref_med"]) == int(gram_rule_ref_int(rows[:3], reference).stats["ref_med"])
    float_res = gram_rule_ref_float(rows / ONE, reference / ONE)
    assert abs(float(float_res.stats["ref_med"]) - int(res.stats["ref_med"]) / ONE) < 2e-3


def test_hand_computed_reference() -> None:
    """Six unit rows in 3-D: four 'honest' rows ``(cos a, sin a, 0)`` at a = 1.2, 0.4, -0.4, -1.2 rad and two
    'flipped' rows ``(-cos 0.4, 0, +-sin 0.4)``; the reference e1.

    Honest cosines cos 0.8 = .697, cos 1.6 = -.029, cos 2.4 = -.737; flipped-honest -cos .4 cos a = -.334
    (a = +-1.2) and -.848 (a = +-.4); flipped-flipped cos .8 = .697. Medians to the others:
    m = (-.334, -.029, -.029, -.334, -.334, -.334), M = -.334: nothing is far (1 - m <= 1.334 < 2.25 * 1.334).
    Nobody agrees with the others (every m_i <= 0, every net sum < 0: -.737, -.331, -.331, -.737, -1.667, -1.667),
    so the rule pays nobody and the budget goes back to the owner. The reference: g = (.362, .921, .921, .362,
    -.921, -.921), m_r = .362 > 0, not far: it passes. It adds the four honest rows (g > 0), each agreeing
    with the four on net (t = 1 + .697 - .029 - .737 = .931 and .697 + 1 + .697 - .029 = 2.365), and pays
    them min(t_i, q_i) = (.931, 1, 1, .931) (size factor 1); the flipped rows (g < 0, unpaid) stay unpaid.
    """
    ang = [1.2, 0.4, -0.4, -1.2]
    honest = [[np.cos(a), np.sin(a), 0.0] for a in ang]
    flipped = [[-np.cos(0.4), 0.0, np.sin(0.4)], [-np.cos(0.4), 0.0, -np.sin(0.4)]]
    rows = committed_rows(np.array(honest + flipped))
    e1 = committed_row(np.array([1.0, 0.0, 0.0]))
    f = gram_rule_ref_float(rows, e1)
    assert not f.flags.any() and f.stats["ref_ok"]
    assert f.stats["base_scores"].tolist() == [0.0] * 6
    np.testing.assert_allclose(f.med_cos, [-0.334, -0.029, -0.029, -0.334, -0.334, -0.334], atol=2e-3)
    np.testing.assert_allclose(f.scores, [0.931, 1.0, 1.0, 0.931, 0.0, 0.0], atol=3e-3)
    i = gram_rule_ref_int(quantize(rows), quantize(e1))
    assert not i.flags.any() and i.stats["base_scores"].tolist() == [0] * 6
    assert (i.scores > 0).tolist() == [True] * 4 + [False] * 2
    np.testing.assert_allclose(i.scores / ONE, f.scores, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(rounds_with_reference(), st.randoms(use_true_random=False))
def test_the_scorer_maps_arrival_order_back(rnd: tuple[np.ndarray, np.ndarray], r: random.Random) -> None:
    rows, ref = rnd
    perm = r.sample(range(len(rows)), len(rows))
    scorer = GramScorer(sketch_dim=rows.shape[1] - 2, arrival=perm)
    res = scorer.evaluate(rows, np.ones(len(rows), dtype=bool), ref)
    direct = gram_rule_ref_int(quantize(rows[perm]), quantize(ref))
    assert res.scores[perm].tolist() == direct.scores.tolist() and res.flags[perm].tolist() == direct.flags.tolist()


# --------------------------------------------------------------------------- real training


def test_dirichlet_sign_flippers_unpaid_with_the_owners_reference(tmp_path: Path) -> None:
    """Dirichlet(0.5) shards, 10 trainers, the last 4 sign-flippers, first round (digits, 2 epochs of SGD at
    lr 0.5), seeds 0-2: the rule flags nobody (the far test cannot see them there) and pays 8 of the 18
    honest trainer-rounds; with the owner's reference (its update on its validation data) 17 are paid, and a
    flipper only when the rule pays it and it is at least as typical as the median (the trainers the
    reference cannot unpay): 1 flipper-round of 12. The integer and the real forms pay the same trainers."""
    flippers_paid, honest_paid, honest_paid_before = 0, 0, 0
    for seed in range(3):
        paths = partition_digits(10, "dirichlet", alpha=0.5, seed=seed, out_dir=tmp_path / str(seed))
        shards = [load_npz(p) for p in paths]
        validation: LocalData = load_npz(tmp_path / str(seed) / VALIDATION_FILE)
        state = build_model("mlp", seed).state_dict()
        attackers = dict.fromkeys(range(6, 10), Attack.SIGN_FLIP)
        ru = collect_updates("mlp", state, shards, attackers, epochs=2, lr=0.5, batch_size=32, seed=seed * 1000)
        reference = state_to_vector(train_local("mlp", state, validation, 2, 0.5, 32, seed=seed * 1000 + 999))
        scorer = GramScorer(sketch_dim=64, seed=seed, weighting="equal")
        without, with_ref = scorer.run_round(ru.updates), scorer.run_round(ru.updates, reference=reference)
        assert not without.flags.any() and with_ref.flags.tolist() == without.flags.tolist()
        assert with_ref.details["ref_ok"]
        honest_paid += int((with_ref.scores[:6] > 0).sum())
        honest_paid_before += int((without.scores[:6] > 0).sum())
        paid_flippers = with_ref.scores[6:] > 0
        safe = (without.scores > 0) & (without.details["med_cos"] >= np.median(without.details["med_cos"]))
        assert np.all(safe[6:][paid_flippers])
        flippers_paid += int(paid_flippers.sum())
        rows = scorer.summarize(ru.updates)
        real = gram_rule_ref_float(rows, scorer.reference_row(reference))
        assert (real.scores > 0).tolist() == (with_ref.scores > 0).tolist()
    assert flippers_paid <= 1 and honest_paid >= 17 and honest_paid_before <= 8  # of 12 and 18 trainer-rounds
