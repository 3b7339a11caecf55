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
#: Version of the commitment scheme.
COMMITMENT_SCHEME = "poseidon(felt13(unit(countsketchK(update)) || clip(log2 norm, -32, 32) || 1))"
