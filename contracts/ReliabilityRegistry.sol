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
 *
 * What a record is made of is public ({trackRecordOf}): rounds by outcome, projects, distinct owners of
 * those projects, and the rewards earned in them (value someone else paid). A round of a project whose
 * owner is also its aggregator counts for nothing: that owner decides the outcomes alone.
 *
 * WARNING: independence is only checked between addresses; a farmer with several addresses (an owner,
 * an aggregator, trainers) passes it. What such a record costs is the market's protocol fee on every
 * budget it escrows, and what a project's bar requires in earned rewards is set by the market so that
 * farming the bar costs at least the budget it protects (`TrainingMarket.requiredTrackRecord`).
 */
contract ReliabilityRegistry is IReliabilityRegistry, Ownable {

    uint256 private constant BPS = 10_000;

    mapping(address market => bool) private _authorized;
    mapping(address trainer => TrackRecord) private _records;
    mapping(address trainer => mapping(address owner => bool)) private _workedFor;
    mapping(address market => mapping(uint256 projectId => mapping(address trainer => uint256))) private _reserved;
    mapping(address trainer => uint256) private _reservedTotal;

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

    /// @notice A round of `projectId` on `market` was not recorded: its owner is its aggregator.
    event RoundNotCounted(address indexed market, uint256 indexed projectId, uint256 round, address owner);
    /// @notice `trainer`'s record gained a project (`newOwner`: of an owner it had not worked for before).
    event ProjectCounted(address indexed trainer, address indexed market, uint256 indexed projectId, bool newOwner);

    /// @notice `amount` of `trainer`'s record was reserved for a project's bar (`RecordReleased`: given back;
    /// `RecordSpent`: debited from its record because it was flagged there).
    event RecordReserved(address indexed trainer, address indexed market, uint256 indexed projectId, uint256 amount);
    event RecordReleased(address indexed trainer, address indexed market, uint256 indexed projectId, uint256 amount);
    event RecordSpent(address indexed trainer, address indexed market, uint256 indexed projectId, uint256 amount);

    /// @notice Too little of `trainer`'s earned record is available (not reserved) for a bar requiring `required`.
    error TrackRecordTooSmall(address trainer, uint256 available, uint256 required);

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
    /// @dev On a project's first round each trainer's project count grows, and its owner count if it had not
    /// worked for `projectOwner` before. Rewards above what a record holds are capped (2^96 wei).
    function recordRound(
        uint256 projectId,
        uint256 round,
        address projectOwner,
        address aggregator,
        address[] calldata trainers,
        Outcome[] calldata outcomes,
        uint256[] calldata rewards
    ) external {
        if (!_authorized[msg.sender]) revert UnauthorizedMarket(msg.sender);
        if (trainers.length != outcomes.length || trainers.length != rewards.length) {
            revert LengthMismatch(trainers.length, outcomes.length);
        }
        if (projectOwner == aggregator) {
            emit RoundNotCounted(msg.sender, projectId, round, projectOwner);
            return;
        }
        for (uint256 i = 0; i < trainers.length; ++i) {
            _recordOne(projectId, round, projectOwner, trainers[i], outcomes[i], rewards[i]);
        }
    }

    /// @inheritdoc IReliabilityRegistry
    function reserve(uint256 projectId, address trainer, uint256 amount) external {
        if (!_authorized[msg.sender]) revert UnauthorizedMarket(msg.sender);
        uint256 available = _records[trainer].earned - _reservedTotal[trainer];
        if (available < amount) revert TrackRecordTooSmall(trainer, available, amount);
        _reserved[msg.sender][projectId][trainer] += amount;
        _reservedTotal[trainer] += amount;
        emit RecordReserved(trainer, msg.sender, projectId, amount);
    }

    /// @inheritdoc IReliabilityRegistry
    function release(uint256 projectId, address trainer) external {
        if (!_authorized[msg.sender]) revert UnauthorizedMarket(msg.sender);
        uint256 amount = _reserved[msg.sender][projectId][trainer];
        if (amount == 0) return;
        delete _reserved[msg.sender][projectId][trainer];
        _reservedTotal[trainer] -= amount;
        emit RecordReleased(trainer, msg.sender, projectId, amount);
    }

    /// @inheritdoc IReliabilityRegistry
    function availableOf(address trainer) external view returns (uint256) {
        return _records[trainer].earned - _reservedTotal[trainer];
    }

    /// @notice Wei of `trainer`'s record reserved by the bar of project `projectId` of `market`.
    function reservedOf(address market, uint256 projectId, address trainer) external view returns (uint256) {
        return _reserved[market][projectId][trainer];
    }

    /// @inheritdoc IReliabilityRegistry
    function reliabilityOf(address trainer) external view returns (uint256) {
        return _reliability(_records[trainer]);
    }

    /// @inheritdoc IReliabilityRegistry
    function earnedOf(address trainer) external view returns (uint256) {
        return _records[trainer].earned;
    }

    /// @notice The raw counts behind {reliabilityOf}.
    function recordOf(address trainer) external view returns (uint64 contributed, uint64 flagged, uint64 missed) {
        TrackRecord memory r = _records[trainer];
        return (r.contributed, r.flagged, r.missed);
    }

    /// @notice Everything `trainer`'s record is made of (rounds by outcome, projects, distinct owners, wei earned).
    function trackRecordOf(address trainer) external view returns (TrackRecord memory) {
        return _records[trainer];
    }

    /// @notice Whether `market` may record outcomes.
    function isAuthorizedMarket(address market) external view returns (bool) {
        return _authorized[market];
    }

    function _recordOne(
        uint256 projectId,
        uint256 round,
        address projectOwner,
        address trainer,
        Outcome outcome,
        uint256 reward
    ) private {
        TrackRecord storage r = _records[trainer];
        if (round == 0) _countProject(r, trainer, projectOwner, projectId);
        if (outcome == Outcome.Contributed) {
            ++r.contributed;
        } else if (outcome == Outcome.Flagged) {
            ++r.flagged;
            _spendReservation(r, projectId, trainer);
        } else {
            ++r.missed;
        }
        uint256 earned = uint256(r.earned) + reward;
        r.earned = earned > type(uint96).max ? type(uint96).max : uint96(earned);
        emit ReliabilityUpdated(trainer, msg.sender, projectId, round, outcome, _reliability(r));
    }

    /// @dev A trainer flagged in a project whose bar reserved part of its record loses that part: earned and
    /// the reservation shrink together (earned never falls below what stays reserved elsewhere).
    function _spendReservation(TrackRecord storage r, uint256 projectId, address trainer) private {
        uint256 amount = _reserved[msg.sender][projectId][trainer];
        if (amount == 0) return;
        delete _reserved[msg.sender][projectId][trainer];
        _reservedTotal[trainer] -= amount;
        r.earned -= uint96(amount);
        emit RecordSpent(trainer, msg.sender, projectId, amount);
    }

    function _countProject(TrackRecord storage r, address trainer, address projectOwner, uint256 projectId)
        private
    {
        ++r.projects;
        bool newOwner = !_workedFor[trainer][projectOwner];
        if (newOwner) {
            _workedFor[trainer][projectOwner] = true;
            ++r.owners;
        }
        emit ProjectCounted(trainer, msg.sender, projectId, newOwner);
    }

    function _reliability(TrackRecord memory r) private pure returns (uint256) {
        uint256 total = uint256(r.contributed) + r.flagged + r.missed;
        return ((uint256(r.contributed) + 1) * BPS) / (total + 2);
    }
}
