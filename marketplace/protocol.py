"""What trainers and the aggregator agree on, besides the contracts: how an update is sketched
and committed to, how update files are laid out, and how scores become on-chain integers.

A trainer's commitment binds it to the *sketch* of its update (a fixed CountSketch with the
project's public seed, see :mod:`marketplace.scoring.sketch`); the outlier flags and the
contribution scores that pay are computed from sketches only, so anyone can recompute them
from the IPFS updates and check the commitments (``marketplace audit``).
"""

from __future__ import annotations

import numpy as np
from eth_utils import keccak

from marketplace.scoring.sketch import sketch

#: Width of the committed sketch (D'). Small enough for a zero-knowledge circuit.
SKETCH_DIM = 64
#: Scores are recorded on chain as integers: round(score * SCORE_SCALE).
SCORE_SCALE = 10**6
#: Largest update (or model) file the aggregator downloads, in bytes.
MAX_UPDATE_BYTES = 64 * 1024 * 1024
#: Version of the commitment scheme (the hash of the float32 sketch).
COMMITMENT_SCHEME = "keccak256(float32-le(countsketch64(update)))"


def update_sketch(update: np.ndarray, seed: int) -> np.ndarray:
    """The committed sketch of a flat update, as float32."""
    return sketch(np.asarray(update, dtype=np.float32).reshape(-1), SKETCH_DIM, seed).astype(np.float32)


def commitment_of_sketch(sk: np.ndarray) -> bytes:
    """The 32-byte on-chain commitment to a sketch."""
    return keccak(np.asarray(sk, dtype="<f4").tobytes())


def commit_update(update: np.ndarray, seed: int) -> tuple[np.ndarray, bytes]:
    """(sketch, commitment) of a flat update."""
    sk = update_sketch(update, seed)
    return sk, commitment_of_sketch(sk)


def scores_to_chain(scores: np.ndarray, flags: np.ndarray) -> list[int]:
    """Score shares in [0, 1] to on-chain integers; flagged rows are 0."""
    s = np.where(np.asarray(flags, dtype=bool), 0.0, np.clip(np.asarray(scores, dtype=np.float64), 0.0, None))
    return [round(float(x) * SCORE_SCALE) for x in s]
