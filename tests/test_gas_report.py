"""Gas used by create, join, commit, reveal and finalize for N = 4, 16, 64 trainers (printed at the end
of the test run and written to reports/gas.md), with batched vs per-trainer reliability updates."""

from __future__ import annotations

import json
from pathlib import Path

from bench.gas import TX_GAS_CAP, run, write

REPORT = Path(__file__).resolve().parent.parent / "reports" / "gas.json"


def test_gas_report_for_4_16_64_trainers() -> None:
    rows = run([4, 16, 64])
    write(rows, REPORT)
    by_n = {r.trainers: r for r in rows}
    for row in rows:
        assert row.largest_tx < TX_GAS_CAP, f"a step with N={row.trainers} would not fit in one transaction"
        assert row.reliability_batched < row.reliability_per_trainer
        # A submission is two transactions (commit-reveal), each cheaper than joining.
        assert 0 < row.commit_avg < row.join_last and 0 < row.reveal_avg < row.join_last
        assert row.submit_avg == row.commit_avg + row.reveal_avg
    # A trainer's commit and reveal do not depend on how many trainers the project has (no loop over them).
    for step in ("commit_avg", "reveal_avg"):
        assert getattr(by_n[64], step) <= getattr(by_n[4], step) * 1.02, step
    # Fixed costs are shared: finalizing costs less per trainer as N grows, and batching saves more.
    assert by_n[4].finalize_per_trainer > by_n[16].finalize_per_trainer > by_n[64].finalize_per_trainer
    assert by_n[64].batching_saving > by_n[4].batching_saving > 0.2
    saved = json.loads(REPORT.read_text())
    assert [(r["commit_avg"], r["reveal_avg"], r["submit_avg"]) for r in saved] == [
        (r.commit_avg, r.reveal_avg, r.submit_avg) for r in rows
    ]
    table = REPORT.with_suffix(".md").read_text()
    assert "| commit | reveal | commit + reveal |" in table and table.count("\n|") >= 4
