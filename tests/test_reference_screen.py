"""The model step screened by the owner's reference (:func:`marketplace.rule.scorer.reference_screen`): when the
reference-aware rule used the owner's reference, the updates whose committed row points against it (cosine at most
``REFERENCE_STEP_BAR``) are left out of the step, and nobody's pay moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketplace.demo.attacks import Attack
from marketplace.fl.data import VALIDATION_FILE, load_npz, partition_digits
from marketplace.fl.models import build_model, state_to_vector
from marketplace.fl.train import train_local
from marketplace.round.collect import RoundInputs
from marketplace.round.score import new_model, score_round
from marketplace.rule.aggregate import REFERENCE_STEP_BAR
from marketplace.rule.scorer import GramScorer, reference_screen
from research.simulate import collect_updates

ONE = 1 << 13


def test_no_screen_without_a_reference_the_rule_used() -> None:
    cos = np.array([-ONE, 0, ONE])
    assert reference_screen({}) is None  # scored without a reference
    assert reference_screen({"ref_ok": np.array(False), "ref_cos": cos}) is None  # revealed, ignored by the rule
    assert reference_screen({"ref_ok": np.array(True), "ref_cos": cos}, bar=None) is None
    used = reference_screen({"ref_ok": np.array(True), "ref_cos": cos})
    assert used is not None and used.tolist() == [True, False, False]


def test_the_bar_is_compared_exactly() -> None:
    """-0.3 at scale 2**13 is -2457.6: -2458 is at or under it, -2457 is not."""
    assert REFERENCE_STEP_BAR * ONE == -2457.6
    stats = {"ref_ok": np.array(True), "ref_cos": np.array([-2458, -2457, -ONE, 0])}
    screen = reference_screen(stats)
    assert screen is not None and screen.tolist() == [True, False, True, False]


@st.composite
def rounds(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """3-9 updates of 40 coordinates around a common direction, some pointing against it, and a reference near
    that direction (its sign drawn too, so that some references point against most trainers)."""
    n = draw(st.integers(3, 9))
    base = draw(arrays(np.float64, (40,), elements=st.floats(-1, 1, allow_nan=False))) + 0.1
    signs = np.array(draw(st.lists(st.sampled_from([1.0, 1.0, -1.0]), min_size=n, max_size=n)))
    noise = draw(arrays(np.float64, (n, 40), elements=st.floats(-0.8, 0.8, allow_nan=False)))
    updates = (signs[:, None] * base[None, :] + noise).astype(np.float32)
    ref_noise = draw(arrays(np.float64, (40,), elements=st.floats(-0.5, 0.5, allow_nan=False)))
    reference = (draw(st.sampled_from([1.0, 1.0, -1.0])) * base + ref_noise).astype(np.float32)
    return updates, reference


@settings(max_examples=60, deadline=None)
@given(rounds())
def test_the_screen_moves_no_pay_and_takes_the_screened_updates_as_absent(rnd: tuple[np.ndarray, np.ndarray]) -> None:
    """Pay, flags and admissions-by-pay are the unscreened step's; the screened step is the step of a round in which
    the screened updates were not at hand (``has_update`` False), unless that would leave no paid update, when it
    is the unscreened step."""
    updates, reference = rnd
    n = updates.shape[0]
    screened_scorer = GramScorer(sketch_dim=16, seed=1, weighting="equal")
    plain = GramScorer(sketch_dim=16, seed=1, weighting="equal", reference_bar=None)
    a, b = screened_scorer.run_round(updates, reference=reference), plain.run_round(updates, reference=reference)
    assert a.flags.tolist() == b.flags.tolist() and a.scores.tolist() == b.scores.tolist()
    screen = reference_screen(screened_scorer.evaluate(screened_scorer.summarize(updates), np.ones(n, bool),
                                                       screened_scorer.reference_row(reference)).stats)  # fmt: skip
    kept_out = a.details.get("screened")
    if kept_out is None:  # no reference used, or one against every paid update: the step is the unscreened one
        assert (a.aggregate is None) == (b.aggregate is None)
        assert a.aggregate is None or a.aggregate.tobytes() == b.aggregate.tobytes()
        return
    assert screen is not None and not (kept_out & ~screen).any()
    assert not a.admitted[kept_out].any() and not a.weights[kept_out].any()
    summaries = screened_scorer.summarize(updates)
    res = screened_scorer.evaluate(summaries, np.ones(n, bool), screened_scorer.reference_row(reference))
    absent = plain.aggregate_paid(
        updates, ~kept_out, res.scores, unpaid_by_reference=res.stats["ref_excluded"],
        log_norms=summaries[:, 16],
    )  # fmt: skip
    assert absent.step is not None and a.aggregate is not None
    assert a.aggregate.tobytes() == absent.step.tobytes()


def first_round(tmp_path: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet(0.5) shards, 10 trainers, the last 4 sign-flippers, first round (digits, 2 epochs of SGD at lr 0.5,
    as ``test_scoring_reference``): the updates and the owner's reference (its update on its validation data)."""
    paths = partition_digits(10, "dirichlet", alpha=0.5, seed=seed, out_dir=tmp_path / str(seed))
    shards = [load_npz(p) for p in paths]
    state = build_model("mlp", seed).state_dict()
    attackers = dict.fromkeys(range(6, 10), Attack.SIGN_FLIP)
    ru = collect_updates("mlp", state, shards, attackers, epochs=2, lr=0.5, batch_size=32, seed=seed * 1000)
    validation = load_npz(tmp_path / str(seed) / VALIDATION_FILE)
    reference = state_to_vector(train_local("mlp", state, validation, 2, 0.5, 32, seed=seed * 1000 + 999))
    return ru.updates, reference


def test_dirichlet_sign_flippers_in_the_step_are_screened_out_and_pay_does_not_move(tmp_path: Path) -> None:
    """Seeds 0-3 (K = 64): the unscreened step takes 4 flipper updates (paid by the rule: the reference may not
    unpay a flipper as typical as the median), the screened one 1 (its row at cosine -0.18 with the reference, above
    the bar); no honest update is screened, and everyone is paid as without the screen."""
    in_before, in_after = 0, 0
    for seed in range(4):
        updates, reference = first_round(tmp_path, seed)
        screened = GramScorer(sketch_dim=64, seed=seed, weighting="equal").run_round(updates, reference=reference)
        plain = GramScorer(sketch_dim=64, seed=seed, weighting="equal", reference_bar=None)
        before = plain.run_round(updates, reference=reference)
        assert screened.details["ref_ok"]
        assert screened.scores.tolist() == before.scores.tolist() and screened.flags.tolist() == before.flags.tolist()
        out = screened.details.get("screened", np.zeros(10, dtype=bool))
        assert not out[:6].any()
        in_before += int((before.weights[6:] > 0).sum())
        in_after += int((screened.weights[6:] > 0).sum())
    assert (in_before, in_after) == (4, 1)


def test_score_round_leaves_a_paid_flipper_out_of_the_model_and_pays_it(tmp_path: Path) -> None:
    """Seed 1's first round through ``score_round`` (what the aggregator pays and builds the model with, and what
    ``marketplace audit`` recomputes): flipper 8 is paid, its row at cosine -0.38 with the owner's reference, so its
    update is out of the new model; its pay is the rule's."""
    seed, k, n = 1, 64, 10
    updates, reference = first_round(tmp_path, seed)
    scorer = GramScorer(sketch_dim=k, seed=seed, weighting="equal")
    rows, ref_row = scorer.summarize(updates), scorer.reference_row(reference)
    trainers = [f"0x{i:040x}" for i in range(n)]
    inputs = RoundInputs(1, 0, seed, k, trainers, {}, [], updates, rows, np.ones(n, dtype=bool), {})
    scored = score_round(inputs, reference=ref_row)
    assert scored.chain_scores[8] > 0 and scored.screened[8] and not any(scored.screened[:6])
    plain = GramScorer(sketch_dim=k, seed=seed, weighting="equal", reference_bar=None)
    res = plain.evaluate(rows, np.ones(n, bool), ref_row)
    assert scored.chain_scores == [int(s) for s in res.scores]
    unscreened = plain.aggregate_paid(
        updates, np.ones(n, bool), res.scores, unpaid_by_reference=res.stats["ref_excluded"], log_norms=rows[:, k]
    )
    assert unscreened.step is not None and unscreened.weights[8] > 0  # without the screen it was in the step
    start = np.zeros(updates.shape[1], dtype=np.float32)
    honest = updates[:6].astype(np.float64).mean(axis=0)

    def cos(v: np.ndarray) -> float:
        return float(v.astype(np.float64) @ honest / np.linalg.norm(v) / np.linalg.norm(honest))

    screened_model, unscreened_model = new_model(start, scored), start + unscreened.step
    assert cos(screened_model) > cos(unscreened_model) + 0.05  # 1.00 against 0.90
