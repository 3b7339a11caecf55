// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IRoundVerifier
 * @notice Checks that a round's contribution scores and outlier flags were computed correctly
 * from the commitments the trainers submitted on chain.
 *
 * `TrainingMarket` calls this from `finalizeRound` with the round's tag, the commitments, the
 * scores and flags the aggregator wants to record, the owner's reference commitment and the proof
 * bytes, the per-trainer values in arrival order (see {verifyRound}). An implementation binds all five
 * to the proof's public inputs (for ezkl: the tag's chunks, the per-trainer Poseidon hashes, the
 * reference's hash and the circuit's public outputs)
 * and returns true only if the proof verifies against exactly these values.
 *
 * The tag names the round: `keccak256(abi.encode(block.chainid, market, projectId, round))`
 * (`TrainingMarket.roundTag`). Binding it makes a proof worthless outside the one round of the one
 * project, market and chain it was made for, so the market keeps no set of used proofs (a round is
 * finalized once by state) and no project can replay, or block, another's proof.
 *
 * A verifier also declares what it is, so that off-chain code knows how to prove a project's rounds
 * without guessing: {proofSystem} (which prover makes its proofs) and {ruleVersion} (which version
 * of the scoring rule its proofs are about). Both are fixed when it is deployed.
 *
 * And it tells people what it is: {name} and {description} are what a user interface shows where a
 * project's verifier or a verification result appears, and {provesNothing} marks a verifier whose
 * "proofs" show nothing (the local test verifier), so such a project is labelled as such everywhere.
 * Verifiers deployed before these three views existed lack them: readers fall back to the address.
 */
interface IRoundVerifier {
    /// @param roundTag the round's tag (chain, market, project, round); a proof made for another tag must fail
    /// @param commitments one commitment per trainer, in arrival order: first the trainers who
    /// submitted, in the order their submissions were accepted, then the others (commitment 0)
    /// @param scores the contribution score of each trainer (same order), in fixed point
    /// @param flags true for each trainer flagged as an outlier (same order)
    /// @param refCommitment the commitment of the owner's reference row the scores were computed with
    /// (`TrainingMarket.revealReference`; docs/design/robust-reference.md), 0 for none: the rule without a
    /// reference (for ezkl: the all-zero row's hash)
    /// @param proof the proof bytes
    /// @return ok true when the proof verifies for exactly these public values, this reference and this tag
    ///
    /// WARNING: an implementation that ignores `roundTag` (or binds less of it than it can
    /// defend) lets a proof be replayed in another project whose commitments are the same: the
    /// market relies on the verifier for this, it keeps no set of used proofs. One that ignores
    /// `refCommitment` lets the aggregator drop or replace the owner's reference.
    function verifyRound(
        bytes32 roundTag,
        bytes32[] calldata commitments,
        uint256[] calldata scores,
        bool[] calldata flags,
        bytes32 refCommitment,
        bytes calldata proof
    ) external view returns (bool ok);

    /// @notice Whether `row` is the committed row whose commitment is `commitment`, as `proof` shows.
    /// `TrainingMarket.disputeRejection` calls it when a rejected trainer publishes its row: a row that
    /// passes is then one of the round's rows, and the round must be proven with it.
    /// @param commitment the trainer's on-chain commitment (the Poseidon hash of its row, for ezkl)
    /// @param row the row's K + 2 values as integers at the circuit's scale 2^13 (v, l, a); the market has
    /// checked its length and box before calling
    /// @param proof the row proof (for ezkl: a proof of the row circuit, hashed input and public output)
    /// @return ok true when the proof shows that `row` hashes to `commitment`
    function verifyRow(bytes32 commitment, int256[] calldata row, bytes calldata proof)
        external
        view
        returns (bool ok);

    /// @notice Whether `commitment` is a value this verifier's proofs can bind to (e.g. a field
    /// element, and not the commitment of an empty slot). `TrainingMarket.revealUpdate` refuses other
    /// commitments, so no trainer can submit a commitment that makes the round unprovable.
    function acceptsCommitment(bytes32 commitment) external view returns (bool);

    /// @notice The most trainers a round may have (the circuit's number of slots).
    /// `TrainingMarket.createProject` refuses projects that could grow beyond it.
    function maxTrainers() external view returns (uint256);

    /// @notice K, the width of the CountSketch every trainer commits to (the circuit's input width):
    /// a trainer's commitment is the Poseidon hash of the committed row of its K-wide sketch.
    function sketchWidth() external view returns (uint256);

    /// @notice The proof system whose proofs {verifyRound} checks: a short ASCII name, left-aligned
    /// and padded with zero bytes (`bytes32("ezkl-halo2-kzg")`: ezkl's Halo2 proofs with KZG
    /// commitments; `bytes32("test-hash")`: the local test verifier, which proves nothing). A
    /// constant of the implementation. The aggregator picks its prover by it.
    ///
    /// WARNING: a self-description, not a guarantee: any contract can return any name. What a
    /// project's proofs are worth depends on the verifier the market admin approved, not on this value.
    function proofSystem() external view returns (bytes32);

    /// @notice The version of the scoring rule this verifier's proofs are about: the
    /// `marketplace.rule.RULE_VERSION` (the first 8 bytes of the hash of the rule's code) it was
    /// deployed for, never zero and never changed afterwards. Code implementing another version
    /// computes other scores or flags than the ones the verifier's circuit proves, so the aggregator
    /// refuses to serve a project whose verifier declares a rule version it does not implement.
    ///
    /// WARNING: declared by whoever deployed the verifier; nothing on chain ties it to the circuit's
    /// keys. The market admin must approve a verifier only after checking that its keys were set up
    /// from the rule's code at this version.
    function ruleVersion() external view returns (bytes8);

    /// @notice A short name for people, one line of at most 80 bytes of UTF-8, never empty and never changed
    /// (e.g. "ezkl verifier: 16 trainers x 32-wide sketches, development SRS", "Test verifier — proves nothing").
    ///
    /// WARNING: a self-description, like {proofSystem}: show it next to the address, never instead of
    /// the market admin's approval.
    function name() external view returns (string memory);

    /// @notice What a proof this verifier accepts shows, for people, at most 1024 bytes of UTF-8, never
    /// changed: the circuit's size and sketch width, what is proven, and whether the keys come from a
    /// development SRS (anyone holding it can forge proofs) or a ceremony SRS (named by its hash).
    function description() external view returns (string memory);

    /// @notice True for a verifier whose accepted proofs show nothing about how the scores and flags were
    /// computed (the local test verifier); a user interface labels its projects as such everywhere.
    function provesNothing() external view returns (bool);
}
