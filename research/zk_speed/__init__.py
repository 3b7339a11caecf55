"""Row counts, bit-exactness checks and small proofs of layouts of the round circuit (issue 16,
``docs/design/proving-speed.md``): research only, nothing in the package imports it."""
