"""The Gram-matrix round-scoring circuit (torch module for ezkl), its layout per size, and its exact
quantized reference.

Each trainer slot ``i < N`` is one committed row ``x_i = (v_i[0..K-1], l_i, a_i)`` of ``K + 2``
values on the ``2**-13`` grid (see :func:`marketplace.rule.gram.committed_row`): the unit-normalised
CountSketch ``v_i``, its clipped log2-norm ``l_i`` and the presence bit ``a_i``. Slots are in
submission order (earliest first) so that the duplicate rule can keep the earliest copy.
The rule is :mod:`marketplace.rule.gram` (formulas there); the circuit computes (the specification;
the layout below computes exactly these values)

    a    = [x[:, K+1] > 1/2]
    G    = V V^T                         (rescaled to scale 13)
    q    = diag(G)
    P    = a * [q >= 1 - tol] * [q <= 1 + tol]            valid rows
    Gm   = G * (P P^T)                   (rows/columns of invalid slots zeroed)
    m_i  = median_{j in P, j != i} Gm_ij (sort column i of Gm + BIG (1 - P_j) + BIG [i == j],
           select with the count |P| - 1)
    M, lam = medians over P of m and l    (sort 2 columns padded with BIG (1 - P), count |P|)
    far  = m + (T - 1) < T M,  lazy = l < lam - log2(10),  boost = l > lam + B
    dist = q_i + q_j - 2 Gm_ij,  dup_i = sum_j [dist_ij <= DUP] P_j E_ij > 1/2
           (E_ij = [j < i] if earliest_wins, else [j != i])
    flag = a (1 - P) + P [|P| >= 3] [far + lazy + boost + dup > 1/2]
    w    = a - flag,   agree = [Gm w - q [sum w >= 2] > 0] or [m > 0],   c = w * agree * relu(Gm w)
    f    = 1/16 + relu((l - lam) - knots) @ slopes          size factor ~ 2**(l - lam)
    p    = c * f

and with the owner's reference row ``x_r = (v_r, l_r, a_r)`` (``docs/design/robust-reference.md``;
the zero row when the round has none: ``a_r = 0``, so ``ok = 0`` and the scores are ``p``, bit for
bit)::

    g    = V v_r,  q_r = v_r . v_r          (rescaled)
    m_r  = median over P of g               (a third column of the M, lam sort: g P + BIG (1 - P))
    ok   = [a_r > 1/2] [q_r >= 1 - tol] [q_r <= 1 + tol] [|P| >= 3] [m_r > 0] [m_r + (T - 1) >= T M]
    R    = w [g > 0],   t = Gm R                                  (t: no rescale, R is 0/1)
    keep = [p > 0] ([g > 0] or [m >= M]),   add = [p <= 0] R [t > 0]
    p'   = keep p + add min(t, q) f,        min(t, q) = t - relu(t - q)
    used = ok [sum p' > 0],   scores = p + used (p' - p)

A median of ``c`` values is ``rescale(s[lo]/2 + s[hi]/2)`` of the ascending sorted column ``s`` with
``lo = (c-1)//2``, ``hi = c//2`` (:func:`marketplace.rule.networks.median_weights`); 0 if ``c <= 0``.

Outputs ``flags`` (1, N) in {0, 1} and ``scores`` (1, N) at scale 2**13. The integer reference is
:func:`marketplace.rule.gram.gram_rule_ref_int` (:func:`~marketplace.rule.gram.gram_rule_int`, the
paying scorer itself, without a reference); the witness equals it bit for bit
(``tests/test_zk_gram.py``, a property test over adversarial rounds and references per size).

Layout (what ezkl lays out; each point changes rows, never a value):

- sorts: ``sort="batcher"`` is Batcher's odd-even merge network (one ReLU per comparator, no extra
  columns); ``sort="topk"`` is ezkl's native sort (ONNX ``TopK``, k = n, ascending), a
  prover-supplied column pinned by a shuffle argument (a permutation of the input) and ``n - 1``
  neighbour comparisons (ascending). Why no value changes: the ascending sort of a multiset is
  unique, ties included, so both give the same column. TopK costs ``n - 1`` comparisons per
  column instead of ``O(n log^2 n)`` comparators, plus shuffle columns (about 21 % more proving
  time at a fixed logrows), so it pays from N = 32 on (:data:`CIRCUIT_LAYOUTS`).
- ``G`` from blocks (``leaf``): ``G`` over rows ``[lo, hi)`` is the two diagonal blocks
  (recursively) and one off-diagonal product ``V_hi V_lo^T``, whose transpose is a gather; blocks
  of at most ``leaf`` rows are one product. Why no value changes: every entry is the same
  rescaled dot product ``rescale(sum_k v_ik v_jk)`` as in ``V V^T`` (ezkl checks each product by
  Freivalds' argument and rescales each entry), ``G`` is symmetric by construction, and only
  ``N (N + leaf) / 2`` entries (N a power of two; 2,112 of 4,096 at N = 64) are rescaled instead
  of ``N^2`` (about 23 rows each).
- ``g`` and ``q_r`` ride on the top-level off-diagonal product, ``[V_hi; v_r] [V_lo; v_r]^T``
  (:func:`_block_gram`). Why: the same rescaled dot products, checked by Freivalds' argument with
  the block, instead of a product ``V v_r`` of its own (one free dimension of 1: no Freivalds, a
  dot product laid out per entry).
- ``or`` of two 0/1 values as ``a + b - a b``, and ``flag``'s ``[far + lazy + boost + dup > 1/2]``
  as ``1 - (1 - far)(1 - lazy)(1 - boost)(1 - dup)`` with each ``1 -`` computed as the opposite
  comparison and the ``1`` a scale-0 one. Why: the same 0/1 values at scale 0, a few products
  instead of a comparison per slot.
- ``keep p`` without ``[p > 0]``: ``p = 0`` wherever the slot is unpaid, so ``keep p`` is ``p``
  exactly where ``p > 0`` and ``keep``, and 0 elsewhere.
- ``q = diag(G)`` by a gather. Why: ``G_ii = rescale(sum_k v_ik^2)`` is the squared norm.
- the mask as two broadcast products ``G * P * P^T``. Why: a 0/1 factor is exact; no outer
  product is needed.
- paddings as ``BIG - BIG P`` (scale 13, exact). Why: equal to ``BIG (1 - P)``, whose ``1 -``
  lifted the mask to scale 13 and forced a rescale of N values.
- median selection weights from two gathers and adds (``(s_j - s_{j+1}) / 2``,
  :func:`~marketplace.rule.networks.median_weights`) instead of a product with a dense
  ``(2n+2, n)`` constant. Why: the same 0, 1/2 or 1 per position, exact at scale 13.
- the count comparisons ``[count >= m]`` only for ``m`` up to the number of sorted positions (not
  up to ``2n + 1``), the others a scale-0 zero. Why: a count never exceeds the number of sorted
  positions, so the others are 0.
- TopK layout only: each per-row median sorts the ``N - 1`` off-diagonal entries of its column.
  Why: the diagonal was padded with BIG to the top, and the selection reaches position
  ``(count - 1) // 2 <= N - 2`` at most. (The Batcher network needs a power of two and keeps it.)
- duplicates on the ``N (N - 1) / 2`` pairs ``j < i`` only, gathered into an (N, N) matrix of
  scale-0 values (both triangles when ``earliest_wins`` is off). Why: ``dist`` is symmetric, so
  the pair ``(j, i)`` is the pair ``(i, j)``; the ``E_ij`` mask zeroed the rest; a scale-0 zero
  pads the gather (a float 0 would lift the matrix to scale 13 and its row sums would be
  rescaled).
- no ``P_j`` factor in the duplicate test. Why: ``Gm_ij = 0`` for an invalid ``j``, so
  ``dist_ij = q_i + q_j >= q_i >= 1 - tol > DUP`` for every valid ``i``, and ``dup_i`` only counts
  for valid ``i``.

After the N rows comes the owner's reference row (``K + 2`` values, hashed like the rows: its
Poseidon hash is a public instance, so the verifier fixes which reference was used; the zero row's
hash for a round without one). One more input, last, is the round tag (``TAG_CHUNKS`` values, see
:mod:`marketplace.protocol.round_tag`), and one more output is that input unchanged. The tag takes
no part in the rule; it is passed through so that it is constrained: with hashed inputs the proof
exposes the tag input's Poseidon hash and the tag output as public values, both tied to the same
witness cells, so a proof verifies only with the tag it was made for. (An input that reaches no
output could be pruned by ezkl and then bind nothing.) The ezkl instances are, in this order,
``[h_0 .. h_{N-1}, h_ref, h_tag | flags | scores | tag]``; they do not depend on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from marketplace.protocol.constants import TAG_CHUNKS
from marketplace.rule.gram import SIZE_FLOOR, SIZE_KNOTS, SIZE_SLOPES, GramConfig
from marketplace.rule.networks import batcher_layers, median_gathers, median_weights

Sort = Literal["batcher", "topk"]
SORTS: tuple[Sort, ...] = ("batcher", "topk")


@dataclass(frozen=True)
class CircuitLayout:
    """How the circuit of one size is laid out and proved (none of it changes a value)."""

    k: int
    """Sketch width K offered at this size."""
    sort: Sort
    """How medians are sorted (:class:`GramCircuit`)."""
    cols: int
    """ezkl's inner columns (``run_args.num_inner_cols``): more columns, fewer rows, more time per row."""


#: The offered circuits: trainer slots N -> layout. Batcher sorts while the circuit is bound by the
#: Poseidon hashing of its inputs (TopK's shuffle columns would only add time), TopK from 32 on; a
#: third inner column at 64 keeps it at logrows 17 (measured: ``bench/zk.py``,
#: ``docs/design/proving-speed.md``).
CIRCUIT_LAYOUTS: dict[int, CircuitLayout] = {
    4: CircuitLayout(32, "batcher", 2),
    8: CircuitLayout(64, "batcher", 2),
    16: CircuitLayout(32, "batcher", 2),
    32: CircuitLayout(32, "topk", 2),
    64: CircuitLayout(32, "topk", 3),
}


def layout_for(n: int) -> CircuitLayout:
    """The layout of the smallest offered circuit of at least ``n`` slots (ValueError beyond the largest)."""
    for size, layout in sorted(CIRCUIT_LAYOUTS.items()):
        if n <= size:
            return layout
    raise ValueError(f"no circuit for {n} trainers (at most {max(CIRCUIT_LAYOUTS)})")


def _lower_pairs(n: int) -> list[tuple[int, int]]:
    """The pairs ``(i, j)`` with ``j < i``, row-major."""
    return [(i, j) for i in range(n) for j in range(i)]


@dataclass(frozen=True)
class BlockGram:
    """How ``G = V V^T`` and the reference's ``g = V v_r``, ``q_r = v_r . v_r`` are assembled from block
    products of the rows of ``[V; v_r]`` (row ``n`` is the reference): ``products`` are the row and
    column indices of each product; ``assemble`` (row-major over ``G``), ``ref`` (``g_i`` per slot) and
    ``ref_self`` (``q_r``) index the concatenation of the flattened products."""

    products: list[tuple[list[int], list[int]]]
    assemble: list[int]
    ref: list[int]
    ref_self: int


def _block_gram(n: int, leaf: int) -> BlockGram:
    """The :class:`BlockGram` of ``n`` slots with diagonal blocks of at most ``leaf`` rows. The
    reference row ``n`` rides on the top-level off-diagonal product, ``[V_hi; v_r] [V_lo; v_r]^T``:
    its extra row and column are ``g`` of the low and the high half and its corner is ``q_r``, so
    ``g`` costs the rescale of its entries and no dot products of its own (ezkl checks a product
    whose free dimensions both exceed 1 by Freivalds' argument). With no off-diagonal product
    (``n <= leaf``) ``g`` and ``q_r`` are one product ``[V; v_r] v_r^T``."""
    products: list[tuple[list[int], list[int]]] = []
    where: dict[tuple[int, int], int] = {}
    offset = 0

    def add(rows: list[int], cols: list[int]) -> None:
        nonlocal offset
        products.append((rows, cols))
        for a, i in enumerate(rows):
            for b, j in enumerate(cols):
                where.setdefault((i, j), offset + a * len(cols) + b)
                where.setdefault((j, i), offset + a * len(cols) + b)
        offset += len(rows) * len(cols)

    def build(lo: int, hi: int) -> None:
        if hi - lo <= leaf:
            add(list(range(lo, hi)), list(range(lo, hi)))
            return
        mid = (lo + hi) // 2
        build(lo, mid)
        build(mid, hi)
        top = (lo, hi) == (0, n)
        add(list(range(mid, hi)) + [n] * top, list(range(lo, mid)) + [n] * top)

    build(0, n)
    if (n, n) not in where:
        add(list(range(n + 1)), [n])
    return BlockGram(products, [where[(i, j)] for i in range(n) for j in range(n)], [where[(i, n)] for i in range(n)],
                     where[(n, n)])  # fmt: skip


def _or(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a or b`` of two 0/1 tensors at scale 0, as ``a + b - a b`` (three cheap ops and no comparison;
    scale 0 throughout)."""
    return a + b - a * b


class GramCircuit(nn.Module):
    """Flags and scores from N committed rows of K + 2 values and the owner's reference row (Gram-matrix
    rule with the reference), and the round tag passed through. Inputs: ``row0 .. row{N-1}`` and
    ``reference`` (1, K + 2), and ``tag`` (1, :attr:`tag_width`).

    ``sort``: ``"batcher"`` (N a power of two) or ``"topk"``; ``leaf``: the largest diagonal block of
    ``G`` computed as one product (module doc). Neither changes an output."""

    #: Values of the tag input (and output).
    tag_width = TAG_CHUNKS
    #: It takes the owner's reference row after the N rows (:func:`~marketplace.adapters.ezkl.keys.export_onnx`).
    takes_reference = True

    def __init__(self, n: int, k: int, cfg: GramConfig | None = None, *, sort: Sort = "batcher", leaf: int = 2) -> None:
        super().__init__()
        if n < 2:
            raise ValueError(f"a round circuit has at least 2 slots, got {n}")
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}, got {sort!r}")
        if leaf < 1:
            raise ValueError(f"leaf must be at least 1, got {leaf}")
        self.n, self.k, self.sort, self.leaf = n, k, sort, leaf
        self.cfg = cfg or GramConfig()
        self.layers = batcher_layers(n) if sort == "batcher" else ()
        self.register_buffer("ones_n", torch.ones(n, 1))
        self.register_buffer("knots", torch.tensor([SIZE_KNOTS], dtype=torch.float32))  # (1, 6)
        self.register_buffer("slopes", torch.tensor(SIZE_SLOPES, dtype=torch.float32).reshape(-1, 1))  # (6, 1)
        self.blocks = _block_gram(n, leaf)
        self.diag = [i * n + i for i in range(n)]
        # per-row medians: positions sorted per column (the off-diagonal n - 1 with TopK, all n with Batcher)
        self.row_positions = n - 1 if sort == "topk" else n
        self.register_buffer(
            "steps_rows", torch.arange(self.row_positions + 1, dtype=torch.float32).reshape(1, -1) - 0.5
        )
        self.register_buffer("steps_n", torch.arange(n + 1, dtype=torch.float32).reshape(1, -1) - 0.5)
        self.gathers_rows = median_gathers(self.row_positions)
        self.gathers_n = median_gathers(n)
        if sort == "batcher":
            self.register_buffer("diag_big", torch.eye(n) * self.cfg.big)
        else:  # column i of the (n-1, n) off-diagonal matrix: G_ji for j != i, j ascending
            self.off = [(j + (j >= i)) * n + i for j in range(n - 1) for i in range(n)]
            self.off_row = [j + (j >= i) for j in range(n - 1) for i in range(n)]
        pairs = _lower_pairs(n)
        self.pi = [i for i, _ in pairs]
        self.pj = [j for _, j in pairs]
        self.flat = [i * n + j for i, j in pairs]
        # (n, n) gather of the pairs' values, index len(pairs) being a scale-0 zero: (i, j < i) -> its
        # pair, and (j, i) too when every copy of a group is flagged (dist is symmetric)
        back = [[len(pairs)] * n for _ in range(n)]
        for p, (i, j) in enumerate(pairs):
            back[i][j] = p
            if not self.cfg.earliest_wins:
                back[j][i] = p
        self.back = [b for row in back for b in row]

    def _sort_cols(self, x: torch.Tensor) -> torch.Tensor:
        """Every column of ``x`` (r, w) sorted ascending: ezkl's TopK, or the Batcher network (r = n).

        Batcher, per layer: two row gathers, one ReLU per comparator (``d = relu(a - b)``,
        ``lo = a - d``, ``hi = b + d``) and one gather that puts ``lo``/``hi`` back (fewer cells than
        slicing)."""
        if self.sort == "topk":
            return torch.topk(x, x.shape[0], dim=0, largest=False, sorted=True).values
        n = self.n
        for layer in self.layers:
            lo_idx = [i for i, _ in layer]
            hi_idx = [j for _, j in layer]
            a = x[lo_idx]
            b = x[hi_idx]
            d = torch.relu(a - b)
            back = list(range(n))
            for p, (i, j) in enumerate(layer):
                back[i] = n + p
                back[j] = n + len(layer) + p
            x = torch.cat([x, a - d, b + d], dim=0)[back]
        return x

    def _gram(self, v: torch.Tensor, v_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``G = V V^T`` (n, n), ``g = V v_r`` (n, 1) and ``q_r = v_r . v_r`` (1, 1), rescaled, from the block
        products (module doc, :func:`_block_gram`)."""
        ext = torch.cat([v, v_r], dim=0)  # (n + 1, k)
        parts = [(ext[rows] @ ext[cols].transpose(0, 1)).reshape(1, -1) for rows, cols in self.blocks.products]
        flat = torch.cat(parts, dim=1)
        gram = flat[:, self.blocks.assemble].reshape(self.n, self.n)
        # one gather, then slices of it (a slice costs rows in proportion to what it slices)
        ref = flat[:, [*self.blocks.ref, self.blocks.ref_self]]  # (1, n + 1)
        return gram, ref[:, : self.n].reshape(self.n, 1), ref[:, self.n :]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``inputs`` = the N rows, the reference row, then the tag; returns ``(flags, scores, tag)``."""
        cfg, k, n = self.cfg, self.k, self.n
        rows, ref, tag = inputs[:n], inputs[n], inputs[n + 1]
        x = torch.cat(rows, dim=0)  # (n, k+2)
        v = x[:, :k]
        lg = x[:, k : k + 1]  # (n, 1)
        act = (x[:, k + 1 : k + 2] > 0.5).float()  # (n, 1)
        v_r = ref[:, :k]  # (1, k): the reference row
        gram, g, q_r = self._gram(v, v_r)  # g_i = <v_i, v_r>, q_r = <v_r, v_r>
        q = gram.reshape(1, -1)[:, self.diag].reshape(-1, 1)  # (n, 1) squared norms
        valid = act * (q >= 1.0 - cfg.unit_tol).float() * (q <= 1.0 + cfg.unit_tol).float()
        pool = valid.transpose(0, 1)  # (1, n)
        gm = gram * valid * pool  # invalid rows and columns zeroed
        count = pool @ self.ones_n  # (1, 1) = |P|, scale 0
        zero = (count < -0.5).float()  # (1, 1): 0 at scale 0
        one = (count > -0.5).float()  # (1, 1): 1 at scale 0
        pad = cfg.big - valid * cfg.big  # (n, 1) = BIG (1 - P), scale 13
        # per-row median of the cosines to the other valid rows: column i of y holds G_ji
        if self.sort == "batcher":
            y = gm + pad + self.diag_big
        else:
            y = gm.reshape(1, -1)[:, self.off].reshape(n - 1, n) + pad.reshape(1, -1)[:, self.off_row].reshape(n - 1, n)
        t_others = (count - 1.0 > self.steps_rows).float()
        m = median_weights(t_others, zero, self.gathers_rows) @ self._sort_cols(y)  # (1, n)
        # M, lam and m_r: medians over P of m, l and g, one sort of three columns padded with BIG (1 - P)
        big3 = torch.cat([pad, cfg.big_log - valid * cfg.big_log, pad], dim=1)  # (n, 3)
        sorted_s = self._sort_cols(torch.cat([m.transpose(0, 1), lg, g * valid], dim=1) + big3)
        stats = median_weights((count > self.steps_n).float(), zero, self.gathers_n) @ sorted_s  # (1, 3)
        med_m = stats[:, 0:1]
        lam = stats[:, 1:2]
        m_r = stats[:, 2:3]
        mc = m.transpose(0, 1)  # (n, 1)
        t_med = med_m * cfg.threshold
        # the negations of far, lazy, boost and dup (flagged if any of those holds)
        near = (mc + (cfg.threshold - 1.0) >= t_med).float()
        busy = (lg >= lam - cfg.lazy_log2).float()
        tame = (lg <= lam + cfg.boost_log2).float()
        qr = q.reshape(1, -1)
        gp = gm.reshape(1, -1)[:, self.flat]  # (1, pairs): Gm_ij, j < i
        dist = qr[:, self.pi] + qr[:, self.pj] - (gp + gp)  # squared distances between unit vectors
        close = (dist <= cfg.dup_dist).float()  # (1, pairs), scale 0; no P_j factor: see the module doc
        unique = (torch.cat([close, zero], dim=1)[:, self.back].reshape(n, n) @ self.ones_n < 0.5).float()  # (n, 1)
        enough = (count > cfg.min_valid - 0.5).float()
        anyf = one - near * busy * tame * unique
        flags = act - valid + valid * anyf * enough
        w = act - flags  # inliers
        total = gm @ w  # (n, 1) = |I| <v_i, g> with g the mean inlier unit vector
        several = (w.transpose(0, 1) @ self.ones_n > 1.5).float()  # (1, 1) = [|I| >= 2]
        # agrees with the other inliers on net (leave-one-out), or with most of the others (median cosine)
        agree = _or((total - q * several > 0.0).float(), (mc > 0.0).float())
        c = torch.relu(total) * w * agree
        size = torch.relu(lg - lam - self.knots) @ self.slopes + SIZE_FLOOR  # (n, 1) ~ 2**(l_i - lam)
        p = c * size
        # the reference's scores p' and whether they replace p (all masks 0/1 at scale 0)
        a_r = (ref[:, k + 1 : k + 2] > 0.5).float()  # (1, 1)
        ok = a_r * (q_r >= 1.0 - cfg.unit_tol).float() * (q_r <= 1.0 + cfg.unit_tol).float() * enough
        ok = ok * (m_r > 0.0).float() * (m_r + (cfg.threshold - 1.0) >= t_med).float()  # agrees, and not far
        pos = (g > 0.0).float()
        agree_r = w * pos  # R: the inliers agreeing with the reference
        t = gm @ agree_r  # (n, 1) agreement with them, scale 13 (a 0/1 vector: no rescale)
        added = (t - torch.relu(t - q)) * size  # min(t, q) f(l - lam)
        keep = _or(pos, (mc >= med_m).float())  # kept if paid (keep * p is 0 where p is)
        add = (p <= 0.0).float() * agree_r * (t > 0.0).float()  # p >= 0: unpaid
        p_ref = keep * p + add * added
        used = ok * (p_ref.transpose(0, 1) @ self.ones_n > 0.0).float()  # (1, 1)
        scores = p + used * (p_ref - p)
        return flags.reshape(1, -1), scores.reshape(1, -1), tag  # the tag unchanged: see the module doc
