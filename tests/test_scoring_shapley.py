"""The cheap paying score ranks trainers like exact Shapley on a constructed case.

Case: 8 trainers with 150 digits each; honest trainers 0-5 have 0, 10, 20, 40, 60, 80 %
of their labels randomised, trainer 6 sign-flips, trainer 7 sends a zero update. One round
of 2 local epochs from a fresh MLP. Utility v(S) = -(validation loss) of the global model
plus the equal-weight FedAvg of S. Measured Spearman(cheap, exact Shapley) = 0.970 over all
8 and 0.943 over the 6 honest trainers (seed 0); seeds 1 and 2 give 0.994 / 1.000.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from marketplace.fl.models import build_model
from marketplace.protocol.constants import DEFAULT_SKETCH_WIDTH as SKETCH_DIM
from marketplace.rule.scorer import GramScorer
from research.baselines import exact_shapley, gtg_shapley, leave_one_out, spearman
from research.scenarios import label_noise_shards
from research.simulate import collect_updates
from research.utility import fedavg_utility

REPORTS = Path(__file__).resolve().parent.parent / "reports"
NOISE = [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 0.0, 0.0]


def test_cheap_score_agrees_with_exact_shapley() -> None:
    shards, val = label_noise_shards(NOISE, seed=0)
    state = build_model("mlp", 0).state_dict()
    ru = collect_updates("mlp", state, shards, {6: "sign_flip", 7: "free_rider_zero"}, epochs=2, lr=0.5)
    # The paying rule (the one the circuit proves) on 64-wide sketches, as for an 8-trainer project.
    res = GramScorer(SKETCH_DIM, seed=0, weighting="equal").run_round(ru.updates)
    assert res.flags.tolist() == [False] * 6 + [True, True]
    utility = fedavg_utility("mlp", state, ru.updates, val.x, val.y, metric="neg_loss")
    phi = exact_shapley(utility, 8)
    rho_all = spearman(res.scores, phi)
    rho_honest = spearman(res.scores[:6], phi[:6])
    rho_gtg, rho_loo = spearman(gtg_shapley(utility, 8, seed=0), phi), spearman(leave_one_out(utility, 8), phi)
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "contribution.md").write_text(
        "# Contribution score vs exact Shapley (8 trainers, label noise 0-80%, a sign-flipper, a free rider)\n\n"
        f"| estimator | Spearman vs exact Shapley |\n|---|---:|\n| paying score (Gram, K={SKETCH_DIM}), all | "
        f"{rho_all:.3f} |\n| paying score, honest only | {rho_honest:.3f} |\n| GTG-Shapley | {rho_gtg:.3f} |\n"
        f"| leave-one-out | {rho_loo:.3f} |\n"
    )
    assert rho_all >= 0.9 and rho_honest >= 0.8
    assert phi[6] == phi.min()  # the sign-flipper is the worst by Shapley too
    # reference estimators agree with exact Shapley here
    assert rho_gtg >= 0.9
    assert rho_loo >= 0.7
    assert int(np.argmax(res.scores)) in np.argsort(phi)[-2:]
