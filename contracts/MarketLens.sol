// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketState} from "./MarketState.sol";
import {TrainingMarket} from "./TrainingMarket.sol";

/**
 * @title MarketLens
 * @notice The views of one {TrainingMarket}: a project, its trainers, a trainer's standing, the open round's
 * deadlines and rejections, a trainer's seal and commitment, the owner's reference row of a round, what an account
 * may withdraw, a project's required track record and sketch seed, whether a verifier is approved, an aggregator's
 * track record, and the seal and round tag the market computes. They used to be the market's own views; they live
 * here to keep the market under the 24 KB code size limit. Each is computed from the market's raw storage words
 * ({TrainingMarket-extsload}) or its address and chain, and answers exactly what the market's view answered (a test
 * compares both in every state of a project).
 *
 * How it is meant to be used: deployed once per market (`marketplace deploy` records it as `MarketLens`);
 * read it instead of the market for these views. It holds no state and sends no transaction.
 *
 * WARNING: this contract follows the market's storage layout (the slots and field widths below). Any change of
 * the market's state variables or of its `Project`, `Trainer`, `Submission`, `Reference` or `AggregatorRecord`
 * structs (all in {MarketState}), or of how it computes seals, round tags, sketch seeds, amounts owed or required track records, must be
 * mirrored here, or the lens answers wrong values; `UpdateKeys` trusts its `getProject`.
 */
contract MarketLens {
    /// @notice The market this lens reads.
    TrainingMarket public immutable market;

    // The market's storage: `Ownable._owner` in slot 0, then its own state variables in declaration order.
    uint256 private constant _PROJECTS = 2; // mapping(uint256 => Project)
    uint256 private constant _TRAINER_LIST = 3; // mapping(uint256 => address[])
    uint256 private constant _TRAINERS = 4; // mapping(uint256 => mapping(address => Trainer))
    uint256 private constant _SUBMISSIONS = 5; // mapping(uint256 => mapping(address => Submission)): one word
    uint256 private constant _PROJECT_COUNT = 1; // uint256
    uint256 private constant _APPROVED_VERIFIERS = 6; // mapping(address => bool)
    uint256 private constant _AGGREGATOR_RECORDS = 7; // mapping(address => AggregatorRecord)
    uint256 private constant _REFERENCES = 8; // mapping(uint256 => mapping(uint256 => Reference))
    // Slot 9, `_publishedRows` (mapping(uint256 => mapping(bytes32 => uint256))), has no view here.
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
        v.status = MarketState.Status(uint8(w3));
        v.currentRound = uint16(w3 >> 8);
        v.commits = uint8(w3 >> 32);
        v.submissions = uint8(w3 >> 40);
        v.roundStart = uint40(w3 >> 48);
        v.submissionPeriod = uint32(w3 >> 128);
        v.revealPeriod = uint32(w3 >> 160);
        v.referenceExpected = uint8(w3 >> 120) != 0;
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

    /// @notice The seal `trainer` committed for `round`, while the market holds it: if `round` is the open round (or
    /// the round its project was abandoned in), `trainer` committed in it and has not revealed; 0 otherwise. The
    /// market keeps a trainer's seal until its reveal only (the commitment then takes its place): every round's are
    /// in the `UpdateCommitted` events.
    function committedSeal(uint256 projectId, uint256 round, address trainer) external view returns (bytes32) {
        bytes32[] memory slots = new bytes32[](3);
        slots[0] = bytes32(_projectBase(projectId) + 3);
        slots[1] = _slotOf(trainer, _TRAINERS, projectId);
        slots[2] = _slotOf(trainer, _SUBMISSIONS, projectId);
        bytes32[] memory w = market.extsload(slots);
        uint256 open = uint256(w[0]);
        uint256 t = uint256(w[1]);
        if (round != uint16(open >> 8) || uint16(t >> 32) != round + 1) return bytes32(0);
        if ((uint64(open >> 192) >> (uint8(t) - 1)) & 1 != 0) return bytes32(0); // revealed: the commitment
        return w[2];
    }

    /// @notice The row commitment `trainer` revealed in `round`, if `round` is the open round (or the round its
    /// project was abandoned in); 0 otherwise. The market keeps the open round's commitments only: every round's
    /// are in the `UpdateSubmitted` events.
    function commitmentOf(uint256 projectId, uint256 round, address trainer) external view returns (bytes32) {
        bytes32[] memory slots = new bytes32[](3);
        slots[0] = bytes32(_projectBase(projectId) + 3);
        slots[1] = _slotOf(trainer, _TRAINERS, projectId);
        slots[2] = _slotOf(trainer, _SUBMISSIONS, projectId); // the commitment once revealed
        bytes32[] memory w = market.extsload(slots);
        uint256 open = uint256(w[0]);
        uint256 slot = uint8(uint256(w[1]));
        if (round != uint16(open >> 8) || slot == 0 || (uint64(open >> 192) >> (slot - 1)) & 1 == 0) {
            return bytes32(0);
        }
        return w[2];
    }

    /// @notice The current round's deadlines (all 0 unless training): commits until `commitDeadline`
    /// (or until every trainer committed, and the owner's reference if the project expects one); reveals from
    /// `revealOpens` until `revealDeadline`; finalization until `aggregationDeadline`, once every committed trainer
    /// revealed (and the owner, if it committed a reference) or the reveal deadline passed. `revealOpens` is the moment
    /// the commit phase closed early, if it did (the last of the trainers' and the expected reference's commits), else
    /// one second after `commitDeadline`.
    function roundDeadlines(uint256 projectId)
        external
        view
        returns (uint256 commitDeadline, uint256 revealOpens, uint256 revealDeadline, uint256 aggregationDeadline)
    {
        (uint256 open, uint256 config, uint256 disputes) = _projectWords(projectId);
        if (MarketState.Status(uint8(open)) != MarketState.Status.Training) return (0, 0, 0, 0);
        commitDeadline = uint256(uint40(open >> 48)) + uint32(open >> 128);
        uint256 closedAt = uint32(open >> 88);
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

    /// @notice The bond, in wei, the market's aggregators post per rejected trainer ({MarketDisputes-rejectionBond}:
    /// fixed at deployment, in the market's disputes module); a successful dispute is reimbursed its gas out of it,
    /// never more.
    function rejectionBond() external view returns (uint256) {
        return market.disputes().rejectionBond();
    }

    /// @notice Number of projects created; ids run from 1 to this.
    function projectCount() external view returns (uint256) {
        return _word(bytes32(_PROJECT_COUNT));
    }

    /// @notice The project's trainers in join order (the order of scores and flags).
    function trainersOf(uint256 projectId) external view returns (address[] memory list) {
        _projectWords(projectId); // reverts UnknownProject
        bytes32 lengthSlot = keccak256(abi.encode(projectId, _TRAINER_LIST));
        uint256 n = _word(lengthSlot);
        uint256 data = uint256(keccak256(abi.encode(lengthSlot)));
        bytes32[] memory slots = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            slots[i] = bytes32(data + i);
        }
        bytes32[] memory words = market.extsload(slots);
        list = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            list[i] = address(uint160(uint256(words[i])));
        }
    }

    /// @notice What `account` could withdraw now from `projectId` (0 while the project runs), in all its roles: the
    /// owner the unspent budget, rounding dust, unearned aggregator fee and slashed stakes, the aggregator its fee
    /// for finalized rounds, a trainer its rewards and remaining stake; nothing once it withdrew.
    function withdrawable(uint256 projectId, address account) external view returns (uint256 amount) {
        uint256 base = _projectBase(projectId);
        bytes32[] memory slots = new bytes32[](7);
        slots[0] = bytes32(base);
        slots[1] = bytes32(base + 1);
        slots[2] = bytes32(base + 3);
        slots[3] = bytes32(base + 4);
        slots[4] = bytes32(base + 5);
        slots[5] = bytes32(base + 6);
        slots[6] = _slotOf(account, _TRAINERS, projectId);
        bytes32[] memory w = market.extsload(slots);
        uint256 w0 = uint256(w[0]);
        if (address(uint160(w0)) == address(0)) revert UnknownProject(projectId);
        MarketState.Status status = MarketState.Status(uint8(uint256(w[2])));
        if (status != MarketState.Status.Finished && status != MarketState.Status.Cancelled) return 0;
        uint256 w1 = uint256(w[1]);
        uint256 config = uint256(w[3]);
        uint256 fee = uint96(w1 >> 160);
        uint256 aggregatorEarned = (fee * uint16(uint256(w[2]) >> 8)) / uint16(config);
        if (account == address(uint160(w0)) && uint8(config >> 64) == 0) {
            amount += uint96(w0 >> 160) - uint128(uint256(w[4]) >> 104) + fee - aggregatorEarned + uint128(uint256(w[5]));
        }
        if (account == address(uint160(w1)) && uint8(config >> 72) == 0) amount += aggregatorEarned;
        uint256 t = uint256(w[6]);
        if (uint8(t) != 0 && uint8(t >> 8) == 0) amount += uint96(t >> 144) + uint96(t >> 48);
    }

    /// @notice What a trainer must have earned in independent projects, and not reserved by another bar, to join
    /// `projectId` if it sets a reliability bar (0 otherwise): its budget per guaranteed trainer (`minTrainers`)
    /// divided by the protocol fee rate (see {TrainingMarket-PROTOCOL_FEE_BPS}).
    function requiredTrackRecord(uint256 projectId) external view returns (uint256) {
        uint256 base = _projectBase(projectId);
        bytes32[] memory slots = new bytes32[](2);
        slots[0] = bytes32(base);
        slots[1] = bytes32(base + 4);
        bytes32[] memory w = market.extsload(slots);
        uint256 w0 = uint256(w[0]);
        if (address(uint160(w0)) == address(0)) revert UnknownProject(projectId);
        uint256 config = uint256(w[1]);
        if (uint16(config >> 32) == 0) return 0;
        return (uint256(uint96(w0 >> 160)) * 10_000) / (uint256(uint8(config >> 16)) * market.PROTOCOL_FEE_BPS());
    }

    /// @notice Public seed of the project's update sketches (a fixed random projection):
    /// `keccak256(abi.encode(block.chainid, market, projectId))`.
    function sketchSeed(uint256 projectId) external view returns (uint256) {
        _projectWords(projectId); // reverts UnknownProject
        return uint256(keccak256(abi.encode(block.chainid, address(market), projectId)));
    }

    /// @notice Whether `verifier` may be used by new projects of the market.
    function isVerifierApproved(address verifier) external view returns (bool) {
        return _word(keccak256(abi.encode(verifier, _APPROVED_VERIFIERS))) & 0xff != 0;
    }

    /// @notice The tag of `round` of `projectId` that `finalizeRound` hands the verifier:
    /// `keccak256(abi.encode(block.chainid, market, projectId, round))`. A round's proof is made for its tag and
    /// fails with any other (another round, project, market or chain).
    function roundTag(uint256 projectId, uint256 round) external view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(market), projectId, round));
    }

    /// @notice The seal of a submission: `keccak256(abi.encode(commitment, keccak256(bytes(cid)), trainer,
    /// block.chainid, market, projectId, round, salt))`, what `commitUpdate` stores and `revealUpdate` opens. It
    /// binds the submission to its trainer, chain, market, project and round; the secret `salt` hides it until the
    /// reveal. The owner's reference row is sealed the same way with an empty `cid` and the owner as `trainer`
    /// (`commitReference`, `revealReference`).
    function sealOf(
        bytes32 commitment,
        string calldata cid,
        address trainer,
        uint256 projectId,
        uint256 round,
        bytes32 salt
    ) external view returns (bytes32) {
        return keccak256(
            abi.encode(commitment, keccak256(bytes(cid)), trainer, block.chainid, address(market), projectId, round, salt)
        );
    }

    /// @notice The owner's reference row of `round` of `projectId`: the seal it committed ({TrainingMarket-
    /// commitReference}) and the row commitment it revealed (`revealReference`), 0 for none. Kept for every round;
    /// the rows themselves are in the `ReferenceRevealed` events.
    function referenceOf(uint256 projectId, uint256 round) external view returns (bytes32 seal, bytes32 commitment) {
        uint256 at = uint256(keccak256(abi.encode(round, keccak256(abi.encode(projectId, _REFERENCES)))));
        bytes32[] memory slots = new bytes32[](2);
        slots[0] = bytes32(at);
        slots[1] = bytes32(at + 1);
        bytes32[] memory w = market.extsload(slots);
        return (w[0], w[1]);
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

    /// @dev The market's storage word at `slot`.
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
