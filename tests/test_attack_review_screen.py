# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
"""Attack review of the model step screened by the owner's reference (:func:`marketplace.rule.scorer.reference_screen`:
when the rule used the revealed reference, every update whose committed row's cosine with the reference row is at
most ``REFERENCE_STEP_BAR`` = -0.3 stays out of the step, pay unchanged), as an outside attacker with README.md,
docs/security.md and the code. Every participant may deviate; each test is one attack, and asserts what holds.

- An owner that knows every row can aim the screen at a paid trainer above the median typicality, one its reference
  cannot unpay: a reference the rule uses, that moves nobody's integer score, and keeps that trainer's update out of
  the model (Dirichlet(0.5), K = 32, seeds 0-5, first round: 11 of the 29 such trainers). New power over the model,
  none over pay: the round's scores and flags are the rule's without a reference.
- Later rounds train from the screened model. Aimed at one trainer whenever it can for 8 rounds (11 pairs,
  ``bench/screen_targeting.py``), the target's mean share after the first round was 9.20 % of the budget against
  9.09 % with the honest owner (per pair -2.9 to +1.4 points: trajectories part both ways), flagged (so slashed, the
  owner's gain) in 0 of 88 rounds either way (15 rounds, 5 pairs: 7.92 % against 7.55 %, 0 flags). Not exploitable
  for money.
- The screen reads the committed sketch. A trainer whose row is honest and whose full update adds, in the sketch's
  null space, 30 times its norm against the owner's reference (cosine -0.99 with the reference update) is paid and
  not screened; the cap (``PAID_CLIP``) bounds its term to ``MAX_STEP * 1.5 * 2**l / |P|`` (a third of the honest
  median norm, against the reference; the step's cosine with the reference 0.96 against 0.98). A limit of the
  screen (it cannot read what the sketch does not see), bounded as before it; the plain flip is caught.
- Screened trainers leave the paid caps' median and the lengthening cap as if absent. A coalition whose paid rows
  point against the reference thins the step this way and keeps its pay (the rule's for those rows, screen or not),
  but thinning moves a colluder's hidden poison less than staying in the step and carrying it (0.56 against 0.93
  honest median norms here; 0.44 with the two in the step, honest).
- The proof document's ``screened`` list is the aggregator's word. The web page showed it for any paid member, also
  in a round whose owner revealed no reference, where it is false by the chain's own record: fixed, the page and the
  API show it only when ``referenceOf`` says the reference was revealed. Within such a round it is still the
  aggregator's word (``marketplace audit`` prints the recomputed set and does not read the document).
- Determinism: the bar is compared on integers (exact, any magnitude the rows can give), the screen follows the
  trainer, not the arrival slot, and the screened step is the same bits whatever the arrival order.
- Edge cases: a reference the rule ignored screens nothing (the step is the no-reference step, bit for bit); every
  paid update screened: nothing is; one paid update left: the step is its own, nothing admitted; a flagged update is
  screened as a candidate (named, not admitted, flag and zero pay unchanged); rejected updates and rows paid without
  their update are never named.
"""

from __future__ import annotations

import json

import numpy as np
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench.screen_targeting import K, dirichlet_data, round_inputs, targeting_reference, trajectory
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.fl.models import build_model, num_params, state_to_vector
from marketplace.fl.train import train_local
from marketplace.protocol.commitment import commit_update, sanitize_rows
from marketplace.protocol.constants import SCALE
from marketplace.round.collect import RoundInputs
from marketplace.round.prove import HashProver
from marketplace.round.reference import commit_reference, reveal_reference
from marketplace.round.score import score_round
from marketplace.rule.aggregate import (
    MAX_STEP,
    PAID_CLIP,
    PAID_LOG_SPREAD,
    REFERENCE_STEP_BAR,
    agreeing_clipped_mean,
    committed_norm_caps,
    paid_log_norms,
)
from marketplace.rule.scorer import GramScorer, reference_screen
from research.simulate import collect_updates
from tests.market_fixtures import Actors
from tests.small_rounds import offline_round
from tests.test_attack_review_agreeing import _invisible, _unit
from tests.update_sources import agreeing_updates
from tests.web_fixtures import (  # noqa: F401
    client,
    finalize,
    ipfs,
    ipfs_node,
    proof_document,
    web_app,
    web_settings,
)

SEED = 7


def _inputs(
    updates: list[np.ndarray] | np.ndarray, seed: int = SEED, k: int = K, arrival: list[int] | None = None
) -> RoundInputs:
    """:func:`offline_round` of these updates (this file's sketch seed and width by default)."""
    return offline_round(updates, seed, k, arrival)


def _reference_row(update: np.ndarray, seed: int = SEED, k: int = K) -> np.ndarray:
    """The owner's committed row of its reference update, as a trainer's row is made."""
    return commit_update(np.asarray(update, dtype=np.float32), seed, k)[0]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --------------------------------------------------------------------------- the owner aims the screen


def _first_round(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round 0 of ``bench/screen_targeting.py``'s Dirichlet task: the updates, their sanitised committed rows and the
    owner's honest reference row (its update on its validation data)."""
    shards, validation, _ = dirichlet_data(seed)
    start = build_model("mlp", seed).state_dict()
    updates = collect_updates("mlp", start, shards, {}, 2, 0.5, 32, seed=seed * 1000).updates
    own = train_local("mlp", start, validation, 2, 0.5, 32, seed=seed * 1000 * 1000 + 999)
    scorer = GramScorer(sketch_dim=K, seed=seed, weighting="equal")
    rows, _ = sanitize_rows(scorer.summarize(updates))
    return updates, rows, scorer.reference_row(state_to_vector(own))


def test_an_owner_that_knows_the_rows_screens_an_above_median_trainer_and_moves_no_pay() -> None:
    """Seed 5, trainer 3: paid by the rule, its median cosine to the others at least the median (so no reference
    may unpay it). The owner's honest reference keeps it in the model; a reference aimed at it (a pure screen,
    :func:`~bench.screen_targeting.targeting_reference`) keeps it out, and every trainer's integer score and flag is
    the rule's without any reference: the screen gives the owner the model, not the money."""
    seed, target = 5, 3
    updates, rows, honest_row = _first_round(seed)
    scorer = GramScorer(sketch_dim=K, seed=seed, weighting="equal")
    plain = scorer.evaluate(rows, np.ones(len(rows), dtype=bool))
    assert plain.scores[target] > 0 and plain.med_cos[target] >= int(plain.stats["M"])
    aimed = targeting_reference(scorer, rows, honest_row, target)
    assert aimed is not None
    inputs = round_inputs(seed, updates, rows)
    honest, targeted = score_round(inputs, reference=honest_row), score_round(inputs, reference=aimed)
    assert not honest.screened[target] and targeted.screened[target]
    assert targeted.reference is not None and targeted.reference.used
    assert targeted.chain_scores == [int(s) for s in plain.scores] and targeted.chain_scores[target] > 0
    assert targeted.flags == [bool(f) for f in plain.flags]
    assert honest.aggregate is not None and targeted.aggregate is not None
    assert honest.aggregate.tobytes() != targeted.aggregate.tobytes()


def test_aiming_the_screen_at_a_trainer_round_after_round_gets_it_flagged_no_more() -> None:
    """Four rounds of seed 5 with trainer 3 screened whenever the owner can: it is screened, and flagged (slashed:
    the only way the owner gains from the target) in no round, as with the honest owner. The shares, in both runs,
    are ``bench/screen_targeting.py``'s measurement (module doc)."""
    honest = trajectory(5, 4, 3, targeting=False)
    aimed = trajectory(5, 4, 3, targeting=True)
    assert any(aimed.screened) and not any(honest.screened)
    assert not any(aimed.flagged) and not any(honest.flagged)
    assert all(s > 0 for s in aimed.shares)  # paid every round


# --------------------------------------------------------------------------- the sketch / full update gap


def test_a_flip_hidden_from_the_sketch_passes_the_screen_and_enters_at_most_its_cap() -> None:
    """Six agreeing trainers and the owner's reference near them; trainer 6 commits an honest row and sends its
    update plus 30 times its norm of the owner's reference direction, negated, in the sketch's null space (the seed
    is public). Its full update points against the reference update (cosine -0.99), its row does not (+0.87): it is
    paid and not screened, and enters the step clipped, its term ``stretch * PAID_CLIP * 2**l / |P|`` long (0.18,
    a third of the honest median norm, nearly all of it against the reference; in its place its honest update adds
    0.09 towards it): the step's cosine with the reference is 0.96 (0.98). The plain flip of the same update is
    caught (unpaid, and screened as a candidate). The screen reads rows; ``PAID_CLIP`` is what bounds the rest."""
    honest = agreeing_updates(7, seed=61)
    reference = np.mean(honest[:6], axis=0) + 0.002 * np.random.default_rng(62).normal(size=num_params("mlp"))
    ref_row, r_hat = _reference_row(reference), _unit(reference.astype(np.float64))
    against = -_unit(_invisible(reference.astype(np.float64), SEED, K))
    hidden = (honest[6] + 30 * float(np.linalg.norm(honest[6])) * against).astype(np.float32)
    assert _cos(hidden, reference) < -0.95
    scorer = GramScorer(sketch_dim=K, seed=SEED, weighting="equal")

    def term(update: np.ndarray) -> tuple[float, float, float]:
        """Trainer 6's term in the screened step: its length, its length along the reference (negative: against),
        and its cap's bound ``MAX_STEP * cap / |P|``; checked against ``score_round``'s step bit for bit."""
        inputs = _inputs([*honest[:6], update])
        scored = score_round(inputs, reference=ref_row)
        res = scorer.evaluate(scored.rows, inputs.valid, ref_row)
        step = scorer.aggregate_paid(
            inputs.updates, inputs.has_update, res.scores, unpaid_by_reference=res.stats["ref_excluded"],
            log_norms=scored.rows[:, K], screened=reference_screen(res.stats),
        )  # fmt: skip
        assert step.step is not None and scored.aggregate is not None
        assert step.step.tobytes() == scored.aggregate.tobytes()
        paid = np.array(scored.chain_scores) > 0
        cap = committed_norm_caps(paid_log_norms(scored.rows[:, K], paid))[6]
        mine = step.stretch * step.weights[6] * inputs.updates[6].astype(np.float64)
        return float(np.linalg.norm(mine)), float(mine @ r_hat), MAX_STEP * cap / int(paid.sum())

    scored = score_round(_inputs([*honest[:6], hidden]), reference=ref_row)
    assert scored.reference is not None and scored.reference.used
    assert scored.chain_scores[6] > 0 and not scored.screened[6] and scored.clipped[6]
    length, along, bound = term(hidden)
    assert length <= bound * (1 + 1e-9) and along < -0.95 * length
    assert -along < 0.5 * float(np.median(np.linalg.norm(np.stack(honest[:6]), axis=1)))
    assert term(honest[6])[1] > 0
    assert scored.aggregate is not None and _cos(scored.aggregate, reference) > 0.9
    flipped = score_round(_inputs([*honest[:6], -honest[6]]), reference=ref_row)
    assert flipped.chain_scores[6] == 0 and flipped.screened[6]


# --------------------------------------------------------------------------- caps and the step's cap


def test_a_coalition_that_gets_screened_moves_a_hidden_poison_less_than_one_that_stays_in_the_step() -> None:
    """Six honest paid updates and a coalition of three paid ones, the colluder (trainer 6: 1.5 times an honest
    update) carrying 40 times its norm of a poison its sketch does not see. Screened, the two others (7, 8) leave the
    step (the caps' median, the median norm, the lengthening cap) as if absent, bit for bit, and keep their pay; the
    colluder's poison then moves the step by 0.56 honest median norms (0.44 with the two in the step, honest), against
    0.93 when they stay in the step carrying the poison at their own caps: thinning the step is the weaker use of the
    coalition, and stays within the caps' bound for the updates left
    (``MAX_STEP * PAID_CLIP * 2**(m + PAID_LOG_SPREAD) / |P|``)."""
    honest = agreeing_updates(9, seed=71)
    poison = _unit(_invisible(np.random.default_rng(72).normal(size=num_params("mlp")), SEED, K))
    colluder = (1.5 * honest[6] + 40 * float(np.linalg.norm(honest[6])) * poison).astype(np.float32)
    carriers = [(h + 40 * float(np.linalg.norm(h)) * poison).astype(np.float32) for h in honest[7:]]
    scorer = GramScorer(sketch_dim=K, seed=SEED, weighting="equal")
    median = float(np.median(np.linalg.norm(np.stack(honest[:6]), axis=1)))

    def step_of(updates: list[np.ndarray], screened: np.ndarray | None) -> tuple[float, bytes]:
        """The step's length along the poison (honest median norms) and its bits."""
        inputs = _inputs(updates)
        res = scorer.evaluate(inputs.rows, inputs.valid)
        assert (res.scores > 0).all()  # everybody paid: the coalition is paid as the rule says, screened or not
        step = scorer.aggregate_paid(inputs.updates, inputs.has_update, res.scores, log_norms=inputs.rows[:, K],
                                     screened=screened)  # fmt: skip
        assert step.step is not None
        return float(step.step.astype(np.float64) @ poison) / median, step.step.tobytes()

    thinned, thinned_bits = step_of([*honest[:6], colluder, *carriers], np.arange(9) >= 7)
    absent, absent_bits = step_of([*honest[:6], colluder], None)
    carried, _ = step_of([*honest[:6], colluder, *carriers], None)
    in_step, _ = step_of([*honest[:6], colluder, *honest[7:]], None)
    assert thinned_bits == absent_bits and thinned == absent
    assert 0 < in_step < thinned < carried
    left = _inputs([*honest[:6], colluder])
    m = float(np.sort(left.rows[:, K])[(7 - 1) // 2])  # the paid lower median log-norm of the updates left
    assert thinned * median <= MAX_STEP * PAID_CLIP * 2.0 ** (m + PAID_LOG_SPREAD) / 7


# --------------------------------------------------------------------------- the proof document and the web


def test_the_page_shows_no_screened_trainer_in_a_round_whose_owner_revealed_no_reference(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    """The aggregator's proof document names trainer 1 as screened in three rounds: without a reference (round 0),
    with one committed and not revealed (round 1), and with one revealed (round 2). Only a revealed reference can
    screen: the round's JSON and page name nobody in rounds 0 and 1 (they did, as the aggregator's word, before the
    fix) and trainer 1 in round 2."""
    pid = actors.training_project(3, rounds=3)
    members = actors.owner.trainers(pid)
    scores, flags = [500_000, 300_000, 200_000], [False, False, False]
    row = commit_update(np.random.default_rng(5).normal(size=300), actors.owner.sketch_seed(pid),
                        actors.owner.sketch_width(pid))[0]  # fmt: skip
    for round_ in range(3):
        sealed = commit_reference(actors.owner, pid, round_, row) if round_ else None
        actors.submit_all(pid, round_)
        if round_ == 1:
            actors.chain.increase_time(actors.owner.round_deadlines(pid).reveal - actors.chain.timestamp() + 1)
        if round_ == 2 and sealed is not None:
            reveal_reference(actors.owner, pid, round_, sealed, HashProver())
        doc = proof_document(actors, pid, round_, scores, flags, 0.5).model_copy(update={"screened": [members[1]]})
        finalize(actors, ipfs, pid, round_, scores, flags, 0.5, document=doc.to_bytes())
    for round_, expected in ((0, []), (1, []), (2, [members[1]])):
        api = client.get(f"/api/projects/{pid}/rounds/{round_}").json()
        assert api["screened"] == expected, (round_, api)
        assert [t["screened"] for t in api["trainers"]] == [m in expected for m in members]
        html = client.get(f"/projects/{pid}/rounds/{round_}").text
        assert ('id="screened-trainers"' in html) == bool(expected), round_
        assert html.count('data-screened="true"') == len(expected)
    raw = json.loads(ipfs.cat(client.get(f"/api/projects/{pid}/rounds/0").json()["proof_cid"]))
    assert raw["screened"] == [members[1]]  # the document did say it: the page does not repeat it


# --------------------------------------------------------------------------- determinism


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, st.integers(1, 12), elements=st.integers(-(2**40), 2**40)))
def test_the_bar_is_an_exact_integer_comparison_at_any_magnitude(cos: np.ndarray) -> None:
    """``g <= -0.3 * 2**13`` exactly (``10 g <= -3 * 2**13`` in integers) for every value the rule can give, and far
    beyond: no float rounding of ``g`` moves a trainer across the bar on any machine."""
    screen = reference_screen({"ref_ok": np.array(True), "ref_cos": cos})
    assert screen is not None
    assert screen.tolist() == [10 * int(g) <= -3 * (1 << SCALE) for g in cos.tolist()]
    assert REFERENCE_STEP_BAR * 2**SCALE == -2457.6


def test_the_screen_follows_the_trainer_not_the_arrival_slot() -> None:
    """Two agreeing trainers' plain flips among five agreeing ones, committed in trainer order and in reverse: the
    same trainers are screened and the step is the same bits (the rule's statistics map back to trainer order)."""
    honest = agreeing_updates(6, seed=81)
    reference = np.mean(honest[:5], axis=0)
    updates = [*honest[:5], -honest[5], -honest[0] * 1.1]
    ref_row = _reference_row(reference)
    forward = score_round(_inputs(updates), reference=ref_row)
    backward = score_round(_inputs(updates, arrival=list(range(len(updates)))[::-1]), reference=ref_row)
    assert forward.screened == backward.screened and forward.chain_scores == backward.chain_scores
    assert forward.screened[5] and forward.screened[6] and not any(forward.screened[:5])
    assert forward.aggregate is not None and backward.aggregate is not None
    assert forward.aggregate.tobytes() == backward.aggregate.tobytes()


# --------------------------------------------------------------------------- edge cases


def test_a_reference_the_rule_ignored_screens_nothing_and_the_step_is_the_no_reference_step() -> None:
    """An owner's reference against most trainers (the honest mean negated) is revealed and ignored by the rule: it
    screens nobody although every row points against it, and the step is the rule's without a reference, bit for
    bit."""
    honest = agreeing_updates(6, seed=91)
    inputs = _inputs(honest)
    ignored = score_round(inputs, reference=_reference_row(-np.mean(honest, axis=0)))
    without = score_round(inputs)
    assert ignored.reference is not None and not ignored.reference.used
    assert not any(ignored.screened)
    assert ignored.aggregate is not None and without.aggregate is not None
    assert ignored.aggregate.tobytes() == without.aggregate.tobytes()


def test_every_paid_update_screened_screens_nothing_and_one_left_is_the_step() -> None:
    """With every paid update screened the step is the unscreened one, bit for bit, and nobody is named; with one
    paid update left it is that update alone (clipped to its cap, lengthened at most ``step_cap``), nothing admitted
    (no other paid update to agree with), and the rest named."""
    updates = np.stack(agreeing_updates(5, seed=92))
    inputs = _inputs(updates)
    scorer = GramScorer(sketch_dim=K, seed=SEED, weighting="equal")
    res = scorer.evaluate(inputs.rows, inputs.valid)
    scores = np.where(np.arange(5) < 3, res.scores, 0)  # three paid, two unpaid candidates
    plain = scorer.aggregate_paid(updates, inputs.has_update, scores, log_norms=inputs.rows[:, K])
    all_out = scorer.aggregate_paid(updates, inputs.has_update, scores, log_norms=inputs.rows[:, K],
                                    screened=np.array([True, True, True, False, False]))  # fmt: skip
    assert all_out.screened is None and plain.step is not None and all_out.step is not None
    assert all_out.step.tobytes() == plain.step.tobytes()
    one = scorer.aggregate_paid(updates, inputs.has_update, scores, log_norms=inputs.rows[:, K],
                                screened=np.array([False, True, True, True, False]))  # fmt: skip
    assert one.screened is not None and one.screened.tolist() == [False, True, True, True, False]
    assert not one.admitted.any() and one.step is not None
    assert _cos(one.step, updates[0]) > 1 - 1e-6
    alone = agreeing_clipped_mean(updates, np.arange(5) == 0, np.arange(5) == 4)
    assert alone.step is not None and one.step.tobytes() == alone.step.tobytes()


def test_flagged_and_rejected_updates_against_the_reference() -> None:
    """Five agreeing trainers, a boosted flip of a sixth (flagged, its update here: an unpaid candidate) and a
    rejected seventh that pointed against the reference too: the flip is screened and named, not admitted, flagged
    and unpaid as without the screen; the rejected one has no update here and is never named."""
    honest = agreeing_updates(7, seed=93)
    updates = [*honest[:5], -10 * honest[5], -honest[6]]
    inputs = _inputs(updates)
    valid, rows = inputs.valid.copy(), inputs.rows.copy()
    valid[6], rows[6] = False, 0.0
    inputs = RoundInputs(1, 0, SEED, K, inputs.trainers, {}, inputs.commits, inputs.updates, rows, valid,
                         {inputs.trainers[6]: "not the committed update"})  # fmt: skip
    ref_row = _reference_row(np.mean(honest[:5], axis=0))
    scored = score_round(inputs, reference=ref_row)
    plain = GramScorer(sketch_dim=K, seed=SEED, weighting="equal", reference_bar=None).evaluate(rows, valid, ref_row)
    assert scored.reference is not None and scored.reference.used
    assert scored.chain_scores == [int(s) for s in plain.scores]
    assert scored.flags[:6] == [bool(f) for f in plain.flags[:6]]
    assert scored.flags[5] and scored.chain_scores[5] == 0 and scored.screened[5] and not scored.admitted[5]
    assert scored.flags[6] and not scored.screened[6]  # rejected: flagged, never named
    assert not any(scored.screened[:5])


def test_a_row_paid_without_its_update_against_the_reference_is_never_named_nor_in_the_step() -> None:
    """Two clusters of trainers, the owner's reference with the larger (cosines +0.9 and -0.3 to -0.5): trainers 5 and
    7 are paid (typical) and point against it, trainer 6 too but below the median typicality (the reference unpays
    it). Trainer 7 is paid on the row it published in a dispute, its update not here: it is never named and its
    update slot changes nothing; trainer 5 is screened and named; trainer 6 is unpaid by the reference, so no
    candidate, and not named either."""
    rng = np.random.default_rng(3)
    d = num_params("mlp")
    e1, e2 = rng.normal(size=d), rng.normal(size=d)
    mix = [(1, 0), (1, 0), (1, 0), (0.6, 1), (0.6, 1), (0, 1), (0, 1), (0, 1)]
    updates = np.stack([0.01 * (a * e1 + b * e2 + 0.3 * rng.normal(size=d)) for a, b in mix]).astype(np.float32)
    ref_row = _reference_row(0.01 * (e1 - 0.5 * e2))
    full = _inputs(updates)
    published = {full.trainers[7]: "the update did not come in time"}

    def with_slot_7(update: np.ndarray) -> RoundInputs:
        u = updates.copy()
        u[7] = update
        return RoundInputs(1, 0, SEED, K, full.trainers, {}, full.commits, u, full.rows, full.valid, {},
                           published=published)  # fmt: skip

    scored = score_round(with_slot_7(np.zeros_like(updates[7])), reference=ref_row)
    stats = GramScorer(sketch_dim=K, seed=SEED).evaluate(scored.rows, full.valid, ref_row).stats
    cos = np.asarray(stats["ref_cos"]) / 2**SCALE
    assert scored.reference is not None and scored.reference.used
    assert cos[5] <= REFERENCE_STEP_BAR and cos[6] <= REFERENCE_STEP_BAR and cos[7] <= REFERENCE_STEP_BAR
    assert scored.chain_scores[5] > 0 and scored.chain_scores[7] > 0 and scored.chain_scores[6] == 0
    assert scored.reference.unpaid == [6]
    assert scored.screened == [i == 5 for i in range(8)]
    assert not any(scored.admitted)
    other = score_round(with_slot_7(updates[7]), reference=ref_row)
    assert scored.aggregate is not None and other.aggregate is not None
    assert other.aggregate.tobytes() == scored.aggregate.tobytes()
