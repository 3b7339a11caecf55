// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IRoundVerifier} from "./interfaces/IRoundVerifier.sol";
import {MarketState} from "./MarketState.sol";

/**
 * @title MarketDisputes
 * @notice The rejections of a {TrainingMarket} and their disputes: the aggregator announces the submissions it will
 * reject ({rejectSubmissions}), and a rejected trainer disputes its rejection by publishing its committed row
 * ({disputeRejection}). They used to be the market's own functions; they live here to keep the market under the
 * 24 KB code size limit, and run in the market's storage: the market's fallback hands every call of a function it
 * does not have to its immutable `disputes` module with DELEGATECALL (`msg.sender`, `msg.value` and the storage are
 * the market's), so they are called at the market's address and emit from it, exactly as before.
 *
 * How it is meant to be used: deployed once, before the market, whose constructor takes its address
 * (`marketplace deploy` does both). Call the market, never this contract: its own storage holds no project, so every
 * function called here directly reverts (`UnknownProject`, `WrongStatus`). It holds no ether and no state of its own
 * (the `Ownable` owner of its own storage, its deployer, can do nothing with it).
 */
contract MarketDisputes is MarketState {
    constructor() Ownable(msg.sender) {}

    /// @notice Announces the submissions of `round` that the aggregator will reject (updates it could not
    /// fetch, or whose rows do not match their commitments), once per round, after the reveal phase and
    /// before the aggregation deadline. It opens a dispute window of `revealPeriod` seconds, during which
    /// each of these trainers may publish its committed row ({disputeRejection}); the aggregation deadline
    /// moves to `aggregationPeriod` after the window closes. Only announced, undisputed submissions can be
    /// rejected in {finalizeRound}.
    function rejectSubmissions(uint256 projectId, uint256 round, address[] calldata trainers) external {
        Project storage p = _project(projectId);
        _expectStatus(projectId, p, Status.Training);
        if (msg.sender != p.aggregator) revert Unauthorized(msg.sender);
        if (round != p.currentRound) revert WrongRound(projectId, p.currentRound, round);
        _checkTiming(projectId, p, round);
        if (p.disputeDeadline != 0) revert RejectionsAlreadyAnnounced(projectId, round);
        if (trainers.length == 0) revert InvalidRejection(projectId, round, address(0));

        uint256 deadline = block.timestamp + p.revealPeriod;
        uint64 mask = 0;
        for (uint256 i = 0; i < trainers.length; ++i) {
            address who = trainers[i];
            uint256 slot = _trainers[projectId][who].slot;
            uint64 bit = slot == 0 ? 0 : uint64(1) << (slot - 1);
            if (bit == 0 || mask & bit != 0 || p.revealedMask & bit == 0) {
                revert InvalidRejection(projectId, round, who);
            }
            mask |= bit;
            emit RejectionAnnounced(projectId, round, who, deadline);
        }
        p.rejectedMask = mask;
        p.disputeDeadline = uint40(deadline);
        _aggregatorRecords[msg.sender].rejections += uint64(trainers.length);
    }

    /// @notice Disputes the caller's announced rejection in `round` by publishing its committed `row`: K + 2
    /// integers at scale 2^13 (`v` entries and `l` within {MAX_UNIT} and {MAX_LOG}, presence `a` = {MAX_UNIT}),
    /// with a `proof` that the project's verifier accepts for the caller's commitment and this row
    /// ({IRoundVerifier-verifyRow}). Until the dispute deadline. The rejection is lifted: the round must
    /// be proven with this row (it is scored like any other, and paid if the rule pays it), and the
    /// aggregator's record counts a lost dispute.
    /// A row already published on chain in an earlier round of this project (by a dispute or as the owner's
    /// reference) cannot be published again: the dispute reverts {RowAlreadyPublished} and the rejection stands
    /// (the row proof binds the commitment and the row, not the trainer or the round, so the published calldata
    /// would otherwise pay a later commit of the same commitment for a stale row, without any update). In the
    /// round of its first publication it can (a copy committed in the same round is the rule's: of identical
    /// updates only the first is paid), so nobody can make a fresh row's dispute revert by publishing it first.
    /// A fresh row is recorded as published in this round (`_publishedRows`; the `RejectionDisputed` event shows
    /// it, with the trainer's `UpdateSubmitted` commitment).
    /// WARNING: send it with the gas `eth_estimateGas` gives (about 1M with the zk verifier): with much less,
    /// the verifier's own call runs out of gas, reports the proof as invalid, and the dispute reverts with
    /// {InvalidRowProof}, as for a bad proof (it can be sent again with more gas until the deadline).
    /// WARNING: only rows published on chain are recorded: a trainer that commits again a row never published (its
    /// own earlier row, or one computed from a clear update revealed earlier) is not refused here (docs/security.md,
    /// "Copies"), nor is a row published in another project (`_publishedRows`: per project on purpose).
    function disputeRejection(uint256 projectId, uint256 round, int256[] calldata row, bytes calldata proof)
        external
    {
        Project storage p = _projects[projectId];
        uint64 bit = uint64(1) << (_memberInRound(projectId, p, round).slot - 1);
        if (p.rejectedMask & bit == 0) revert NotRejected(projectId, round, msg.sender);
        if (block.timestamp > p.disputeDeadline) revert DisputeClosed(projectId, round, p.disputeDeadline);
        // A rejected trainer revealed in the open round: its word holds its commitment.
        bytes32 commitment = _submissions[projectId][msg.sender].word;
        mapping(bytes32 => uint256) storage published = _publishedRows[projectId];
        uint256 first = published[commitment]; // 1 + the round it was first published in, or 0
        if (first != 0 && first <= round) revert RowAlreadyPublished(projectId, commitment, first - 1);
        // Recorded before the verifier's calls (a refused row reverts it): the work left after `verifyRow` stays
        // small, so too little gas still makes the verifier's own call fail first (the WARNING above).
        if (first == 0) published[commitment] = round + 1;
        IRoundVerifier verifier = IRoundVerifier(p.verifier);
        _checkRow(row, verifier.sketchWidth());
        if (!verifier.verifyRow(commitment, row, proof)) revert InvalidRowProof(projectId, round, msg.sender);

        p.rejectedMask &= ~bit;
        p.disputedMask |= bit;
        ++_aggregatorRecords[p.aggregator].disputesLost;
        emit RejectionDisputed(projectId, round, msg.sender, row);
    }
}
