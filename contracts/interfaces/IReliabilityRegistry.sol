// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IReliabilityRegistry
 * @notice Cross-project track records of trainers, written by authorized markets once per round.
 */
interface IReliabilityRegistry {
    /// @notice What a trainer did in one round.
    enum Outcome {
        Contributed, // submitted an update that was not flagged
        Flagged, // submitted an update flagged as an outlier
        Missed // was expected to submit and did not
    }

    /// @notice What a trainer's reliability is made of: only rounds of independent projects count
    /// (see {recordRound}).
    struct TrackRecord {
        uint32 contributed; // rounds contributed
        uint32 flagged; // rounds flagged (or a reveal withheld, or a rejection that stood)
        uint32 missed; // rounds missed
        uint32 projects; // projects taken part in
        uint32 owners; // distinct owners of those projects
        uint96 earned; // wei of rewards earned, paid by those owners
    }

    /// @notice Records one round's outcomes and rewards for many trainers in a single call. A round of a
    /// project whose `projectOwner` is its `aggregator` is not independent and counts for nothing.
    function recordRound(
        uint256 projectId,
        uint256 round,
        address projectOwner,
        address aggregator,
        address[] calldata trainers,
        Outcome[] calldata outcomes,
        uint256[] calldata rewards
    ) external;

    /// @notice Reliability of `trainer` in basis points (0..10000); 5000 for a newcomer.
    function reliabilityOf(address trainer) external view returns (uint256);

    /// @notice Wei of rewards `trainer` earned in independent projects ({TrackRecord-earned}).
    function earnedOf(address trainer) external view returns (uint256);

    /// @notice Wei of `trainer`'s earned record not reserved by a project's bar.
    function availableOf(address trainer) external view returns (uint256);

    /// @notice Reserves `amount` of `trainer`'s available record for project `projectId` of the calling
    /// market (a bar it joined); reverts `TrackRecordTooSmall(trainer, available, amount)` if too little is
    /// available. A round the trainer is flagged in spends the reservation (it is debited from earned).
    function reserve(uint256 projectId, address trainer, uint256 amount) external;

    /// @notice Returns what is left of `trainer`'s reservation for project `projectId` of the calling market.
    function release(uint256 projectId, address trainer) external;
}
