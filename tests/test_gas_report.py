"""Gas per trainer per round by component for N = 4, 16, 32, the contracts before issue 16's gas work beside
today's (printed at the end of the test run and written to reports/gas.md), and what batching the reliability
updates saves. Gas is deterministic: these are exact checks, not timings."""

from __future__ import annotations

import json
from pathlib import Path

from bench.gas import NEW, OLD, PARTS, TX_GAS_CAP, run, write

REPORT = Path(__file__).resolve().parent.parent / "reports" / "gas.json"


def test_gas_report_old_beside_new_for_4_16_32_trainers() -> None:
    rows = run([4, 16, 32], breakdown_at=16)
    write(rows, REPORT)
    by = {(r.impl, r.trainers): r for r in rows}
    for row in rows:
        assert row.largest_tx < TX_GAS_CAP, f"a step with N={row.trainers} would not fit in one transaction"
        # A submission is two transactions (commit-reveal), each cheaper than joining.
        assert 0 < max(row.commit) < row.join and 0 < max(row.reveal) < row.join
        assert row.later_round < row.per_round  # the first round, the join and the withdrawal cost more
    for impl in (OLD, NEW):
        small, large = by[(impl, 4)], by[(impl, 32)]
        # A trainer's commit and reveal do not depend on how many trainers the project has (no loop over them).
        for step in ("commit", "reveal"):
            assert getattr(large, step)[-1] <= getattr(small, step)[-1] * 1.02, (impl, step)
        # Fixed costs are shared: finalizing costs less per trainer as N grows, and batching saves more.
        assert small.finalize_share > by[(impl, 16)].finalize_share > large.finalize_share
        assert large.saving_later > small.saving_later > 0.2 and large.saving_first > small.saving_first > 0.2
    for n in (4, 16, 32):
        old, new = by[(OLD, n)], by[(NEW, n)]
        # Every part of a trainer's round is cheaper than before, and so is the whole.
        assert new.commit_mean < old.commit_mean and new.reveal_mean < old.reveal_mean, n
        assert new.finalize_share < old.finalize_share and new.later_round < old.later_round, n
        assert new.per_round < 0.85 * old.per_round, n
        # A reveal inside the aggregator's revealBatch costs under half of a trainer's own revealUpdate from 16
        # trainers on (at 4, a quarter of the batch's 21k base fee is still 5k per trainer).
        assert old.reveal_batched is None and new.reveal_batched is not None, n
        assert new.reveal_batched < (0.6 if n == 4 else 0.5) * new.reveal[-1], n
        # So does a commit inside its commitBatch (a signature check instead of a transaction's 21k), and a later
        # round run by both batches is cheaper than the trainers' own transactions.
        assert old.commit_batched is None and new.commit_batched is not None and new.later_batched is not None, n
        assert new.commit_batched < (0.8 if n == 4 else 0.65) * new.commit[-1], n
        assert new.later_batched < new.later_round, n
    # Issue 16: one batched recordRound is at least 75 % cheaper per trainer than one call per trainer in every
    # round after a project's first, from 16 trainers on (the old registry: 66 % and 70 %).
    assert by[(NEW, 16)].saving_later >= 0.75 and by[(NEW, 32)].saving_later >= 0.75
    assert by[(OLD, 16)].saving_later < 0.75
    # The breakdown accounts for every unit of gas of the traced finalization.
    traced = by[(NEW, 16)].breakdown
    assert set(traced) == {"commit", "reveal", "finalize"} and all(set(p) == set(PARTS) for p in traced.values())
    assert sum(traced["finalize"].values()) == by[(NEW, 16)].finalize[-1]
    saved = json.loads(REPORT.read_text())
    assert [(r["impl"], r["trainers"], r["per_round"]) for r in saved] == [
        (r.impl, r.trainers, r.per_round) for r in rows
    ]
    table = REPORT.with_suffix(".md").read_text()
    assert (
        "| join / R | commit | batched commit | reveal | batched reveal | finalize / N | withdraw / R | per round |"
        in table
    )
    assert table.count("| 16 | new |") == 2  # in the per-trainer table and in the batching table
