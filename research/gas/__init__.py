"""Prototypes and measurements of issue 16's gas design study (``docs/design/gas-per-trainer.md``): where the
zk verifier's gas goes, batched reveals and commits, optimistic verification, a circuit-specific verifier.
Research only: nothing in the package or the tests imports it."""
