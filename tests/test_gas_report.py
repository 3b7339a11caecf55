"""Gas used by create, join, submit and finalize for N = 4, 16, 64 trainers (printed at the end of
the test run and written to reports/gas.md), with batched vs per-trainer reliability updates."""

from __future__ import annotations

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
        assert 0 < row.submit_avg < row.join_last
    # Fixed costs are shared: finalizing costs less per trainer as N grows, and batching saves more.
    assert by_n[4].finalize_per_trainer > by_n[16].finalize_per_trainer > by_n[64].finalize_per_trainer
    assert by_n[64].batching_saving > by_n[4].batching_saving > 0.2
    assert REPORT.with_suffix(".md").read_text().count("\n|") >= 4
