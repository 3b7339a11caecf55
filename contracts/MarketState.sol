// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title MarketState
 * @notice The storage of a {TrainingMarket}, with the types, errors and checks of it that both the market and its
 * {MarketDisputes} module use. The module runs in the market's storage (the market's fallback hands it its calls
 * with DELEGATECALL), so both must lay their storage out exactly alike: both inherit it from here, and neither
 * declares a state variable of its own (immutables and constants are code, not storage).
 *
 * WARNING: {MarketLens} reads this layout word by word: any change of the state variables below or of the
 * `Project`, `Trainer`, `Submission`, `Reference` or `AggregatorRecord` structs must be mirrored there.
 */
abstract contract MarketState is Ownable {
    /// @notice Lifecycle of a project.
    enum Status {
        Open, // trainers may join
        Training, // rounds are running
        Finished, // all rounds finalized; withdrawals open
        Cancelled // cancelled or abandoned; withdrawals open
    }

    /// @dev Laid out so that a trainer's commit and reveal read and write one slot of it (the open round's),
    /// besides the verifier's for a reveal. Widths: at most {TrainingMarket-MAX_TRAINERS} trainers (8 bits, a 64-bit
    /// mask), `MAX_ROUNDS` rounds (16 bits), the open round's start in 40 bits (until the year 36812; the join
    /// deadline and the moment the commit phase closed early in 32, until 2106), amounts of ether in 96 bits (more than
    /// all ether there is), sums of them in 128.
    struct Project {
        address owner;
        uint96 rewardBudget;
        address aggregator;
        uint96 aggregatorFee;
        address verifier;
        uint96 stake;
        // The open round (one slot):
        Status status;
        uint16 currentRound;
        uint8 trainerCount; // set when training starts (the trainer list is fixed from then on)
        uint8 commits; // commits in the current round
        uint8 submissions; // reveals in the current round
        uint40 roundStart;
        uint32 commitsClosedAt; // when the commit phase closed early: every trainer committed (and the reference)
        bool referenceExpected; // the commit phase waits for the owner's reference ({TrainingMarket-expectReference})
        uint32 submissionPeriod;
        uint32 revealPeriod;
        uint64 revealedMask; // bit i: trainer i revealed in the open round
        // The configuration and the open round's rejections (one slot):
        uint16 rounds;
        uint8 minTrainers;
        uint8 maxTrainers;
        uint16 minReliabilityBps;
        uint16 slashBps;
        bool ownerPaid;
        bool aggregatorPaid;
        uint32 joinDeadline;
        uint32 aggregationPeriod;
        uint64 rejectedMask; // bit i: trainer i's submission is rejected in the open round (announced, undisputed)
        // The open round's disputes and the rewards credited (one slot: a dispute rewrites the slot its deadline,
        // set by the announcement, made non-zero; the mask first, so that the deadline does not fit the slot above):
        uint64 disputedMask; // bit i: trainer i disputed its rejection in the open round
        uint40 disputeDeadline; // end of the open round's dispute window (0: no rejections announced)
        uint128 totalEarned;
        // The stake slashed, and the open round's stale-challenge window (one slot: `slashed` is written at every
        // finalization, the window is read then; a reveal writes its time):
        uint128 slashed;
        uint32 lastRevealAt; // when the open round's latest reveal landed (0: none in the project yet)
        uint64 staleMask; // bit i: trainer i's submission in the open round was shown stale (challengeStale)
        string modelName;
        string latestModelCid;
    }

    /// @notice An aggregator's track record over every project of this market ({MarketLens-aggregatorRecord}).
    struct AggregatorRecord {
        uint64 rounds; // rounds it finalized
        uint64 rejections; // submissions it announced as rejected
        uint64 disputesLost; // of those, the ones whose trainer published its committed row
        uint64 upheld; // of those, the ones that stood (rejected at finalization or abandonment)
    }

    /// @dev One slot per trainer and project, read by its commit and reveal and written by its commit.
    /// `earned` is at most the project's budget (a uint96).
    struct Trainer {
        uint8 slot; // index + 1 in the trainer list; 0 = not a member
        bool withdrawn;
        bool reserved; // the project's reliability bar reserved part of its record (released when it withdraws)
        uint8 arrival; // 1 + position of its commit in round `committedRound - 1`
        uint16 committedRound; // 1 + the last round it committed in (0: none)
        uint96 stakeLeft;
        uint96 earned;
    }

    /// @dev A trainer's submission word (see `_submissions`): a struct of one slot, so that a reveal reads and
    /// writes it through one storage pointer.
    struct Submission {
        bytes32 word; // its latest seal, then the commitment it opened to
    }

    /// @dev The owner's reference row of a round: its seal and the row commitment it opened to (0: none revealed).
    struct Reference {
        bytes32 seal;
        bytes32 commitment;
    }

    /// @dev Largest absolute value of a published row's `v` entries: 1 at the circuit's scale 2^13
    /// (`marketplace.protocol.commitment.MAX_UNIT_INT`); also the only accepted presence value `a`. This constant and
    /// the next have no getter (the 24 KB limit): the verifier's `ROW_ONE` and `ROW_MAX_LOG` are the same box.
    int256 internal constant MAX_UNIT = 8192;
    /// @dev Largest absolute value of a published row's `l`: 32 at scale 2^13 (`MAX_LOG_INT`).
    int256 internal constant MAX_LOG = 32 * 8192;

    uint256 internal _projectCount;
    mapping(uint256 projectId => Project) internal _projects;
    mapping(uint256 projectId => address[]) internal _trainerList;
    mapping(uint256 projectId => mapping(address => Trainer)) internal _trainers;
    /// @dev A trainer's submission in a project, one word overwritten every round (a slot written again costs 5k gas,
    /// a new one 22k): the seal of its latest commit, which its reveal replaces with the row commitment the seal
    /// opened to (the seal is no longer needed, and the slot is warm: 2.1k gas less than a second slot). Which of the
    /// two it holds: the commitment if the trainer revealed in the open round ({Project}'s `revealedMask`), the seal
    /// of round `committedRound - 1` ({Trainer}) if it committed in the open round and has not revealed; for a
    /// finalized round either, so nothing reads it then: every round's seals and commitments are in the
    /// `UpdateCommitted` and `UpdateSubmitted` events.
    mapping(uint256 projectId => mapping(address => Submission)) internal _submissions;
    mapping(address verifier => bool) internal _approvedVerifiers;
    mapping(address aggregator => AggregatorRecord) internal _aggregatorRecords;
    /// @dev The owner's reference row of each round ({commitReference}, {revealReference}): its seal and the row
    /// commitment it opened to (0: none revealed). One pair per round, never overwritten: {MarketLens-referenceOf}.
    mapping(uint256 projectId => mapping(uint256 round => Reference)) internal _references;
    /// @dev The rows published on chain in each project, by row commitment: 1 + the first round whose transaction
    /// published the row behind it (0: never published), by a trainer's dispute ({MarketDisputes-disputeRejection},
    /// event `RejectionDisputed`) or by the owner's reference ({TrainingMarket-revealReference}, event
    /// `ReferenceRevealed`); written once, never cleared. A row proof binds the commitment and the row only (not the
    /// trainer, not the round), and a published row and its proof are anyone's to copy: without this record a trainer
    /// could commit a published row's commitment in a later round, serve nothing, and dispute its rejection with the
    /// published calldata, paid for a stale row without any update. So a dispute in a later round of the same
    /// project reverts {RowAlreadyPublished}; in the round of the first publication it does not (see
    /// {MarketDisputes-disputeRejection}). No event of its own: those two events are the publications (the
    /// commitment of a `RejectionDisputed` row is its trainer's `UpdateSubmitted` commitment of that round).
    /// Appended last: the market and its disputes module share this layout ({MarketLens} has no view of it).
    /// WARNING: per project on purpose, so a row published in another project blocks nothing here: one set over
    /// every project would let anyone who learned a trainer's commitment and row (a clear update is public once
    /// revealed) publish that row first in a project of its own and make the honest trainer's dispute revert
    /// (griefing). The price: a row replayed from another project is not refused; it is scored there by the
    /// rule with that project's rows, as any copy of an update revealed elsewhere.
    mapping(uint256 projectId => mapping(bytes32 commitment => uint256 roundPlusOne)) internal _publishedRows;
    /// @dev The rejection bonds still held for each round ({MarketDisputes-rejectSubmissions}): what the aggregator
    /// posted, less the bonds awarded to the trainers that disputed; credited back to the aggregator once, after the
    /// round's dispute window ({MarketDisputes-reclaimBonds}), which zeroes it. Appended last (the shared layout).
    mapping(uint256 projectId => mapping(uint256 round => uint256 amount)) internal _bondsHeld;
    /// @dev Bonds each account may withdraw ({MarketDisputes-withdrawBonds}), over every project: awarded to a trainer
    /// that disputed its rejection, returned to an aggregator whose rejections were not disputed. Appended last.
    mapping(address account => uint256 amount) internal _bondCredits;
    /// @dev Every finalized round's revealed commitments, as `keccak256(abi.encodePacked(c))` of the round's
    /// commitments in trainer order (`c[i]`: trainer i's `UpdateSubmitted` commitment, 0 if it did not reveal;
    /// a rejected submission's commitment too), written once by {TrainingMarket-finalizeRound}. It is what a stale
    /// challenge ({MarketDisputes-challengeStale}) shows an earlier row against: the challenger hands the round's
    /// commitments (from the events) and the contract hashes them, one new word per round (22.1k gas, ~1.4k per
    /// trainer at N = 16) instead of a word per reveal. Appended last (the shared layout).
    mapping(uint256 projectId => mapping(uint256 round => bytes32 hash)) internal _roundCommitments;

    /// @notice The aggregator announced that it will reject `trainer`'s submission in `round`; the trainer
    /// may dispute it ({disputeRejection}) until `disputeDeadline`.
    event RejectionAnnounced(
        uint256 indexed projectId, uint256 indexed round, address indexed trainer, uint256 disputeDeadline
    );
    /// @notice `trainer` disputed its rejection by publishing its committed `row` (integers at scale 2^13,
    /// checked against its commitment by the verifier): the round must be proven with this row.
    event RejectionDisputed(uint256 indexed projectId, uint256 indexed round, address indexed trainer, int256[] row);

    error ZeroAddress();
    error VerifierNotApproved(address verifier);
    error InvalidConfig(string reason);
    error InvalidCid();
    error ModelNameTooLong(uint256 length, uint256 maxLength);
    error UnknownProject(uint256 projectId);
    error WrongStatus(uint256 projectId, Status expected, Status actual);
    error JoinClosed(uint256 projectId, uint256 joinDeadline);
    error AlreadyJoined(uint256 projectId, address trainer);
    error RoleConflict(address account);
    error WrongStake(uint256 expected, uint256 sent);
    error ReliabilityTooLow(address trainer, uint256 reliabilityBps, uint256 requiredBps);
    error NotEnoughTrainers(uint256 joined, uint256 required);
    error NotAllowedYet(uint256 projectId, uint256 notBefore);
    error Unauthorized(address caller);
    error NotATrainer(uint256 projectId, address caller);
    error WrongRound(uint256 projectId, uint256 expected, uint256 given);
    error SubmissionClosed(uint256 projectId, uint256 round, uint256 deadline);
    error AlreadySubmitted(uint256 projectId, uint256 round, address trainer);
    error AlreadyCommitted(uint256 projectId, uint256 round, address trainer);
    error NotCommitted(uint256 projectId, uint256 round, address trainer);
    error RevealNotOpen(uint256 projectId, uint256 round, uint256 opensAt);
    error RevealClosed(uint256 projectId, uint256 round, uint256 deadline);
    error SealMismatch(uint256 projectId, uint256 round, address trainer);
    error ZeroSeal();
    error NoteTooLong(uint256 length, uint256 maxLength);
    error InvalidModelName();
    error ZeroCommitment();
    error CommitmentNotAccepted(bytes32 commitment);
    error RoundStillOpen(uint256 projectId, uint256 round, uint256 revealDeadline);
    error AggregationDeadlinePassed(uint256 projectId, uint256 round, uint256 deadline);
    error LengthMismatch(uint256 trainers, uint256 scores, uint256 flags, uint256 rejected);
    error TrainerListMismatch(uint256 projectId, uint256 index);
    error InvalidRejection(uint256 projectId, uint256 round, address trainer);
    error RejectionsAlreadyAnnounced(uint256 projectId, uint256 round);
    error NotRejected(uint256 projectId, uint256 round, address trainer);
    error DisputeClosed(uint256 projectId, uint256 round, uint256 deadline);
    error DisputeWindowOpen(uint256 projectId, uint256 round, uint256 deadline);
    error InvalidRowLength(uint256 length, uint256 expected);
    error InvalidRowValue(uint256 index, int256 value);
    error InvalidRowProof(uint256 projectId, uint256 round, address trainer);
    /// @notice The row behind `commitment` was published on chain in an earlier `round` of project `projectId`
    /// (a dispute or the owner's reference): a dispute cannot publish it again (`_publishedRows`).
    error RowAlreadyPublished(uint256 projectId, bytes32 commitment, uint256 round);
    /// @notice `round`'s stale-challenge window is open until `until` (its latest reveal plus the market's
    /// `challengePeriod`): the round cannot be finalized before.
    error ChallengeWindowOpen(uint256 projectId, uint256 round, uint256 until);
    /// @notice `trainer`'s submission in `round` was shown stale ({MarketDisputes-challengeStale}): the round's
    /// result must reject it.
    error StaleNotRejected(uint256 projectId, uint256 round, address trainer);
    error VerifierTooSmall(uint256 maxTrainers, uint256 verifierMaxTrainers);
    error ScoreTooLarge(uint256 index, uint256 score);
    error NoSubmission(uint256 projectId, uint256 round, address trainer);
    error InvalidProof(uint256 projectId, uint256 round);
    error NothingToWithdraw(uint256 projectId, address account);
    error TransferFailed(address to, uint256 amount);
    error NothingRevealed(uint256 projectId, uint256 round);
    error NothingCommitted(uint256 projectId, uint256 round);

    function _project(uint256 projectId) internal view returns (Project storage p) {
        p = _projects[projectId];
        if (p.owner == address(0)) revert UnknownProject(projectId);
    }

    function _expectStatus(uint256 projectId, Project storage p, Status expected) internal view {
        if (p.status != expected) revert WrongStatus(projectId, expected, p.status);
    }

    /// @dev Project `projectId` is training, in `round`, the open round (reads the open round's slot only: `status`
    /// is Training only for a project that exists).
    function _inRound(uint256 projectId, Project storage p, uint256 round) internal view {
        if (p.status != Status.Training) revert WrongStatus(projectId, Status.Training, _project(projectId).status);
        if (round != p.currentRound) revert WrongRound(projectId, p.currentRound, round);
    }

    /// @dev The caller's standing in project `projectId`, once it is a trainer of it, training, in `round`, the
    /// open round. Reads the open round's slot of the project (not its owner's: `status` is Training only for a
    /// project that exists).
    function _memberInRound(uint256 projectId, Project storage p, uint256 round)
        internal
        view
        returns (Trainer storage t)
    {
        _inRound(projectId, p, round);
        t = _trainers[projectId][msg.sender];
        if (t.slot == 0) revert NotATrainer(projectId, msg.sender);
    }

    /// @dev The open round's commit deadline and reveal phase (see {MarketLens-roundDeadlines}), from its slot alone.
    function _revealWindow(Project storage p)
        internal
        view
        returns (uint256 commitDeadline, uint256 revealOpens, uint256 revealDeadline)
    {
        commitDeadline = uint256(p.roundStart) + p.submissionPeriod;
        bool allCommitted = p.commits == p.trainerCount && p.commitsClosedAt != 0;
        uint256 revealStart = allCommitted ? uint256(p.commitsClosedAt) : commitDeadline;
        revealOpens = allCommitted ? revealStart : commitDeadline + 1;
        revealDeadline = revealStart + p.revealPeriod;
    }

    /// @dev The open round's deadlines (see {MarketLens-roundDeadlines}).
    function _deadlines(Project storage p)
        internal
        view
        returns (uint256 commitDeadline, uint256 revealOpens, uint256 revealDeadline, uint256 aggregationDeadline)
    {
        (commitDeadline, revealOpens, revealDeadline) = _revealWindow(p);
        uint256 settleFrom = p.disputeDeadline > revealDeadline ? p.disputeDeadline : revealDeadline;
        aggregationDeadline = settleFrom + p.aggregationPeriod; // a dispute window moves it on
    }

    /// @dev A round may be finalized once its reveal phase is over (the phase opened and every trainer
    /// that committed revealed, and the owner if it committed a reference, or the reveal deadline passed), and
    /// until its aggregation deadline.
    function _checkTiming(uint256 projectId, Project storage p, uint256 round) internal view {
        (, uint256 revealOpens, uint256 revealDeadline, uint256 aggregationDeadline) = _deadlines(p);
        Reference storage ref = _references[projectId][round]; // a committed reference is waited for too
        bool revealsDone = block.timestamp >= revealOpens && p.submissions == p.commits
            && (ref.commitment != bytes32(0) || ref.seal == bytes32(0));
        if (!revealsDone && block.timestamp <= revealDeadline) revert RoundStillOpen(projectId, round, revealDeadline);
        if (block.timestamp > aggregationDeadline) revert AggregationDeadlinePassed(projectId, round, aggregationDeadline);
    }

    /// @dev A published row is `k + 2` integers inside the box every committed row lies in (outside it the
    /// round circuit has no witness: the round would become unprovable).
    function _checkRow(int256[] calldata row, uint256 k) internal pure {
        if (row.length != k + 2) revert InvalidRowLength(row.length, k + 2);
        for (uint256 i = 0; i < k; ++i) {
            if (row[i] > MAX_UNIT || row[i] < -MAX_UNIT) revert InvalidRowValue(i, row[i]);
        }
        if (row[k] > MAX_LOG || row[k] < -MAX_LOG) revert InvalidRowValue(k, row[k]);
        if (row[k + 1] != MAX_UNIT) revert InvalidRowValue(k + 1, row[k + 1]);
    }
}
