"""What trainers and the aggregator agree on, besides the contracts: how an update is committed
to, how big an update may be, and what an on-chain score means.

A trainer commits to the **committed row** of its update (:func:`marketplace.zk.commit.commit_update`):
the CountSketch of the flat update to ``K`` values with the project's public seed, unit-normalised,
plus its clipped log2-norm and a presence bit, all on the ``2**-13`` grid; the commitment is the
Poseidon hash of that row, exactly the public hash the round's zk proof exposes for the trainer's
slot. ``K`` is the project's verifier's ``sketchWidth()``.

The outlier flags and the contribution scores that pay are the Gram-matrix rule on the committed
rows (:mod:`marketplace.scoring.gram`) in its exact integer form, the computation the circuit
proves; anyone can recompute it from the IPFS updates (``marketplace audit``).
"""

from __future__ import annotations

from marketplace.scoring.gram import SCALE

#: K of the test verifier (local chains): the committed sketch width of its projects.
DEFAULT_SKETCH_WIDTH = 64
#: On-chain scores are the circuit's integer outputs: ``p_i`` at fixed point ``2**13``.
SCORE_SCALE = 2**SCALE
#: Largest update (or model) file the aggregator downloads, in bytes.
MAX_UPDATE_BYTES = 64 * 1024 * 1024
#: Version of the commitment scheme.
COMMITMENT_SCHEME = "poseidon(felt13(unit(countsketchK(update)) || clip(log2 norm, -32, 32) || 1))"
