"""What a trainer commits to: its committed row and the row's Poseidon hash.

Trainer ``i`` with CountSketch ``s_i`` (width K, :mod:`marketplace.protocol.sketch`, the project's
public seed) commits to the ``K + 2`` values of :func:`committed_row`, all rounded to the ``2**-13``
grid::

    v_i = s_i / ||s_i||                  (unit vector; entries in [-1, 1]; 0 if s_i = 0)
    l_i = clip(log2 ||s_i||, -32, 32)    (-32 if s_i = 0)
    a_i = 1                              (presence; an empty slot is the all-zero row)

and to the 32-byte commitment ``Poseidon(float_to_felt(x, 13) for x in row)``
(:func:`commit_update`), which is exactly the public hash the round's proof exposes for that slot
(``input_visibility="hashed"``). Rows outside the box ``|v| <= 1, |l| <= 32, a in {0, 1}`` are
replaced by the zero row before scoring (:func:`sanitize_rows`; the circuit has no witness for
arbitrary field elements).
"""

from __future__ import annotations

import numpy as np

from marketplace.protocol.constants import DEFAULT_SKETCH_WIDTH, LOG_CLIP, SCALE
from marketplace.protocol.sketch import sketch


def quantize(values: np.ndarray, scale: int = SCALE, *, f32: bool = True) -> np.ndarray:
    """Float -> integer at ``2**scale``, rounding half away from zero.

    ``ezkl.gen_witness`` first casts JSON inputs to float32 (``f32=True``, the default);
    ``ezkl.float_to_felt`` does not (``f32=False``). The two differ for about one value in
    10^4, so committed values must be on the grid (see :func:`snap`), where both agree.
    """
    v = np.asarray(values, dtype=np.float64)
    if f32:
        v = v.astype(np.float32).astype(np.float64)
    v = v * float(2**scale)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def snap(values: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Round floats to the ``2**-scale`` grid (where ezkl's float32 cast and float_to_felt agree)."""
    return quantize(values, scale, f32=False).astype(np.float64) / float(2**scale)


def committed_row(sketch: np.ndarray) -> np.ndarray:
    """The ``K + 2`` grid values a trainer commits to: ``(v, l, 1)`` (see module doc)."""
    s = np.asarray(sketch, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(s)) if np.all(np.isfinite(s)) else 0.0
    if norm > 0.0:
        v = s / norm
        lg = float(np.clip(np.log2(norm), -LOG_CLIP, LOG_CLIP))
    else:
        v, lg = np.zeros_like(s), -LOG_CLIP
    return np.concatenate([snap(v), snap(np.array([lg])), [1.0]])


def committed_rows(sketches: np.ndarray, active_mask: np.ndarray | None = None) -> np.ndarray:
    """(N, K + 2) rows; inactive slots are the all-zero row."""
    s = np.asarray(sketches, dtype=np.float64)
    rows = np.stack([committed_row(r) for r in s]) if s.shape[0] else np.zeros((0, s.shape[1] + 2))
    if active_mask is not None:
        rows[~np.asarray(active_mask, dtype=bool)] = 0.0
    return rows


def sanitize_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace rows outside the box (``|v| <= 1``, ``|l| <= 32``, ``a in {0, 1}``, finite, on the grid)
    by the zero row. Returns (rows, replaced mask). The circuit proves nothing about such rows:
    the aggregator substitutes the zero row (that trainer is then treated as absent)."""
    r = np.array(rows, dtype=np.float64, copy=True)
    k = r.shape[1] - 2
    finite = np.all(np.isfinite(r), axis=1)
    safe = np.where(np.isfinite(r), r, 0.0)
    on_grid = np.all(snap(safe) == safe, axis=1)
    box = (
        np.all(np.abs(safe[:, :k]) <= 1.0, axis=1)
        & (np.abs(safe[:, k]) <= LOG_CLIP)
        & np.isin(safe[:, k + 1], (0.0, 1.0))
    )
    bad = ~(finite & on_grid & box)
    r[bad] = 0.0
    return r, bad


class InvalidPublishedRow(ValueError):
    """A row published on chain (a dispute) that cannot be a committed row: wrong length or off the box."""


#: Bounds of a published row's integers at scale ``2**SCALE`` (``TrainingMarket`` checks the same box
#: in ``disputeRejection``: ``MAX_UNIT``, ``MAX_LOG`` there).
MAX_UNIT_INT = 2**SCALE
MAX_LOG_INT = int(LOG_CLIP) * 2**SCALE


def published_row(row: np.ndarray) -> list[int]:
    """A committed row (K + 2 grid values) as the integers at scale ``2**SCALE`` that a trainer publishes
    on chain to dispute a rejection (``disputeRejection``'s ``int256[] row``). Exact: rows are on the grid."""
    r = np.asarray(row, dtype=np.float64).reshape(-1)
    return [int(v) for v in quantize(r, f32=False)]


def row_from_ints(values: list[int] | tuple[int, ...], k: int) -> np.ndarray:
    """The committed row of a published integer row, after checking what the market checks: ``k + 2``
    integers, ``v`` entries in ``[-2**13, 2**13]``, ``l`` in ``[-32 * 2**13, 32 * 2**13]`` and
    ``a = 2**13`` (a published row is a submission). Everything read from chain is untrusted input:
    raises :class:`InvalidPublishedRow` otherwise. Inside this box the circuit has a witness for the row
    (it proves, and the rule flags a row whose ``v`` is not a unit vector)."""
    ints = [int(v) for v in values]
    if len(ints) != k + 2:
        raise InvalidPublishedRow(f"a published row has {len(ints)} values; the project's rows have {k + 2}")
    if any(abs(v) > MAX_UNIT_INT for v in ints[:k]):
        raise InvalidPublishedRow(f"a published row's v entries must lie in [-{MAX_UNIT_INT}, {MAX_UNIT_INT}]")
    if abs(ints[k]) > MAX_LOG_INT:
        raise InvalidPublishedRow(f"a published row's l must lie in [-{MAX_LOG_INT}, {MAX_LOG_INT}]")
    if ints[k + 1] != MAX_UNIT_INT:
        raise InvalidPublishedRow(f"a published row's presence bit must be {MAX_UNIT_INT} (a = 1)")
    return np.array(ints, dtype=np.float64) / float(2**SCALE)


def row_commitment(row: np.ndarray, scale: int = SCALE) -> str:
    """Poseidon hash of one committed row as ezkl computes it for a hashed input.

    Returned in ezkl's felt format (64 hex digits, little-endian), the format of the witness'
    ``processed_inputs``; :func:`commitment_bytes` gives the big-endian bytes32.
    """
    import ezkl

    felts = [ezkl.float_to_felt(float(v), scale) for v in np.asarray(row, dtype=np.float64).reshape(-1)]
    out = ezkl.poseidon_hash(felts)
    return str(out[0] if isinstance(out, list) else out)


def commitment_bytes(row: np.ndarray) -> bytes:
    """The commitment as the big-endian bytes32 the contract stores."""
    return bytes.fromhex(row_commitment(row))[::-1]


def zero_row_commitment(k: int = DEFAULT_SKETCH_WIDTH) -> bytes:
    """The hash of the all-zero row: absent slots, padding and rows the aggregator had to replace."""
    return commitment_bytes(np.zeros(k + 2))


def commit_update(update: np.ndarray, seed: int, k: int = DEFAULT_SKETCH_WIDTH) -> tuple[np.ndarray, bytes]:
    """(committed row of K + 2 grid values, 32-byte Poseidon commitment) of a flat update."""
    sk = sketch(np.asarray(update, dtype=np.float32).reshape(-1), k, seed)
    row = committed_row(sk)
    return row, commitment_bytes(row)
