"""What trainers and the aggregator agree on, besides the contracts: how an update is committed
to, how big an update may be, and what an on-chain score means.

A trainer commits to the **committed row** of its update (:func:`marketplace.protocol.commitment.commit_update`):
the CountSketch of the flat update to ``K`` values with the project's public seed, unit-normalised,
plus its clipped log2-norm and a presence bit, all on the ``2**-13`` grid; the commitment is the
Poseidon hash of that row, exactly the public hash the round's zk proof exposes for the trainer's
slot. ``K`` is the project's verifier's ``sketchWidth()``.

The outlier flags and the contribution scores that pay are the Gram-matrix rule on the committed
rows (:mod:`marketplace.rule.gram`) in its exact integer form, the computation the circuit
proves; anyone can recompute it from the IPFS updates (``marketplace audit``).
"""
