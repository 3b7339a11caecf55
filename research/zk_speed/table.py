"""Where the round circuit's rows go: ablations of the old (pre-issue-16) circuit and its TopK variant,
and the production layouts, by size.

    python -m research.zk_speed.table ablate 8x32 16x32     # one line per component removed
    python -m research.zk_speed.table ablate-topk 16x32 32x32   # the same on the TopK variant
    python -m research.zk_speed.table sizes 8x32 16x32 32x32 64x32   # old vs every variant
    python -m research.zk_speed.table plan 8x64 16x32 32x32 64x32    # the production layout per size
    python -m research.zk_speed.table nodes 16x32           # rows per ezkl node (op), top ones

Only ONNX export and ``ezkl.gen_settings`` run (no keys, no proofs): seconds per circuit.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from marketplace.rule.circuit import CIRCUIT_LAYOUTS, GramCircuit
from research.zk_speed.legacy import GramCircuit as LegacyCircuit
from research.zk_speed.rows import count_rows, node_rows
from research.zk_speed.variants import COMPONENTS, GramAblation, GramFast, GramLean, GramTopK

TAG = GramCircuit.tag_width


def _size(text: str) -> tuple[int, int]:
    n, k = text.split("x")
    return int(n), int(k)


def ablate(n: int, k: int, topk: bool = False) -> list[dict[str, object]]:
    """Rows of the old circuit (``topk``: of :class:`GramTopK`), of it without the input-output
    range checks, and of :class:`GramAblation` without each component (marginal costs)."""
    out: list[dict[str, object]] = []
    base = GramTopK(n, k) if topk else LegacyCircuit(n, k)
    full = count_rows(base, n, k + 2, tag_width=TAG)
    out.append({"variant": "TopK circuit" if topk else "old circuit", **full.__dict__})
    same = count_rows(GramAblation(n, k, topk=topk), n, k + 2, tag_width=TAG)
    out.append({"variant": "GramAblation() (must equal it)", **same.__dict__})
    noio = count_rows(base, n, k + 2, tag_width=TAG, io_range=False)
    out.append({"variant": "- input/output range checks", **noio.__dict__})
    for name in COMPONENTS:
        got = count_rows(GramAblation(n, k, drop=frozenset({name}), topk=topk), n, k + 2, tag_width=TAG)
        out.append({"variant": f"- {name}", **got.__dict__})
    if not topk:
        out.append({"variant": "TopK sorts", **count_rows(GramTopK(n, k), n, k + 2, tag_width=TAG).__dict__})
    return out


def sizes(n: int, k: int) -> list[dict[str, object]]:
    """The old circuit and each variant at one size (2 inner columns), then the production circuit
    with TopK sorts (``tri``: the design's ``GramTri``) with 2, 3 and 4 inner columns."""
    out: list[dict[str, object]] = []
    for name, cls in (("old", LegacyCircuit), ("topk", GramTopK), ("fast", GramFast), ("lean", GramLean)):
        out.append({"variant": name, "cols": 2, **count_rows(cls(n, k), n, k + 2, tag_width=TAG).__dict__})
    for cols in (2, 3, 4):
        got = count_rows(GramCircuit(n, k, sort="topk"), n, k + 2, tag_width=TAG, cols=cols)
        out.append({"variant": "tri", "cols": cols, **got.__dict__})
    return out


def plan(n: int, k: int) -> dict[str, object]:
    """Rows of the production layout at one size
    (:data:`marketplace.rule.circuit.CIRCUIT_LAYOUTS`) beside the old circuit's."""
    layout = CIRCUIT_LAYOUTS[n]
    got = count_rows(GramCircuit(n, k, sort=layout.sort), n, k + 2, tag_width=TAG, cols=layout.cols)
    old = count_rows(LegacyCircuit(n, k), n, k + 2, tag_width=TAG)
    return {"sort": layout.sort, "cols": layout.cols, "old_rows": old.num_rows, "old_logrows": old.logrows,
            **got.__dict__}  # fmt: skip


def nodes(n: int, k: int, top: int = 40, topk: bool = False) -> dict[str, object]:
    """Rows per op type and the ``top`` largest nodes of the old circuit's layout (``topk``: of
    :class:`GramTopK`'s)."""
    laid = node_rows(GramTopK(n, k) if topk else LegacyCircuit(n, k), n, k + 2, tag_width=TAG)
    by_op: Counter[str] = Counter()
    for _, op, rows in laid:
        by_op[op.split(" ")[0]] += rows
    biggest = sorted(laid, key=lambda t: -t[2])[:top]
    return {"by_op": by_op.most_common(), "biggest": biggest, "total": sum(r for *_, r in laid)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["ablate", "ablate-topk", "sizes", "plan", "nodes", "nodes-topk"])
    ap.add_argument("sizes", nargs="+")
    args = ap.parse_args()
    for text in args.sizes:
        n, k = _size(text)
        if args.what.startswith("ablate"):
            for row in ablate(n, k, topk=args.what == "ablate-topk"):
                print(json.dumps({"size": text, **row}))
        elif args.what == "plan":
            print(json.dumps({"size": text, **plan(n, k)}))
        elif args.what == "sizes":
            for row in sizes(n, k):
                print(json.dumps({"size": text, **row}))
        else:
            print(json.dumps({"size": text, **nodes(n, k, topk=args.what == "nodes-topk")}))


if __name__ == "__main__":
    main()
