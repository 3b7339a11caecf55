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
    /// @dev Where each part of a record word starts ({_records}), and the widths of its counters.
    uint256 private constant FLAGGED = 32;
    uint256 private constant MISSED = 64;
    uint256 private constant PROJECTS = 96;
    uint256 private constant OWNERS = 128;
    uint256 private constant EARNED = 160;
    uint256 private constant COUNTER = type(uint32).max;
    uint256 private constant OWNER_COUNTER = (1 << 31) - 1;
    /// @dev Bit 159 of a record word: set while some of the trainer's record is reserved ({_reservedTotal} > 0).
    uint256 private constant RESERVING = 1 << 159;
    uint256 private constant RECORD_CAP = type(uint96).max;

    mapping(address market => bool) private _authorized;
    /// @dev Each trainer's whole record in one word, so that recording a round reads and writes one slot per
    /// trainer: rounds contributed (bits 0-31), flagged (32-63) and missed (64-95), projects (96-127), distinct
    /// owners (128-158), whether some of it is reserved (159: {RESERVING}) and wei earned (160-255).
    /// Widths: a round counter grows by one per finalized round the trainer took part in (one `finalizeRound`
    /// transaction each, over 100k gas), the project count by one per project, the owner count at most as often:
    /// reaching 2^31 of any of them takes over 2e14 gas, years of every block of a 30M-gas chain. An increment past
    /// a counter's width reverts ({RecordCounterFull}) rather than wrapping. Earned rewards are capped at 2^96 - 1 wei (more than all ether
    /// there is) instead of reverting. The reserved amounts ({_reserved}, {_reservedTotal}) are in their own
    /// slots (two 96-bit amounts and five counters do not fit one word); the {RESERVING} bit spares a flagged
    /// round of a trainer that has none the look-up of its reservation.
    mapping(address trainer => uint256) private _records;
    mapping(address trainer => mapping(address owner => bool)) private _workedFor;
    mapping(address market => mapping(uint256 projectId => mapping(address trainer => uint256))) private _reserved;
    mapping(address trainer => uint256) private _reservedTotal;

    /// @notice `market` was allowed (or no longer allowed) to record outcomes.
    event MarketAuthorizationChanged(address indexed market, bool authorized);
    /// @notice Round `round` of `projectId` on `market` was recorded: one word of `records` per trainer, in the
    /// order the market reported them, packing (from the lowest bit) the trainer's address (bits 0-159), its
    /// `Outcome` (bits 160-167), its reliability after this round in basis points (bits 168-183), whether the
    /// round counted a project for it (bit 184: a project's first round) and whether that project's owner is one
    /// it had not worked for before (bit 185). One event per round rather than one per trainer: a log topic costs
    /// 375 gas and a data word 256, so per-trainer events cost ~2.6k gas per trainer, one word here 256.
    event RoundRecorded(address indexed market, uint256 indexed projectId, uint256 indexed round, uint256[] records);

    /// @notice A round of `projectId` on `market` was not recorded: its owner is its aggregator.
    event RoundNotCounted(address indexed market, uint256 indexed projectId, uint256 round, address owner);
    /// @notice `amount` of `trainer`'s record was reserved for a project's bar (`RecordReleased`: given back;
    /// `RecordSpent`: debited from its record because it was flagged there).
    event RecordReserved(address indexed trainer, address indexed market, uint256 indexed projectId, uint256 amount);
    event RecordReleased(address indexed trainer, address indexed market, uint256 indexed projectId, uint256 amount);
    event RecordSpent(address indexed trainer, address indexed market, uint256 indexed projectId, uint256 amount);

    /// @notice Too little of `trainer`'s earned record is available (not reserved) for a bar requiring `required`.
    error TrackRecordTooSmall(address trainer, uint256 available, uint256 required);

    /// @notice A counter of `trainer`'s record is full: 2^32 - 1 rounds of an outcome or projects, or 2^31 - 1
    /// owners (out of reach in practice: see {_records}).
    error RecordCounterFull(address trainer);
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
    /// worked for `projectOwner` before. Rewards above what a record holds are capped (2^96 wei). Each trainer's
    /// record is read and written once (one slot), and the round emits one {RoundRecorded} for all of them.
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
        uint256 n = trainers.length;
        if (n != outcomes.length || n != rewards.length) revert LengthMismatch(n, outcomes.length);
        if (projectOwner == aggregator) {
            emit RoundNotCounted(msg.sender, projectId, round, projectOwner);
            return;
        }
        uint256[] memory records = new uint256[](n);
        if (round == 0) _countProject(projectOwner, trainers, records);
        for (uint256 i = 0; i < n;) {
            records[i] |= _recordOne(projectId, trainers[i], outcomes[i], rewards[i]);
            unchecked {
                ++i;
            }
        }
        emit RoundRecorded(msg.sender, projectId, round, records);
    }

    /// @inheritdoc IReliabilityRegistry
    function reserve(uint256 projectId, address trainer, uint256 amount) external {
        if (!_authorized[msg.sender]) revert UnauthorizedMarket(msg.sender);
        uint256 w = _records[trainer];
        uint256 available = (w >> EARNED) - _reservedTotal[trainer];
        if (available < amount) revert TrackRecordTooSmall(trainer, available, amount);
        _reserved[msg.sender][projectId][trainer] += amount;
        _reservedTotal[trainer] += amount;
        if (amount != 0 && w & RESERVING == 0) _records[trainer] = w | RESERVING;
        emit RecordReserved(trainer, msg.sender, projectId, amount);
    }

    /// @inheritdoc IReliabilityRegistry
    function release(uint256 projectId, address trainer) external {
        if (!_authorized[msg.sender]) revert UnauthorizedMarket(msg.sender);
        uint256 amount = _reserved[msg.sender][projectId][trainer];
        if (amount == 0) return;
        delete _reserved[msg.sender][projectId][trainer];
        uint256 left = _reservedTotal[trainer] - amount;
        _reservedTotal[trainer] = left;
        if (left == 0) _records[trainer] &= ~RESERVING;
        emit RecordReleased(trainer, msg.sender, projectId, amount);
    }

    /// @inheritdoc IReliabilityRegistry
    function availableOf(address trainer) external view returns (uint256) {
        return (_records[trainer] >> EARNED) - _reservedTotal[trainer];
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
        return _records[trainer] >> EARNED;
    }

    /// @notice The raw counts behind {reliabilityOf}.
    function recordOf(address trainer) external view returns (uint64 contributed, uint64 flagged, uint64 missed) {
        uint256 w = _records[trainer];
        return (uint64(w & COUNTER), uint64((w >> FLAGGED) & COUNTER), uint64((w >> MISSED) & COUNTER));
    }

    /// @notice Everything `trainer`'s record is made of (rounds by outcome, projects, distinct owners, wei earned).
    function trackRecordOf(address trainer) external view returns (TrackRecord memory) {
        uint256 w = _records[trainer];
        return TrackRecord({
            contributed: uint32(w),
            flagged: uint32(w >> FLAGGED),
            missed: uint32(w >> MISSED),
            projects: uint32(w >> PROJECTS),
            owners: uint32((w >> OWNERS) & OWNER_COUNTER),
            earned: uint96(w >> EARNED)
        });
    }

    /// @notice Whether `market` may record outcomes.
    function isAuthorizedMarket(address market) external view returns (bool) {
        return _authorized[market];
    }

    /// @dev Updates `trainer`'s record with one round (one storage read and one write) and returns its
    /// {RoundRecorded} word but for the project bits.
    function _recordOne(uint256 projectId, address trainer, Outcome outcome, uint256 reward)
        private
        returns (uint256)
    {
        uint256 w = _records[trainer];
        if (outcome == Outcome.Contributed) {
            // _increment(w, 0, COUNTER, trainer), written out for the most common outcome (~50 gas a trainer less)
            if (uint32(w) == COUNTER) revert RecordCounterFull(trainer);
            unchecked {
                ++w;
            }
        } else if (outcome == Outcome.Flagged) {
            w = _increment(w, FLAGGED, COUNTER, trainer);
            if (w & RESERVING != 0) w = _spendReservation(w, projectId, trainer);
        } else {
            w = _increment(w, MISSED, COUNTER, trainer);
        }
        unchecked {
            // earned <= RECORD_CAP, so neither the room left nor the sum below it can wrap.
            uint256 earned = w >> EARNED;
            earned = reward < RECORD_CAP - earned ? earned + reward : RECORD_CAP;
            w = (w & ((1 << EARNED) - 1)) | (earned << EARNED);
        }
        _records[trainer] = w;
        return uint256(uint160(trainer)) | (uint256(outcome) << 160) | (_reliability(w) << 168);
    }

    /// @dev A project's first round: counts the project in each trainer's record, and its owner if new to the
    /// trainer, and sets the {RoundRecorded} bits saying so in `records`.
    function _countProject(address projectOwner, address[] calldata trainers, uint256[] memory records) private {
        for (uint256 i = 0; i < trainers.length; ++i) {
            address trainer = trainers[i];
            uint256 w = _increment(_records[trainer], PROJECTS, COUNTER, trainer);
            records[i] = 1 << 184;
            if (!_workedFor[trainer][projectOwner]) {
                _workedFor[trainer][projectOwner] = true;
                w = _increment(w, OWNERS, OWNER_COUNTER, trainer);
                records[i] |= 1 << 185;
            }
            _records[trainer] = w;
        }
    }

    /// @dev `w` with the counter at bit `at` one higher (reverts {RecordCounterFull} when it is full: `mask`).
    function _increment(uint256 w, uint256 at, uint256 mask, address trainer) private pure returns (uint256) {
        if ((w >> at) & mask == mask) revert RecordCounterFull(trainer);
        unchecked {
            return w + (1 << at); // the counter is below its maximum: no carry into the next field
        }
    }

    /// @dev A trainer flagged in a project whose bar reserved part of its record loses that part: earned and
    /// the reservation shrink together (earned never falls below what stays reserved elsewhere). Returns its record
    /// word `w` with that part debited (and without {RESERVING} once nothing of it stays reserved).
    function _spendReservation(uint256 w, uint256 projectId, address trainer) private returns (uint256) {
        uint256 amount = _reserved[msg.sender][projectId][trainer];
        if (amount == 0) return w;
        delete _reserved[msg.sender][projectId][trainer];
        uint256 left = _reservedTotal[trainer] - amount;
        _reservedTotal[trainer] = left;
        emit RecordSpent(trainer, msg.sender, projectId, amount);
        uint256 earned = (w >> EARNED) - amount; // at most earned: it was available when reserved
        w = (w & ((1 << EARNED) - 1)) | (earned << EARNED);
        return left == 0 ? w & ~RESERVING : w;
    }

    /// @dev The Beta(1, 1) mean of record word `w`, in basis points.
    function _reliability(uint256 w) private pure returns (uint256) {
        unchecked {
            // Three 32-bit counters: every intermediate value is below 2^48.
            uint256 contributed = w & COUNTER;
            uint256 total = contributed + ((w >> FLAGGED) & COUNTER) + ((w >> MISSED) & COUNTER);
            return ((contributed + 1) * BPS) / (total + 2);
        }
    }
}
