"""The numbers trainers, the aggregator, the circuit and the contracts agree on."""

from __future__ import annotations

SCALE = 13
"""Fixed point: values are integers times ``2**-13`` (ezkl input_scale = param_scale)."""
LOG_CLIP = 32.0
"""A committed row's log2-norm ``l`` is clipped to ``[-LOG_CLIP, LOG_CLIP]``."""
#: K of the test verifier (local chains): the committed sketch width of its projects.
DEFAULT_SKETCH_WIDTH = 64
#: On-chain scores are the circuit's integer outputs: ``p_i`` at fixed point ``2**13``.
SCORE_SCALE = 2**SCALE
#: Largest update (or model) file the aggregator downloads, in bytes.
MAX_UPDATE_BYTES = 64 * 1024 * 1024
#: A round's proof binds the first ``TAG_CHUNKS * TAG_CHUNK_BITS`` bits of its round tag (chain,
#: market, project, round), as ``TAG_CHUNKS`` circuit inputs of ``TAG_CHUNK_BITS`` bits each
#: (:mod:`marketplace.protocol.round_tag`; ``EzklRoundVerifier`` lays them out the same way).
TAG_CHUNKS = 8
TAG_CHUNK_BITS = 16
#: Version of the commitment scheme.
COMMITMENT_SCHEME = "poseidon(felt13(unit(countsketchK(update)) || clip(log2 norm, -32, 32) || 1))"
