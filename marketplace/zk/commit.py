"""What a trainer commits to for the Gram circuit: its committed row and the row's Poseidon hash.

``commit_update(update, seed, k)`` is the trainer-side call (see :mod:`marketplace.protocol`):
CountSketch of the flat update to ``k`` values with the project's public seed, the committed row
``(v, l, 1)`` on the ``2**-13`` grid
(:func:`marketplace.scoring.gram.committed_row`), and the 32-byte commitment
``Poseidon(float_to_felt(x, 13) for x in row)``, which is exactly the public hash the proof
exposes for that slot (``input_visibility="hashed"``).
"""

from __future__ import annotations

import numpy as np

from marketplace.protocol import DEFAULT_SKETCH_WIDTH
from marketplace.scoring.gram import SCALE, committed_row
from marketplace.scoring.sketch import sketch


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
