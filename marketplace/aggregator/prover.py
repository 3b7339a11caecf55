"""Provers: produce the proof a project's verifier checks in ``finalizeRound``.

A prover knows nothing of IPFS or transactions: given the round's public values it returns
proof bytes. :class:`HashProver` serves the local-only ``TestRoundVerifier``; the zk prover
(ezkl) implements the same protocol.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from marketplace.chain.market import local_hash_proof


class RoundProver(Protocol):
    """Proves that ``scores`` and ``flags`` were computed from the committed sketches.

    Every per-trainer argument is in arrival order (``MarketClient.arrival_order``), the order
    in which ``finalizeRound`` hands the values to the verifier."""

    name: str

    def prove(
        self, commitments: list[bytes], sketches: np.ndarray, active: np.ndarray, scores: list[int], flags: list[bool]
    ) -> bytes:
        """Returns the proof bytes for exactly these public values."""
        ...


class HashProver:
    """For the local test verifier only: the "proof" is the hash of the public values (proves nothing)."""

    name = "test-hash"

    def prove(
        self, commitments: list[bytes], sketches: np.ndarray, active: np.ndarray, scores: list[int], flags: list[bool]
    ) -> bytes:
        return local_hash_proof(commitments, scores, flags)
