"""Zero-knowledge proofs of a round's scoring (ezkl): the circuit, trainers' commitments, key
setup (cached outside git), proving, and the on-chain verifier."""
