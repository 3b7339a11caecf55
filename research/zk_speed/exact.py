"""Check a circuit variant against the paying integer rule on random rounds: ONNX export, settings,
compile and ``ezkl.gen_witness`` only (no keys, no proofs).

    python -m research.zk_speed.exact fast 8x32 16x32 --rounds 20

Prints, per size, how many rounds gave flags and scores equal to
:func:`marketplace.rule.gram.gram_rule_int` (and the first mismatch, if any). The rounds cover the
cases of ``tests/test_zk_gram.py`` (boosted, lazy, duplicates, sign flips, zero updates, absent
slots, non-unit rows inside the box; round 0 is the worst rows inside the box) plus ties: rows
repeated exactly, so sorted columns hold equal values.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import ezkl
import numpy as np
from torch import nn

from marketplace.adapters.ezkl.keys import CircuitKeys, compile_circuit, export_onnx, settings_for
from marketplace.protocol.commitment import committed_rows, quantize
from marketplace.protocol.round_tag import round_tag, tag_input
from marketplace.rule.circuit import GramCircuit, layout_for
from marketplace.rule.gram import gram_rule_int
from research.zk_speed.legacy import GramCircuit as LegacyCircuit
from research.zk_speed.variants import GramFast, GramLean, GramTopK


def _production(n: int, k: int) -> nn.Module:
    """The production circuit of ``n`` slots, with its size's sort (:func:`marketplace.rule.circuit.layout_for`)."""
    return GramCircuit(n, k, sort=layout_for(n).sort)


VARIANTS: dict[str, Callable[[int, int], nn.Module]] = {
    "legacy": LegacyCircuit,  # the circuit before issue 16
    "topk": GramTopK,
    "fast": GramFast,
    "lean": GramLean,
    "tri": partial(GramCircuit, sort="topk"),  # the production circuit with TopK sorts (design: GramTri)
    "tri4": partial(GramCircuit, sort="topk", leaf=4),  # blocks of 4: exercises the block Gram at N = 8
    "tri-batcher": partial(GramCircuit, sort="batcher"),  # no shuffles: for Poseidon-bound sizes
    "production": _production,  # the layout of the size (CIRCUIT_LAYOUTS)
}
TAG = round_tag(31337, "0x" + "12" * 20, 1, 0)


def random_round(rng: np.random.Generator, n: int, k: int, kind: int) -> np.ndarray:
    """Committed rows of one random round of ``n`` slots (``kind`` picks the adversarial case)."""
    base = rng.normal(size=k) * rng.uniform(0, 1.5)
    s = base + rng.normal(size=(n, k)) * rng.uniform(0.2, 1.5)
    s *= np.exp(rng.normal(size=(n, 1)) * 0.3)
    active = rng.random(n) > rng.uniform(0, 0.4)
    if kind == 1:
        s[0] *= 10.0
        s[1] *= 0.01
    elif kind == 2:
        s[3] = s[2]
        s[5] = -s[5]
    elif kind == 3:
        s[4] = 0.0
    elif kind == 5:  # exact ties everywhere: half the slots are copies of two rows
        s[n // 2 :: 2] = s[0]
        s[n // 2 + 1 :: 2] = s[1]
    rows = committed_rows(s, active)
    if kind == 4:  # a non-unit vector inside the box: invalid, flagged
        rows[2, :k] = np.round(np.clip(rows[2, :k] * 1.05, -1, 1) * 8192) / 8192
    return rows


def worst_rows(n: int, k: int) -> np.ndarray:
    """The worst rows inside the box (as ``tests/test_zk_gram.py``): entries at +-1 (norm^2 = K),
    log-norms at +-32, a zero sketch; none is a unit vector."""
    rows = np.zeros((n, k + 2))
    rows[:, :k] = 1.0
    rows[1::3, :k] = -1.0
    rows[2::3, : k // 2] = -1.0
    rows[:, k] = np.resize([32, -32, 32, -32, 0, 0, 32, -32], n)
    rows[:, k + 1] = 1.0
    rows[3, :k] = 0.0
    return rows


def check(variant: str, n: int, k: int, rounds: int, seed: int = 0) -> dict[str, object]:
    """Rounds whose witness outputs equal the integer rule's (and the first mismatch)."""
    module = VARIANTS[variant](n, k)
    with tempfile.TemporaryDirectory(prefix="zk-exact-") as tmp:
        p = CircuitKeys(n, k, Path(tmp))
        export_onnx(module, n, k + 2, p.onnx, tag_width=GramCircuit.tag_width)
        settings_for(p.onnx, p.settings)
        compile_circuit(p.onnx, p.compiled, p.settings)
        rng = np.random.default_rng(seed)
        equal, first = 0, None
        for r in range(rounds):
            rows = worst_rows(n, k) if r == 0 else random_round(rng, n, k, r % 6)
            data = [[float(v) for v in row] for row in rows]
            data += [[0.0] * (k + 2)] if getattr(module, "takes_reference", False) else []  # no reference row
            data += [tag_input(TAG)]
            (p.root / "in.json").write_text(json.dumps({"input_data": data}))
            ezkl.gen_witness(str(p.root / "in.json"), str(p.compiled), str(p.root / "w.json"))
            w = json.loads((p.root / "w.json").read_text())
            flags = [ezkl.felt_to_int(v) for v in w["outputs"][0]]
            scores = [ezkl.felt_to_int(v) for v in w["outputs"][1]]
            ref = gram_rule_int(quantize(rows))
            if flags == [int(f) for f in ref.flags] and scores == [int(s) for s in ref.scores]:
                equal += 1
            elif first is None:
                first = {"round": r, "flags": flags, "ref_flags": ref.flags.astype(int).tolist(),
                         "scores": scores, "ref_scores": ref.scores.tolist()}  # fmt: skip
    return {"variant": variant, "n": n, "k": k, "rounds": rounds, "equal": equal, "first_mismatch": first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", choices=sorted(VARIANTS))
    ap.add_argument("sizes", nargs="+")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    for text in args.sizes:
        n, k = map(int, text.split("x"))
        print(json.dumps(check(args.variant, n, k, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
