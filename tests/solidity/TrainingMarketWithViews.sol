// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TrainingMarket} from "../../contracts/TrainingMarket.sol";
import {MarketDisputes} from "../../contracts/MarketDisputes.sol";
import {IReliabilityRegistry} from "../../contracts/interfaces/IReliabilityRegistry.sol";

/**
 * @title TrainingMarketWithViews
 * @notice Test reference only (tests/test_market_lens.py): the market with the composite views it had before they
 * moved into {MarketLens}, copied verbatim (and the owner's reference record read directly; `committedSeal` and
 * `commitmentOf` as they read the one word a reveal turns from the seal into the commitment). The test drives this market through a project's states and checks that
 * the lens, reading its raw storage, answers exactly what these views answer. Over 24 KB: local chains only, with
 * the code size limit disabled.
 */
contract TrainingMarketWithViews is TrainingMarket {
    constructor(address admin, IReliabilityRegistry registry_, MarketDisputes disputes_)
        TrainingMarket(admin, registry_, disputes_)
    {}

    /// @notice Everything about a project.
    function getProject(uint256 projectId) external view returns (ProjectView memory v) {
        Project storage p = _project(projectId);
        v.owner = p.owner;
        v.aggregator = p.aggregator;
        v.verifier = p.verifier;
        v.status = p.status;
        v.rewardBudget = p.rewardBudget;
        v.aggregatorFee = p.aggregatorFee;
        v.stake = p.stake;
        v.rounds = p.rounds;
        v.currentRound = p.currentRound;
        v.minTrainers = p.minTrainers;
        v.maxTrainers = p.maxTrainers;
        v.trainerCount = _trainerList[projectId].length;
        v.minReliabilityBps = p.minReliabilityBps;
        v.slashBps = p.slashBps;
        v.joinDeadline = p.joinDeadline;
        v.roundStart = p.roundStart;
        v.submissionPeriod = p.submissionPeriod;
        v.revealPeriod = p.revealPeriod;
        v.aggregationPeriod = p.aggregationPeriod;
        v.commits = p.commits;
        v.submissions = p.submissions;
        v.totalEarned = p.totalEarned;
        v.slashed = p.slashed;
        v.modelName = p.modelName;
        v.latestModelCid = p.latestModelCid;
        v.referenceExpected = p.referenceExpected;
    }

    /// @notice A trainer's standing in a project.
    function trainerInfo(uint256 projectId, address trainer)
        external
        view
        returns (bool member, uint256 index, uint256 stakeLeft, uint256 earned, bool withdrawn)
    {
        Trainer memory t = _trainers[projectId][trainer];
        member = t.slot != 0;
        index = member ? t.slot - 1 : 0;
        return (member, index, t.stakeLeft, t.earned, t.withdrawn);
    }

    /// @notice The seal `trainer` committed for `round`, while the market holds it: if `round` is the open round (or
    /// the round its project was abandoned in), `trainer` committed in it and has not revealed; 0 otherwise. The
    /// market keeps a trainer's seal until its reveal only (the commitment then takes its place): every round's are
    /// in the `UpdateCommitted` events.
    function committedSeal(uint256 projectId, uint256 round, address trainer) external view returns (bytes32) {
        Project storage p = _projects[projectId];
        Trainer storage t = _trainers[projectId][trainer];
        if (round != p.currentRound || t.committedRound != round + 1) return bytes32(0);
        if ((p.revealedMask >> (t.slot - 1)) & 1 == 1) return bytes32(0);
        return _submissions[projectId][trainer].word;
    }

    /// @notice The row commitment `trainer` revealed in `round`, if `round` is the open round (or the round its
    /// project was abandoned in); 0 otherwise. The market keeps the open round's commitments only: every round's
    /// are in the `UpdateSubmitted` events.
    function commitmentOf(uint256 projectId, uint256 round, address trainer) external view returns (bytes32) {
        Project storage p = _projects[projectId];
        uint256 slot = _trainers[projectId][trainer].slot;
        if (round != p.currentRound || slot == 0 || (p.revealedMask >> (slot - 1)) & 1 == 0) return bytes32(0);
        return _submissions[projectId][trainer].word;
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
        Project storage p = _project(projectId);
        if (p.status != Status.Training) return (0, 0, 0, 0);
        return _deadlines(p);
    }

    /// @notice The open round's rejections: bit i of `rejectedMask` is set while trainer i's announced
    /// rejection stands, bit i of `disputedMask` once trainer i disputed it, and `disputeDeadline` is the
    /// end of the dispute window (0 when the aggregator announced no rejections in the open round).
    function rejections(uint256 projectId)
        external
        view
        returns (uint256 rejectedMask, uint256 disputedMask, uint256 disputeDeadline)
    {
        Project storage p = _project(projectId);
        return (p.rejectedMask, p.disputedMask, p.disputeDeadline);
    }

    /// @notice `aggregator`'s track record over all projects of this market: rounds finalized, submissions
    /// it announced as rejected, disputes it lost (rejected trainers that published their committed row), and
    /// rejections that stood (the rest were withdrawn at finalization, or are pending).
    function aggregatorRecord(address aggregator)
        external
        view
        returns (uint256 rounds, uint256 rejected, uint256 disputesLost, uint256 upheld)
    {
        AggregatorRecord storage r = _aggregatorRecords[aggregator];
        return (r.rounds, r.rejections, r.disputesLost, r.upheld);
    }

    /// @notice Number of projects created; ids run from 1 to this.
    function projectCount() external view returns (uint256) {
        return _projectCount;
    }

    /// @notice The project's trainers in join order (the order of scores and flags).
    function trainersOf(uint256 projectId) external view returns (address[] memory) {
        _project(projectId);
        return _trainerList[projectId];
    }

    /// @notice What `account` could withdraw now (0 while the project runs).
    function withdrawable(uint256 projectId, address account) external view returns (uint256) {
        Project storage p = _project(projectId);
        if (p.status != Status.Finished && p.status != Status.Cancelled) return 0;
        return _owed(projectId, p, account);
    }

    /// @notice What a trainer must have earned in independent projects to join `projectId` (0 without a bar).
    function requiredTrackRecord(uint256 projectId) external view returns (uint256) {
        Project storage p = _project(projectId);
        return p.minReliabilityBps == 0 ? 0 : _requiredTrackRecord(p);
    }

    /// @notice Public seed of the project's update sketches (a fixed random projection).
    function sketchSeed(uint256 projectId) external view returns (uint256) {
        _project(projectId);
        return uint256(keccak256(abi.encode(block.chainid, address(this), projectId)));
    }

    /// @notice Whether `verifier` may be used by new projects.
    function isVerifierApproved(address verifier) external view returns (bool) {
        return _approvedVerifiers[verifier];
    }

    /// @notice The tag of `round` of `projectId` that {finalizeRound} hands the verifier.
    function roundTag(uint256 projectId, uint256 round) external view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), projectId, round));
    }

    /// @notice The seal of a submission.
    function sealOf(
        bytes32 commitment,
        string calldata cid,
        address trainer,
        uint256 projectId,
        uint256 round,
        bytes32 salt
    ) external view returns (bytes32) {
        return keccak256(
            abi.encode(commitment, keccak256(bytes(cid)), trainer, block.chainid, address(this), projectId, round, salt)
        );
    }

    /// @notice The owner's reference row of `round`: its seal and revealed commitment (0 for none).
    function referenceOf(uint256 projectId, uint256 round) external view returns (bytes32 seal, bytes32 commitment) {
        Reference storage ref = _references[projectId][round];
        return (ref.seal, ref.commitment);
    }
}
