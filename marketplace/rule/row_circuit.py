"""The row circuit: a proof that a published row is the committed row behind a commitment.

A trainer whose update the aggregator rejected disputes the rejection by publishing its committed
row on chain (``TrainingMarket.disputeRejection``) with a proof of this circuit, which
``EzklRoundVerifier.verifyRow`` checks against the trainer's on-chain commitment.

What is proven. The circuit has one input, ``row`` of shape (1, K + 2), and one output, that input
unchanged. ezkl proves it with hashed input visibility and public outputs (the run arguments of
:func:`marketplace.adapters.ezkl.keys.setup_row`, scale ``2**13``), so a proof's public instances
are, in this order::

    [ h | x_0 .. x_{K+1} ]

where ``h`` is the Poseidon hash of the input's K + 2 field elements, computed in the circuit from
the input cells (exactly the commitment of :func:`marketplace.protocol.commitment.commitment_bytes`),
and ``x_j`` are the output's values: the fixed-point integers ``round(2**13 * row_j)`` as field
elements (a negative ``x`` is ``p - |x|``, ``p`` the BN254 scalar field's modulus). The output is
constrained to equal the input cells that were hashed (the identity op reuses them, and ezkl
constrains public outputs to their instances; ``tests/test_zk_row.py`` checks that a proof made from
a witness whose output is not its input does not verify), and ezkl range-checks inputs and outputs
to ``|x| < ROW_DECOMP_BASE ** ROW_DECOMP_LEGS``, which holds every row of the box.

Why a proof binds the row to the commitment. A proof verifies for ``[h | x]`` only if some witness
input hashes to ``h`` and equals ``x`` cell by cell: so ``h = Poseidon(x)``. The verifier builds the
instances itself from the commitment stored on chain and the published integers, so a verified
proof means that ``Poseidon(published row) = commitment``: another row with that commitment would
be a Poseidon collision. The integers map to field elements one-to-one only below ``p / 2`` in
absolute value; the verifier accepts only rows of the protocol's box (``|v| <= 2**13``,
``|l| <= 32 * 2**13``, ``a`` in ``{0, 2**13}``), far inside, so no other integers alias the same
instances. (An input that reached no output could be pruned by ezkl and bind nothing; the identity
output is what keeps every value of the row in the circuit.)
"""

from __future__ import annotations

import torch
from torch import nn

#: ezkl's decomposition base and legs for the row circuit: inputs and outputs are range-checked to
#: ``|x| < 2048**2 = 2**22`` (the box needs ``2**18``), and the range table of 2048 entries keeps the
#: circuit at ``2**12`` rows for K <= 64 (ezkl's default base, 16384, needs ``2**15``: 8x the proving key).
ROW_DECOMP_BASE = 2048
ROW_DECOMP_LEGS = 2


class RowCircuit(nn.Module):
    """One committed row of ``k + 2`` values in, the same row out (see the module doc for what a
    proof of it shows). Input ``row`` of shape (1, :attr:`width`); output of the same shape."""

    def __init__(self, k: int) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"the sketch width must be positive, got {k}")
        self.k = k

    @property
    def width(self) -> int:
        """Values of a row: the sketch's ``k``, its log-norm and the presence bit."""
        return self.k + 2

    def forward(self, row: torch.Tensor) -> torch.Tensor:
        """The row unchanged (an ONNX Identity: its output cells are the hashed input cells)."""
        return row
