// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IRoundVerifier
 * @notice Checks that a round's contribution scores and outlier flags were computed correctly
 * from the commitments the trainers submitted on chain.
 *
 * `TrainingMarket` calls this from `finalizeRound` with the commitments, the scores and flags the
 * aggregator wants to record, and the proof bytes, all in arrival order (see {verifyRound}). An implementation binds all three to the proof's public inputs (for ezkl: the
 * per-trainer Poseidon hashes and the circuit's public outputs) and returns true only if the
 * proof verifies against exactly these values.
 */
interface IRoundVerifier {
    /// @param commitments one commitment per trainer, in arrival order: first the trainers who
    /// submitted, in the order their submissions were accepted, then the others (commitment 0)
    /// @param scores the contribution score of each trainer (same order), in fixed point
    /// @param flags true for each trainer flagged as an outlier (same order)
    /// @param proof the proof bytes
    /// @return ok true when the proof verifies for exactly these public values
    function verifyRound(
        bytes32[] calldata commitments,
        uint256[] calldata scores,
        bool[] calldata flags,
        bytes calldata proof
    ) external view returns (bool ok);

    /// @notice Whether `commitment` is a value this verifier's proofs can bind to (e.g. a field
    /// element). `TrainingMarket.submitUpdate` refuses other commitments, so no trainer can submit
    /// a commitment that makes the round unprovable.
    function acceptsCommitment(bytes32 commitment) external view returns (bool);

    /// @notice The most trainers a round may have (the circuit's number of slots).
    /// `TrainingMarket.createProject` refuses projects that could grow beyond it.
    function maxTrainers() external view returns (uint256);

    /// @notice K, the width of the CountSketch every trainer commits to (the circuit's input width):
    /// a trainer's commitment is the Poseidon hash of the committed row of its K-wide sketch.
    function sketchWidth() external view returns (uint256);
}
