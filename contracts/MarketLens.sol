// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TrainingMarket} from "./TrainingMarket.sol";

/**
 * @title MarketLens
 * @notice The composite views of one {TrainingMarket}: a project, a trainer's standing, the open round's
 * deadlines and rejections, a trainer's seal and commitment, an aggregator's track record. They used to be
 * the market's own views; they live here to keep the market under the 24 KB code size limit. Each is computed
 * from the market's raw storage words ({TrainingMarket-extsload}) and answers exactly what the market's view
 * answered (a test compares both in every state of a project).
 *
 * How it is meant to be used: deployed once per market (`marketplace deploy` records it as `MarketLens`);
 * read it instead of the market for these views. It holds no state and sends no transaction.
 *
 * WARNING: this contract follows the market's storage layout (the slots and field widths below). Any change of
 * {TrainingMarket}'s state variables or of its `Project`, `Trainer`, `Submission` or `AggregatorRecord`
 * structs must be mirrored here, or the lens answers wrong values; `UpdateKeys` trusts its `getProject`.
 */
contract MarketLens {
    /// @notice The market this lens reads.
    TrainingMarket public immutable market;

    // The market's storage: `Ownable._owner` in slot 0, then its own state variables in declaration order.
    uint256 private constant _PROJECTS = 2; // mapping(uint256 => Project)
    uint256 private constant _TRAINER_LIST = 3; // mapping(uint256 => address[])
    uint256 private constant _TRAINERS = 4; // mapping(uint256 => mapping(address => Trainer))
    uint256 private constant _SUBMISSIONS = 5; // mapping(uint256 => mapping(address => Submission))
    uint256 private constant _AGGREGATOR_RECORDS = 7; // mapping(address => AggregatorRecord)
    // `Project`'s words from its base slot: 0-2 roles and amounts, 3 the open round, 4 the configuration and
    // rejections, 5 disputes and rewards, 6 `slashed`, 7 `modelName`, 8 `latestModelCid`.
    uint256 private constant _PROJECT_WORDS = 9;

    /// @notice As the market's: the project does not exist.
    error UnknownProject(uint256 projectId);

    constructor(TrainingMarket market_) {
        market = market_;
    }

    /// @notice Everything about a project (reverts `UnknownProject` for an id never created).
    function getProject(uint256 projectId) external view returns (TrainingMarket.ProjectView memory v) {
        uint256 base = _projectBase(projectId);
        bytes32[] memory slots = new bytes32[](_PROJECT_WORDS + 1);
        for (uint256 i = 0; i < _PROJECT_WORDS; ++i) {
            slots[i] = bytes32(base + i);
        }
        slots[_PROJECT_WORDS] = keccak256(abi.encode(projectId, _TRAINER_LIST)); // the trainer list's length
        bytes32[] memory w = market.extsload(slots);
        uint256 w0 = uint256(w[0]);
        if (address(uint160(w0)) == address(0)) revert UnknownProject(projectId);
        uint256 w1 = uint256(w[1]);
        uint256 w2 = uint256(w[2]);
        uint256 w3 = uint256(w[3]);
        uint256 w4 = uint256(w[4]);
        uint256 w5 = uint256(w[5]);
        v.owner = address(uint160(w0));
        v.rewardBudget = uint96(w0 >> 160);
        v.aggregator = address(uint160(w1));
        v.aggregatorFee = uint96(w1 >> 160);
        v.verifier = address(uint160(w2));
        v.stake = uint96(w2 >> 160);
        v.status = TrainingMarket.Status(uint8(w3));
        v.currentRound = uint16(w3 >> 8);
        v.commits = uint8(w3 >> 32);
        v.submissions = uint8(w3 >> 40);
        v.roundStart = uint40(w3 >> 48);
        v.submissionPeriod = uint32(w3 >> 128);
        v.revealPeriod = uint32(w3 >> 160);
        v.rounds = uint16(w4);
        v.minTrainers = uint8(w4 >> 16);
        v.maxTrainers = uint8(w4 >> 24);
        v.minReliabilityBps = uint16(w4 >> 32);
        v.slashBps = uint16(w4 >> 48);
        v.joinDeadline = uint32(w4 >> 80);
        v.aggregationPeriod = uint32(w4 >> 112);
        v.totalEarned = uint128(w5 >> 104);
        v.slashed = uint128(uint256(w[6]));
        v.trainerCount = uint256(w[_PROJECT_WORDS]);
        v.modelName = _string(base + 7, w[7]);
        v.latestModelCid = _string(base + 8, w[8]);
    }

    /// @notice A trainer's standing in a project (all zero for an account that is not one of its trainers).
    function trainerInfo(uint256 projectId, address trainer)
        external
        view
        returns (bool member, uint256 index, uint256 stakeLeft, uint256 earned, bool withdrawn)
    {
        uint256 t = _word(_slotOf(trainer, _TRAINERS, projectId));
        uint256 slot = uint8(t);
        member = slot != 0;
        index = member ? slot - 1 : 0;
        return (member, index, uint96(t >> 48), uint96(t >> 144), uint8(t >> 8) != 0);
    }

    /// @notice The seal `trainer` committed for `round`, if that is the last round it committed in; 0 otherwise.
    /// The market keeps each trainer's latest seal only: every round's are in the `UpdateCommitted` events.
    function committedSeal(uint256 projectId, uint256 round, address trainer) external view returns (bytes32) {
        bytes32[] memory slots = new bytes32[](2);
        slots[0] = _slotOf(trainer, _TRAINERS, projectId);
        slots[1] = _slotOf(trainer, _SUBMISSIONS, projectId); // Submission.seal
        bytes32[] memory w = market.extsload(slots);
        if (uint16(uint256(w[0]) >> 32) != round + 1) return bytes32(0);
        return w[1];
    }

    /// @notice The row commitment `trainer` revealed in `round`, if `round` is the open round (or the round its
    /// project was abandoned in); 0 otherwise. The market keeps the open round's commitments only: every round's
    /// are in the `UpdateSubmitted` events.
    function commitmentOf(uint256 projectId, uint256 round, address trainer) external view returns (bytes32) {
        bytes32[] memory slots = new bytes32[](3);
        slots[0] = bytes32(_projectBase(projectId) + 3);
        slots[1] = _slotOf(trainer, _TRAINERS, projectId);
        slots[2] = bytes32(uint256(_slotOf(trainer, _SUBMISSIONS, projectId)) + 1); // Submission.commitment
        bytes32[] memory w = market.extsload(slots);
        uint256 open = uint256(w[0]);
        uint256 slot = uint8(uint256(w[1]));
        if (round != uint16(open >> 8) || slot == 0 || (uint64(open >> 192) >> (slot - 1)) & 1 == 0) {
            return bytes32(0);
        }
        return w[2];
    }

    /// @notice The current round's deadlines (all 0 unless training): commits until `commitDeadline`
    /// (or until every trainer committed); reveals from `revealOpens` until `revealDeadline`;
    /// finalization until `aggregationDeadline`, once every committed trainer revealed or the reveal
    /// deadline passed. `revealOpens` is the moment the last trainer committed, if all did in time.
    function roundDeadlines(uint256 projectId)
        external
        view
        returns (uint256 commitDeadline, uint256 revealOpens, uint256 revealDeadline, uint256 aggregationDeadline)
    {
        (uint256 open, uint256 config, uint256 disputes) = _projectWords(projectId);
        if (TrainingMarket.Status(uint8(open)) != TrainingMarket.Status.Training) return (0, 0, 0, 0);
        commitDeadline = uint256(uint40(open >> 48)) + uint32(open >> 128);
        uint256 closedAt = uint40(open >> 88);
        bool allCommitted = uint8(open >> 32) == uint8(open >> 24) && closedAt != 0;
        uint256 revealStart = allCommitted ? closedAt : commitDeadline;
        revealOpens = allCommitted ? revealStart : commitDeadline + 1;
        revealDeadline = revealStart + uint32(open >> 160);
        uint256 disputeDeadline = uint40(disputes >> 64);
        uint256 settleFrom = disputeDeadline > revealDeadline ? disputeDeadline : revealDeadline;
        aggregationDeadline = settleFrom + uint32(config >> 112);
    }

    /// @notice The open round's rejections: bit i of `rejectedMask` is set while trainer i's announced
    /// rejection stands, bit i of `disputedMask` once trainer i disputed it, and `disputeDeadline` is the
    /// end of the dispute window (0 when the aggregator announced no rejections in the open round).
    function rejections(uint256 projectId)
        external
        view
        returns (uint256 rejectedMask, uint256 disputedMask, uint256 disputeDeadline)
    {
        (, uint256 config, uint256 disputes) = _projectWords(projectId);
        return (uint64(config >> 144), uint64(disputes), uint40(disputes >> 64));
    }

    /// @notice `aggregator`'s track record over all projects of this market: rounds finalized, submissions
    /// it announced as rejected, disputes it lost (rejected trainers that published their committed row), and
    /// rejections that stood (the rest were withdrawn at finalization, or are pending).
    function aggregatorRecord(address aggregator)
        external
        view
        returns (uint256 rounds, uint256 rejected, uint256 disputesLost, uint256 upheld)
    {
        uint256 r = _word(keccak256(abi.encode(aggregator, _AGGREGATOR_RECORDS)));
        return (uint64(r), uint64(r >> 64), uint64(r >> 128), uint64(r >> 192));
    }

    // ------------------------------------------------------------------ internals

    /// @dev The base slot of `_projects[projectId]`.
    function _projectBase(uint256 projectId) private pure returns (uint256) {
        return uint256(keccak256(abi.encode(projectId, _PROJECTS)));
    }

    /// @dev The slot of `mapping[projectId][account]` for the nested mapping at slot `mappingSlot`.
    function _slotOf(address account, uint256 mappingSlot, uint256 projectId) private pure returns (bytes32) {
        return keccak256(abi.encode(account, keccak256(abi.encode(projectId, mappingSlot))));
    }

    function _word(bytes32 slot) private view returns (uint256) {
        bytes32[] memory slots = new bytes32[](1);
        slots[0] = slot;
        return uint256(market.extsload(slots)[0]);
    }

    /// @dev A project's words 3 (the open round), 4 (configuration, rejections) and 5 (disputes, rewards); reverts
    /// `UnknownProject` if it has no owner (word 0).
    function _projectWords(uint256 projectId) private view returns (uint256 open, uint256 config, uint256 disputes) {
        uint256 base = _projectBase(projectId);
        bytes32[] memory slots = new bytes32[](4);
        slots[0] = bytes32(base);
        slots[1] = bytes32(base + 3);
        slots[2] = bytes32(base + 4);
        slots[3] = bytes32(base + 5);
        bytes32[] memory w = market.extsload(slots);
        if (address(uint160(uint256(w[0]))) == address(0)) revert UnknownProject(projectId);
        return (uint256(w[1]), uint256(w[2]), uint256(w[3]));
    }

    /// @dev The string stored at `slot`, whose word is `word`: a short one (under 32 bytes) is in the word itself,
    /// its length doubled in the lowest byte; a long one has its length doubled plus one in the word and its bytes
    /// from `keccak256(slot)` on.
    function _string(uint256 slot, bytes32 word) private view returns (string memory) {
        uint256 w = uint256(word);
        if (w & 1 == 0) {
            uint256 n = (w & 0xff) / 2;
            bytes memory short = new bytes(n);
            for (uint256 i = 0; i < n; ++i) {
                short[i] = word[i];
            }
            return string(short);
        }
        uint256 length = (w - 1) / 2;
        uint256 count = (length + 31) / 32;
        uint256 data = uint256(keccak256(abi.encode(slot)));
        bytes32[] memory slots = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            slots[i] = bytes32(data + i);
        }
        bytes32[] memory words = market.extsload(slots);
        bytes memory out = new bytes(count * 32);
        for (uint256 i = 0; i < count; ++i) {
            bytes32 part = words[i];
            assembly ("memory-safe") {
                mstore(add(add(out, 32), mul(i, 32)), part)
            }
        }
        assembly ("memory-safe") {
            mstore(out, length)
        }
        return string(out);
    }
}
