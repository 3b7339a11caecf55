"""Three ways to prove the median of every column of an (n, n) matrix, for their row counts:

- :class:`BatcherMedian`: the live circuit's way (a Batcher network of ReLU comparators, then the
  selection weights; ``O(n log^2 n)`` comparators per column);
- :class:`TopKMedian`: ezkl's native sort (ONNX TopK): the prover supplies the sorted column, the
  circuit checks it is a permutation of the column (shuffle argument) and ascending (``n - 1``
  comparisons), then the same selection;
- :class:`RankCheckMedian`: the prover supplies the two order statistics ``a`` (rank lo) and ``b``
  (rank hi) of every column as one more input; the circuit counts, per column, the entries below
  and not above each (``4 n`` comparisons) and outputs ``ok = 1`` iff every count fits its rank:
  ``2 #{y < a} <= c - 1``, ``2 #{y <= a} >= c``, ``2 #{y < b} <= c``, ``2 #{y <= b} >= c + 1``
  with ``c`` the number of entries that count (the rest are padded above every value). These pin
  ``a`` and ``b`` to the order statistics exactly (``#{y < a} <= r < #{y <= a}`` holds for the
  value of rank ``r`` and no other), so membership needs no separate check. ezkl has no
  assertion op: the verifier must require the public output ``ok`` to be 1.

``python -m research.zk_speed.median 8 16`` prints each one's model rows (private inputs, so the
Poseidon module does not hide them) and checks the three give the same medians on random columns
(the rank check with honest hints, and ``ok = 0`` with a hint one unit off).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import ezkl
import numpy as np
import torch
from torch import nn

from marketplace.adapters.ezkl.keys import compile_circuit, run_args
from marketplace.rule.networks import batcher_layers
from research.zk_speed.legacy import median_weights  # the dense (2n+2, n) form the old circuit used

BIG = 4.0


class _Median(nn.Module):
    """Inputs: ``n`` rows (1, n) of the matrix, then (1, 2n + 1): the count ``c`` of entries that
    count in every column (the rest are padded with ``BIG``), then the hints (ignored but by
    :class:`RankCheckMedian`). Outputs: the medians (1, n) and ``ok`` (1, 1)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.register_buffer("steps", torch.arange(2 * n + 2, dtype=torch.float32).reshape(1, -1) - 0.5)
        self.register_buffer("sel", torch.tensor(median_weights(n), dtype=torch.float32))

    def _sorted(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.cat(inputs[: self.n], dim=0)
        extra = inputs[self.n]
        count = extra[:, :1]
        t = (count > self.steps).float()
        med = (t @ self.sel) @ self._sorted(y)
        return med, (count > -1.0).float()


class BatcherMedian(_Median):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.layers = batcher_layers(n)

    def _sorted(self, y: torch.Tensor) -> torch.Tensor:
        n = self.n
        for layer in self.layers:
            a = y[[i for i, _ in layer]]
            b = y[[j for _, j in layer]]
            d = torch.relu(a - b)
            back = list(range(n))
            for p, (i, j) in enumerate(layer):
                back[i] = n + p
                back[j] = n + len(layer) + p
            y = torch.cat([y, a - d, b + d], dim=0)[back]
        return y


class TopKMedian(_Median):
    def _sorted(self, y: torch.Tensor) -> torch.Tensor:
        return torch.topk(y, self.n, dim=0, largest=False, sorted=True).values


class RankCheckMedian(_Median):
    """Median ``(a + b) / 2`` from prover-supplied order statistics, checked by counts."""

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        y = torch.cat(inputs[:n], dim=0)  # (n, n): column j is one set
        extra = inputs[n]
        c = extra[:, :1]  # (1, 1) entries that count per column
        a = extra[:, 1 : n + 1]  # (1, n) claimed rank (c-1)//2
        b = extra[:, n + 1 : 2 * n + 1]  # (1, n) claimed rank c//2
        ones = torch.ones(1, n)
        lt_a = ones @ (y < a).float()  # (1, n) counts per column
        le_a = ones @ (y <= a).float()
        lt_b = ones @ (y < b).float()
        le_b = ones @ (y <= b).float()
        ok = (
            (lt_a + lt_a <= c - 1.0).float()
            * (le_a + le_a >= c).float()
            * (lt_b + lt_b <= c).float()
            * (le_b + le_b >= c + 1.0).float()
        )
        all_ok = (ok @ torch.ones(n, 1) > n - 0.5).float()
        return (a + b) * 0.5, all_ok


MODULES: dict[str, type[_Median]] = {"batcher": BatcherMedian, "topk": TopKMedian, "rank": RankCheckMedian}


def _inputs(rng: np.random.Generator, n: int, c: int, shift: int = 0) -> tuple[list[list[float]], np.ndarray]:
    """Rows of a random matrix on the 2**-13 grid (entries beyond ``c`` in each column padded with
    BIG), the count and honest hints (``shift`` moves the first hint by that many units)."""
    y = np.round(rng.uniform(-1, 1, size=(n, n)) * 64) / 64  # coarse grid: ties happen
    y[c:] = BIG
    s = np.sort(y, axis=0)
    lo, hi = s[max(c - 1, 0) // 2], s[c // 2]
    a = lo.copy()
    a[0] += shift / 8192
    med = (lo + hi) / 2
    extra = [float(c), *map(float, a), *map(float, hi)]
    return [[float(v) for v in row] for row in y] + [extra], med


def measure(n: int, rounds: int = 4) -> list[dict[str, object]]:
    """Model rows of each way and whether its witness gives the medians (and ``ok``)."""
    out = []
    for name, cls in MODULES.items():
        with tempfile.TemporaryDirectory(prefix="zk-median-") as tmp:
            d = Path(tmp)
            _export(cls(n), n, d / "m.onnx")
            ra = run_args()
            ra.input_visibility = "private"
            if not ezkl.gen_settings(str(d / "m.onnx"), str(d / "s.json"), py_run_args=ra):
                raise RuntimeError("gen_settings failed")
            settings = json.loads((d / "s.json").read_text())
            compile_circuit(d / "m.onnx", d / "m.ezkl", d / "s.json")
            rng = np.random.default_rng(0)
            good = 0
            ok_on_bad = None
            for r in range(rounds):
                data, med = _inputs(rng, n, c=n - (r % 3))
                (d / "in.json").write_text(json.dumps({"input_data": data}))
                ezkl.gen_witness(str(d / "in.json"), str(d / "m.ezkl"), str(d / "w.json"))
                w = json.loads((d / "w.json").read_text())
                scale = 2.0 ** settings["model_output_scales"][0]
                got = np.array([ezkl.felt_to_int(v) for v in w["outputs"][0]]) / scale
                ok = ezkl.felt_to_int(w["outputs"][1][0])
                good += int(np.allclose(got, med, atol=0.5 / 8192) and ok == 1)
            if name == "rank":  # a hint one unit off must give ok = 0
                data, _ = _inputs(np.random.default_rng(1), n, c=n, shift=1)
                (d / "in.json").write_text(json.dumps({"input_data": data}))
                ezkl.gen_witness(str(d / "in.json"), str(d / "m.ezkl"), str(d / "w.json"))
                ok_on_bad = ezkl.felt_to_int(json.loads((d / "w.json").read_text())["outputs"][1][0])
            out.append({"way": name, "n": n, "model_rows": int(settings["num_rows"]),
                        "assignments": int(settings["total_assignments"]),
                        "shuffle_cells": int(settings.get("total_shuffle_col_size", 0)),
                        "witness_medians_right": f"{good}/{rounds}", "ok_with_a_wrong_hint": ok_on_bad})  # fmt: skip
    return out


def _export(module: nn.Module, n: int, path: Path) -> None:
    """The module's ONNX with ``n`` rows (1, n) and one (1, 2n + 1) input (count and hints)."""
    zeros = [torch.zeros(1, n) for _ in range(n)] + [torch.zeros(1, 2 * n + 1)]
    torch.onnx.export(
        module.eval(), tuple(zeros), str(path), dynamo=False, opset_version=17,
        input_names=[f"row{i}" for i in range(n)] + ["extra"], output_names=["med", "ok"],
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="+", type=int)
    args = ap.parse_args()
    for n in args.sizes:
        for row in measure(n):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
