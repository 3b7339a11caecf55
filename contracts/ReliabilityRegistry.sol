// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IReliabilityRegistry} from "./interfaces/IReliabilityRegistry.sol";

/**
 * @title ReliabilityRegistry
 * @notice Keeps every trainer's track record across all projects of all authorized markets, so
 * a project owner can require a minimum reliability to join.
 *
 * How it is meant to be used: the registry's owner authorizes market contracts with
 * {setMarketAuthorization}. A market, when it finalizes a round, reports all its trainers'
 * outcomes in one {recordRound} call (batched to save gas: one transaction and one external call
 * per round rather than one per trainer). Anyone reads {reliabilityOf} and {recordOf}.
 *
 * Reliability is the mean of a Beta(1, 1) prior updated with the record:
 * `(contributed + 1) * 10000 / (contributed + flagged + missed + 2)` basis points, so a newcomer
 * starts at 5000, honest rounds push it towards 10000 and flagged or missed rounds towards 0.
 */
contract ReliabilityRegistry is IReliabilityRegistry, Ownable {
    /// @dev A trainer's counts, packed into one storage slot.
    struct Record {
        uint64 contributed;
        uint64 flagged;
        uint64 missed;
    }

    uint256 private constant BPS = 10_000;

    mapping(address market => bool) private _authorized;
    mapping(address trainer => Record) private _records;

    /// @notice `market` was allowed (or no longer allowed) to record outcomes.
    event MarketAuthorizationChanged(address indexed market, bool authorized);
    /// @notice `trainer`'s record changed because of `outcome` in `round` of `projectId` on `market`.
    event ReliabilityUpdated(
        address indexed trainer,
        address indexed market,
        uint256 indexed projectId,
        uint256 round,
        Outcome outcome,
        uint256 reliabilityBps
    );

    /// @notice The caller is not an authorized market.
    error UnauthorizedMarket(address caller);
    /// @notice `trainers` and `outcomes` differ in length.
    error LengthMismatch(uint256 trainers, uint256 outcomes);
    /// @notice The zero address cannot be a market.
    error ZeroAddress();

    constructor(address initialOwner) Ownable(initialOwner) {}

    /// @notice Allows or disallows `market` to record outcomes. Only the registry owner.
    function setMarketAuthorization(address market, bool authorized) external onlyOwner {
        if (market == address(0)) revert ZeroAddress();
        _authorized[market] = authorized;
        emit MarketAuthorizationChanged(market, authorized);
    }

    /// @inheritdoc IReliabilityRegistry
    function recordRound(uint256 projectId, uint256 round, address[] calldata trainers, Outcome[] calldata outcomes)
        external
    {
        if (!_authorized[msg.sender]) revert UnauthorizedMarket(msg.sender);
        if (trainers.length != outcomes.length) revert LengthMismatch(trainers.length, outcomes.length);
        for (uint256 i = 0; i < trainers.length; ++i) {
            Record storage r = _records[trainers[i]];
            Outcome outcome = outcomes[i];
            if (outcome == Outcome.Contributed) ++r.contributed;
            else if (outcome == Outcome.Flagged) ++r.flagged;
            else ++r.missed;
            emit ReliabilityUpdated(trainers[i], msg.sender, projectId, round, outcome, _reliability(r));
        }
    }

    /// @inheritdoc IReliabilityRegistry
    function reliabilityOf(address trainer) external view returns (uint256) {
        return _reliability(_records[trainer]);
    }

    /// @notice The raw counts behind {reliabilityOf}.
    function recordOf(address trainer) external view returns (uint64 contributed, uint64 flagged, uint64 missed) {
        Record memory r = _records[trainer];
        return (r.contributed, r.flagged, r.missed);
    }

    /// @notice Whether `market` may record outcomes.
    function isAuthorizedMarket(address market) external view returns (bool) {
        return _authorized[market];
    }

    function _reliability(Record memory r) private pure returns (uint256) {
        uint256 total = uint256(r.contributed) + r.flagged + r.missed;
        return ((uint256(r.contributed) + 1) * BPS) / (total + 2);
    }
}
