// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IReliabilityRegistry
 * @notice Cross-project reliability of trainers, written by authorized markets once per round.
 */
interface IReliabilityRegistry {
    /// @notice What a trainer did in one round.
    enum Outcome {
        Contributed, // submitted an update that was not flagged
        Flagged, // submitted an update flagged as an outlier
        Missed // was expected to submit and did not
    }

    /// @notice Records one round's outcomes for many trainers in a single call.
    function recordRound(uint256 projectId, uint256 round, address[] calldata trainers, Outcome[] calldata outcomes)
        external;

    /// @notice Reliability of `trainer` in basis points (0..10000); 5000 for a newcomer.
    function reliabilityOf(address trainer) external view returns (uint256);
}
