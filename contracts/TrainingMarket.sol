// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IReliabilityRegistry} from "./interfaces/IReliabilityRegistry.sol";
import {IRoundVerifier} from "./interfaces/IRoundVerifier.sol";
import {MarketState} from "./MarketState.sol";
import {MarketDisputes} from "./MarketDisputes.sol";

/**
 * @title TrainingMarket
 * @notice Escrow and bookkeeping for collaborative training jobs: an owner pays for a model,
 * trainers train it on their private data, an aggregator scores and merges their updates round
 * by round, and the escrow pays every trainer by contribution.
 *
 * How it is meant to be used:
 * 1. The owner calls {createProject} with the reward budget, the aggregator's fee and the protocol fee
 *    ({PROTOCOL_FEE_BPS} of the budget, burned) as `msg.value` (budget and aggregator fee are escrowed
 *    here) and a verifier approved by the market admin.
 * 2. Trainers {join} with the project's stake while it is open. Training starts when the project
 *    is full, or with {startTraining} once enough trainers joined (the owner may start early,
 *    anyone after the join deadline).
 * 3. Each round has a commit phase and a reveal phase (commit-reveal). While the commit phase is open
 *    (until the submission deadline, or until every trainer committed, and the owner's reference if the project
 *    expects one: {expectReference}) each trainer calls
 *    {commitUpdate} once with a seal of its submission: a hash binding its update's IPFS CID, its row
 *    commitment, its own address, this chain, market, project and round, and a secret salt ({MarketLens-sealOf}) (or signs
 *    the commit off chain and anyone, e.g. the aggregator, sends several trainers' signed commits at once with
 *    {commitBatch}; a trainer left out commits itself).
 *    Once the commit phase has closed, each trainer calls {revealUpdate} with the CID, commitment and
 *    salt, within `revealPeriod` (or anyone, e.g. the aggregator, sends several trainers' openings at once
 *    with {revealBatch}; a trainer left out reveals itself). Nobody can copy a submission before it is
 *    committed, and after that copying is useless: a copied seal opens only for the original trainer's
 *    address, and no new commit is possible. The order of the commits (not of the reveals) is the round's arrival order. A trainer
 *    that committed and did not reveal is treated as flagged (no reward, stake slashed).
 * 4. The aggregator calls {finalizeRound} with the new global model, per-trainer contribution
 *    scores and outlier flags, and a proof that the verifier accepts for exactly the submitted
 *    commitments and these scores and flags, and for this round only ({MarketLens-roundTag}: chain, market,
 *    project, round; a proof of any other round fails). The round's share of the budget is credited to the
 *    unflagged trainers in proportion to their scores; flagged trainers get nothing and lose
 *    `slashBps` of their stake. The reliability registry records every trainer's outcome.
 * 5. After the last round (or a cancellation) everyone pulls what they are owed with {withdraw}:
 *    trainers their rewards and remaining stake, the aggregator its fee for finalized rounds,
 *    the owner the rest (unspent budget, rounding dust, unearned fee, slashed stakes).
 *
 * No path locks ETH: an open project can be cancelled (by the owner, or by anyone when too few
 * trainers joined in time), and a training project whose aggregator misses a deadline can be
 * {abandon}ed by anyone. On abandonment the pending round's share is split equally among the
 * trainers who submitted in it, so an owner cannot avoid paying by having its aggregator stall.
 * Invariant: for every project, everything withdrawn sums to exactly what was escrowed.
 *
 * WARNING: a project is only as trustworthy as its verifier; the market admin must approve only
 * verifiers that really check proofs (a test verifier refuses to deploy outside local chains).
 */
contract TrainingMarket is MarketState, ReentrancyGuardTransient {
    /// @notice Parameters of a new project.
    struct ProjectConfig {
        address aggregator; // who finalizes rounds
        address verifier; // an approved IRoundVerifier
        uint96 aggregatorFee; // wei, part of msg.value, earned pro rata per finalized round
        uint96 stake; // wei each trainer deposits to join
        uint16 rounds; // number of training rounds
        uint16 minTrainers; // fewest trainers to start
        uint16 maxTrainers; // most trainers; training starts when reached
        uint16 minReliabilityBps; // registry reliability needed to join (0..10000)
        uint16 slashBps; // share of the stake a trainer loses per flagged round (0..10000)
        uint32 joinPeriod; // seconds after creation during which trainers may join
        uint32 submissionPeriod; // seconds per round for commits (the commit phase)
        uint32 revealPeriod; // seconds after the commit phase closes for reveals
        uint32 aggregationPeriod; // seconds after the reveal deadline to finalize
        string modelName; // architecture from the model registry, e.g. "mlp"
        string initialModelCid; // IPFS CID of the initial weights
    }

    /// @notice A project as {MarketLens-getProject} returns it.
    struct ProjectView {
        address owner;
        address aggregator;
        address verifier;
        Status status;
        uint256 rewardBudget;
        uint256 aggregatorFee;
        uint256 stake;
        uint256 rounds;
        uint256 currentRound; // rounds finalized so far; the round open for submissions
        uint256 minTrainers;
        uint256 maxTrainers;
        uint256 trainerCount;
        uint256 minReliabilityBps;
        uint256 slashBps;
        uint256 joinDeadline;
        uint256 roundStart;
        uint256 submissionPeriod;
        uint256 revealPeriod;
        uint256 aggregationPeriod;
        uint256 commits; // commits in the current round
        uint256 submissions; // reveals in the current round
        uint256 totalEarned; // rewards credited to trainers so far
        uint256 slashed; // stake taken from flagged trainers so far
        string modelName;
        string latestModelCid;
        bool referenceExpected; // the commit phase waits for the owner's reference ({expectReference})
    }

    /// @notice A trainer's opening of its seal ({MarketLens-sealOf}), for {revealBatch}.
    struct Opening {
        address trainer;
        string cid;
        bytes32 commitment;
        bytes32 salt;
    }

    /// @notice A trainer's commit signed off chain (EIP-712, see {commitBatch}), for {commitBatch}.
    struct SignedCommit {
        address trainer;
        bytes32 seal;
        bytes note;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice The arguments of {finalizeRound} besides the project and round.
    struct RoundResult {
        address[] trainers; // the project's trainers in trainer order ({MarketLens-trainersOf}); checked, not trusted
        string modelCid; // IPFS CID of the new global model
        string proofCid; // IPFS CID where the proof (and its public inputs) is published
        uint256[] scores; // per trainer, in trainer order; 0 for non-submitters
        bool[] flags; // per trainer, in trainer order; false for non-submitters
        bool[] rejected; // per trainer: a submitter whose update the aggregator could not fetch or check
        bytes proof; // checked by the project's verifier
    }

    /// @dev A round being finalized, in trainer order: the trainers, their commitments (0: no reveal) and memory
    /// copies of the result's columns (each read several times: from memory at a fraction of the cost of a read
    /// through the calldata struct).
    struct Tally {
        address[] trainers;
        bytes32[] commitments;
        uint256[] scores;
        bool[] flags;
        bool[] rejected;
    }

    struct Settlement {
        uint256 projectId;
        uint256 round;
        uint256 roundReward;
        uint256 totalScore;
        uint256 cut;
    }

    /// @notice Most trainers per project (bounds every loop).
    uint256 public constant MAX_TRAINERS = 64;
    /// @dev Most rounds per project. This constant, the next two and `BURN_ADDRESS` have no getter (nothing reads
    /// them through the market; the 24 KB limit): the client keeps the same values (`marketplace.adapters.chain.market`,
    /// `marketplace.protocol.opening.MAX_NOTE_BYTES`).
    uint256 internal constant MAX_ROUNDS = 1000;
    /// @dev Longest accepted CID string.
    uint256 internal constant MAX_CID_LENGTH = 128;
    /// @notice Longest accepted model name, in bytes (it is stored and emitted: unbounded, it cost
    /// its creator gas per byte and every reader of the project its size).
    uint256 public constant MAX_MODEL_NAME_LENGTH = 64;
    /// @notice Shortest commit, reveal and aggregation period. A phase shorter than a few blocks lets the
    /// project's owner make honest trainers miss it: a one-second reveal window slashes every committer
    /// (they cannot reveal in time) and returns the budget and the stakes to the owner.
    uint256 public constant MIN_PHASE_PERIOD = 5 minutes;
    /// @dev Longest accepted commit note (a trainer's own encrypted reminder of its submission).
    uint256 internal constant MAX_NOTE_LENGTH = 192;
    /// @notice The protocol fee, in basis points of a project's reward budget, burned when the project is
    /// created. It is what a track record costs to farm: rewards earned in self-dealt projects were escrowed
    /// by the farmer, who burned this share of them ({MarketLens-requiredTrackRecord}).
    uint256 public constant PROTOCOL_FEE_BPS = 200;
    /// @dev Where protocol fees go: an address nobody holds the key of (0x…dEaD).
    address internal constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;
    /// @notice Fewest accepted submissions the scoring rule flags among (`GramConfig.min_valid`): with fewer, it
    /// flags nobody, so standing rejections that leave fewer accepted shrink the round's pool ({finalizeRound}).
    uint256 public constant MIN_VALID_ROWS = 3;
    /// @dev Largest accepted contribution score, 2^128 - 1 (keeps reward arithmetic far from overflow).
    uint256 internal constant MAX_SCORE = type(uint128).max;
    uint256 private constant BPS = 10_000;
    /// @dev EIP-712: the type hashes of {commitBatch}'s domain and message.
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _COMMIT_TYPEHASH =
        keccak256("Commit(uint256 projectId,uint256 round,bytes32 seal,bytes32 noteHash)");
    /// @dev 0x01 and 0x80 in each of the 32 bytes of a word (for {_onlyNameBytes}).
    uint256 private constant _BYTE_ONES = type(uint256).max / type(uint8).max;
    uint256 private constant _TOP_BITS = _BYTE_ONES << 7;

    /// @notice Where trainers' reliability is kept.
    IReliabilityRegistry public immutable registry;
    /// @notice The module that runs the rejections and their disputes in this market's storage ({MarketDisputes}:
    /// `rejectSubmissions`, `disputeRejection`): this market's fallback hands it every call of a function this
    /// contract does not have, with DELEGATECALL. Fixed at deployment.
    MarketDisputes public immutable disputes;
    /// @dev The module's `challengePeriod` (read once, at deployment): a round is finalized no sooner than this many
    /// seconds after its latest reveal, so that anyone may show a revealed row stale before it is paid.
    uint256 private immutable _challengePeriod;

    /// @notice The market admin approved or revoked a verifier for new projects.
    event VerifierApprovalChanged(address indexed verifier, bool approved);
    /// @notice A project was created and `rewardBudget + aggregatorFee` escrowed.
    event ProjectCreated(
        uint256 indexed projectId,
        address indexed owner,
        address indexed aggregator,
        address verifier,
        uint256 rewardBudget,
        uint256 aggregatorFee,
        string modelName,
        string initialModelCid
    );
    /// @notice `trainer` joined with `stake`.
    event TrainerJoined(uint256 indexed projectId, address indexed trainer, uint256 stake);
    /// @notice Training started with `trainerCount` trainers; round 0 is open for submissions.
    event TrainingStarted(uint256 indexed projectId, uint256 trainerCount, uint256 submissionDeadline);
    /// @notice An open project was cancelled; everyone can withdraw their deposits.
    event ProjectCancelled(uint256 indexed projectId, address indexed by);
    /// @notice `trainer` committed the sealed submission `seal` for `round`, as the `arrival`-th (from 1);
    /// `note` is the trainer's own opaque reminder (the market does not read it).
    event UpdateCommitted(
        uint256 indexed projectId, uint256 indexed round, address indexed trainer, bytes32 seal, uint256 arrival, bytes note
    );
    /// @notice `trainer` revealed its update for `round`: its IPFS `cid` and row `commitment`, in the
    /// arrival position of its commit.
    event UpdateSubmitted(
        uint256 indexed projectId,
        uint256 indexed round,
        address indexed trainer,
        string cid,
        bytes32 commitment,
        uint256 arrival
    );
    /// @notice `trainer` committed in `round` and did not reveal: treated as flagged.
    event RevealMissed(uint256 indexed projectId, uint256 indexed round, address indexed trainer);
    /// @notice `round` was finalized; `rewards[i]` was credited to trainer i.
    event RoundFinalized(
        uint256 indexed projectId,
        uint256 indexed round,
        string modelCid,
        string proofCid,
        uint256[] scores,
        bool[] flags,
        uint256[] rewards
    );
    /// @notice The aggregator rejected `trainer`'s update of `round` (not available on IPFS, malformed,
    /// or not matching its commitment): it is recorded as flagged and the proof treats it as absent.
    event SubmissionRejected(uint256 indexed projectId, uint256 indexed round, address indexed trainer);
    /// @notice The project's owner set whether every round's commit phase waits for its reference ({expectReference}).
    event ReferenceExpected(uint256 indexed projectId, bool expected);
    /// @notice The project's owner committed the seal of its reference row for `round` ({commitReference}).
    event ReferenceCommitted(uint256 indexed projectId, uint256 indexed round, bytes32 seal);
    /// @notice The project's owner revealed its reference row for `round`: `row` (K + 2 integers at scale 2^13,
    /// shown by the verifier to hash to `commitment`); the round is proven with it ({revealReference}).
    event ReferenceRevealed(uint256 indexed projectId, uint256 indexed round, bytes32 commitment, int256[] row);
    /// @notice `trainer` lost `amount` of its stake for a flagged update in `round`.
    event StakeSlashed(uint256 indexed projectId, uint256 indexed round, address indexed trainer, uint256 amount);
    /// @notice All rounds are finalized; withdrawals are open.
    event ProjectFinished(uint256 indexed projectId, string finalModelCid);
    /// @notice The aggregator missed `round`'s deadline; each of its `submitters` got `rewardEach`.
    event ProjectAbandoned(uint256 indexed projectId, uint256 indexed round, uint256 submitters, uint256 rewardEach);
    /// @notice `account` withdrew `amount` from the project.
    event Withdrawn(uint256 indexed projectId, address indexed account, uint256 amount);

    /// @param admin who approves verifiers
    /// @param reliabilityRegistry the registry this market reports outcomes to (it must authorize this market)
    /// @param disputesModule the {MarketDisputes} this market hands the rejections and their disputes to
    constructor(address admin, IReliabilityRegistry reliabilityRegistry, MarketDisputes disputesModule)
        Ownable(admin)
    {
        if (address(reliabilityRegistry) == address(0) || address(disputesModule).code.length == 0) revert ZeroAddress();
        registry = reliabilityRegistry;
        disputes = disputesModule;
        _challengePeriod = disputesModule.challengePeriod();
    }

    /// @notice Runs every call of a function this contract does not have in {disputes} (the rejections and their
    /// disputes: {MarketDisputes-rejectSubmissions}, {MarketDisputes-disputeRejection}) with DELEGATECALL, in this
    /// market's storage, as if this contract had the function, and returns or reverts with what it returned.
    /// Payable for {MarketDisputes-rejectSubmissions} (its bonds): the module's other functions are non-payable and
    /// revert when sent ether (DELEGATECALL keeps the value), and any other call reverts in the module (it has no
    /// fallback and no receive function), so no ether stays here but the bonds.
    fallback() external payable {
        address module = address(disputes);
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), module, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ------------------------------------------------------------------ admin

    /// @notice Approves or revokes `verifier` for new projects. Only the market admin.
    /// @dev Revoking does not affect projects that already use it.
    function setVerifierApproval(address verifier, bool approved) external onlyOwner {
        if (verifier == address(0)) revert ZeroAddress();
        _approvedVerifiers[verifier] = approved;
        emit VerifierApprovalChanged(verifier, approved);
    }

    // ------------------------------------------------------------------ owner

    /// @notice Creates a project: `msg.value` = reward budget + aggregator fee + protocol fee, where the
    /// protocol fee is {PROTOCOL_FEE_BPS} of the budget (rounded up) and is burned; the budget is
    /// `(msg.value - aggregatorFee) * 10000 / (10000 + PROTOCOL_FEE_BPS)` (rounded down).
    /// @return projectId the new project's id (ids start at 1)
    function createProject(ProjectConfig calldata cfg) external payable returns (uint256 projectId) {
        _checkConfig(cfg);
        uint256 budget = ((msg.value - cfg.aggregatorFee) * BPS) / (BPS + PROTOCOL_FEE_BPS);
        if (budget == 0) revert InvalidConfig("budget");
        projectId = ++_projectCount;
        Project storage p = _projects[projectId];
        p.owner = msg.sender;
        p.rewardBudget = uint96(budget);
        p.aggregator = cfg.aggregator;
        p.aggregatorFee = cfg.aggregatorFee;
        p.verifier = cfg.verifier;
        p.stake = cfg.stake;
        p.rounds = cfg.rounds;
        p.minTrainers = uint8(cfg.minTrainers); // at most MAX_TRAINERS (_checkConfig)
        p.maxTrainers = uint8(cfg.maxTrainers);
        p.minReliabilityBps = cfg.minReliabilityBps;
        p.slashBps = cfg.slashBps;
        p.joinDeadline = uint32(block.timestamp + cfg.joinPeriod);
        p.submissionPeriod = cfg.submissionPeriod;
        p.revealPeriod = cfg.revealPeriod;
        p.aggregationPeriod = cfg.aggregationPeriod;
        p.modelName = cfg.modelName;
        p.latestModelCid = cfg.initialModelCid;
        emit ProjectCreated(
            projectId,
            msg.sender,
            cfg.aggregator,
            cfg.verifier,
            p.rewardBudget,
            cfg.aggregatorFee,
            cfg.modelName,
            cfg.initialModelCid
        );
        uint256 protocolFee = msg.value - cfg.aggregatorFee - budget;
        (bool burned,) = payable(BURN_ADDRESS).call{value: protocolFee}("");
        if (!burned) revert TransferFailed(BURN_ADDRESS, protocolFee);
    }

    /// @notice Cancels an open project: by its owner at any time before training starts, or by
    /// anyone once the join deadline passed with fewer than `minTrainers` trainers.
    function cancel(uint256 projectId) external {
        Project storage p = _project(projectId);
        _expectStatus(projectId, p, Status.Open);
        if (msg.sender != p.owner) {
            if (block.timestamp <= p.joinDeadline) revert NotAllowedYet(projectId, uint256(p.joinDeadline) + 1);
            uint256 joined = _trainerList[projectId].length;
            if (joined >= p.minTrainers) revert Unauthorized(msg.sender);
        }
        p.status = Status.Cancelled;
        emit ProjectCancelled(projectId, msg.sender);
    }

    /// @notice Sets whether the project expects its owner's reference row ({commitReference}) in every round: if it
    /// does, a round's commit phase no longer closes the moment every trainer committed, but once every trainer and
    /// the owner committed, or at the submission deadline, so that nobody (the last trainer, or whoever sends a batch
    /// of every trainer's commits) can close it before the owner's pending reference commit lands. Only the project's
    /// owner, and only while the project is open (`WrongStatus` once training started): it is fixed before the first
    /// round's commit phase opens, so nobody can switch it in the middle of a round, and trainers see it when they
    /// join ({MarketLens-getProject}: `referenceExpected`).
    /// WARNING: an owner that expects a reference and does not commit one holds every round's commit phase open until
    /// the submission deadline (the reveals then open a second later, as when a trainer does not commit): the round
    /// runs as without a reference, only later. That is all it can do: it changes no deadline, no payment and no
    /// flag.
    function expectReference(uint256 projectId, bool expected) external {
        Project storage p = _project(projectId);
        if (msg.sender != p.owner) revert Unauthorized(msg.sender);
        _expectStatus(projectId, p, Status.Open);
        p.referenceExpected = expected;
        emit ReferenceExpected(projectId, expected);
    }

    /// @notice Starts training once at least `minTrainers` joined: the owner may start early,
    /// anyone after the join deadline. A full project starts by itself.
    function startTraining(uint256 projectId) external {
        Project storage p = _project(projectId);
        _expectStatus(projectId, p, Status.Open);
        uint256 joined = _trainerList[projectId].length;
        if (joined < p.minTrainers) revert NotEnoughTrainers(joined, p.minTrainers);
        if (msg.sender != p.owner && block.timestamp <= p.joinDeadline) {
            revert NotAllowedYet(projectId, uint256(p.joinDeadline) + 1);
        }
        _startTraining(projectId, p);
    }

    // ------------------------------------------------------------------ trainers

    /// @notice Joins an open project, depositing exactly its stake.
    function join(uint256 projectId) external payable {
        Project storage p = _project(projectId);
        _expectStatus(projectId, p, Status.Open);
        if (block.timestamp > p.joinDeadline) revert JoinClosed(projectId, p.joinDeadline);
        address[] storage list = _trainerList[projectId];
        Trainer storage t = _trainers[projectId][msg.sender];
        if (t.slot != 0) revert AlreadyJoined(projectId, msg.sender);
        if (msg.sender == p.owner || msg.sender == p.aggregator) revert RoleConflict(msg.sender);
        if (msg.value != p.stake) revert WrongStake(p.stake, msg.value);
        uint256 bar = p.minReliabilityBps; // without a bar, every reliability (0 and up) passes: no call
        if (bar != 0) {
            uint256 reliability = registry.reliabilityOf(msg.sender);
            if (reliability < bar) revert ReliabilityTooLow(msg.sender, reliability, bar);
        }

        _trainerList[projectId].push(msg.sender); // not `list.push`: analysers miss writes through storage pointers
        t.slot = uint8(list.length);
        t.reserved = bar != 0;
        t.stakeLeft = p.stake;
        emit TrainerJoined(projectId, msg.sender, msg.value);
        if (list.length == p.maxTrainers) _startTraining(projectId, p);
        // Interaction with the trusted registry: a bar reserves the record it requires until this trainer
        // withdraws (reverts `TrackRecordTooSmall` when too little of its record is free).
        if (bar != 0) registry.reserve(projectId, msg.sender, _requiredTrackRecord(p));
    }

    /// @notice Commits this trainer's sealed submission for `round` ({MarketLens-sealOf}), while the commit phase
    /// is open: before the round's submission deadline (once every trainer committed, nobody is left to commit).
    /// `note` (at most {MAX_NOTE_LENGTH} bytes) is emitted for the trainer itself, e.g. its submission
    /// encrypted under its own key so that it can reveal after a restart; the market ignores it.
    function commitUpdate(uint256 projectId, uint256 round, bytes32 seal, bytes calldata note) external {
        Project storage p = _projects[projectId];
        Trainer storage t = _memberInRound(projectId, p, round);
        _checkCommitWindow(projectId, p, round);
        if (seal == bytes32(0)) revert ZeroSeal();
        if (note.length > MAX_NOTE_LENGTH) revert NoteTooLong(note.length, MAX_NOTE_LENGTH);
        if (t.committedRound == round + 1) revert AlreadyCommitted(projectId, round, msg.sender);
        _commit(projectId, p, round, msg.sender, t, seal, note);
    }

    /// @notice Commits several trainers' sealed submissions of `round` in one transaction, as {commitUpdate} would
    /// one by one (the same `UpdateCommitted` events, the arrival order being the batch's order), while the commit
    /// phase is open. Anyone may send it, e.g. the aggregator with the signed commits its trainers handed it: each
    /// entry carries its trainer's EIP-712 signature of `Commit(uint256 projectId,uint256 round,bytes32 seal,
    /// bytes32 noteHash)` (`noteHash` = `keccak256(note)`) under the domain `("TrainingMarket", "1", chainid, this
    /// market)`, so a signed commit commits exactly what its trainer signed, for that trainer only, in no other
    /// round, project, market or chain. An entry that commits nothing is skipped, not a revert: one of a trainer
    /// that is not a member or already committed in `round` (by itself, or in an earlier batch: a trainer's own
    /// commit cannot make the batch fail), one whose signature does not recover to its trainer, or with a zero seal
    /// or a note over {MAX_NOTE_LENGTH} bytes. Returns how many trainers it committed; reverts `NothingCommitted` if
    /// none (a batch copied and sent first, or wholly committed already), and as {commitUpdate} if the project is
    /// not training, `round` is not the open round or the commit phase is over.
    ///
    /// WARNING: a batch is a convenience, never a duty. Whoever batches chooses the order of its entries (the
    /// round's arrival order, which decides between identical updates only; a seal hides its update until the
    /// reveal) and can leave a trainer out or send the batch late: a trainer whose commit is not on chain in time
    /// must commit itself with {commitUpdate} before the submission deadline. A signature stays valid until its
    /// round closes: anyone holding it may commit it (never anything but what the trainer signed).
    function commitBatch(uint256 projectId, uint256 round, SignedCommit[] calldata commits)
        external
        returns (uint256 committed)
    {
        Project storage p = _projects[projectId];
        _inRound(projectId, p, round);
        _checkCommitWindow(projectId, p, round);
        bytes32 domain = keccak256(
            abi.encode(_DOMAIN_TYPEHASH, keccak256("TrainingMarket"), keccak256("1"), block.chainid, address(this))
        );
        for (uint256 i = 0; i < commits.length; ++i) {
            SignedCommit calldata c = commits[i];
            Trainer storage t = _trainers[projectId][c.trainer];
            if (t.slot == 0 || t.committedRound == round + 1 || c.seal == bytes32(0)) continue;
            if (c.note.length > MAX_NOTE_LENGTH) continue;
            bytes32 message = keccak256(abi.encode(_COMMIT_TYPEHASH, projectId, round, c.seal, keccak256(c.note)));
            bytes32 digest = keccak256(abi.encodePacked(hex"1901", domain, message));
            if (ecrecover(digest, c.v, c.r, c.s) != c.trainer) continue; // a member is never address(0)
            _commit(projectId, p, round, c.trainer, t, c.seal, c.note);
            ++committed;
        }
        if (committed == 0) revert NothingCommitted(projectId, round);
    }

    /// @dev Records `who`'s (`t`'s) commit of `seal` in `round` as the next arrival; the caller checked it.
    function _commit(
        uint256 projectId,
        Project storage p,
        uint256 round,
        address who,
        Trainer storage t,
        bytes32 seal,
        bytes calldata note
    ) private {
        _submissions[projectId][who].word = seal;
        uint256 arrival = ++p.commits;
        t.arrival = uint8(arrival);
        t.committedRound = uint16(round + 1);
        if (arrival == p.trainerCount) {
            // The last trainer's commit closes the phase, unless the owner's expected reference is still to come
            // (nested: the other trainers' commits test nothing more, 22 gas a commit in a batch).
            if (!p.referenceExpected || _references[projectId][round].seal != bytes32(0)) {
                p.commitsClosedAt = uint32(block.timestamp);
            }
        }
        emit UpdateCommitted(projectId, round, who, seal, arrival, note);
    }

    /// @notice Reveals this trainer's committed submission for `round`: the IPFS `cid` of its update,
    /// its row `commitment` and the `salt` of its seal. Allowed once the commit phase has closed and
    /// until the reveal deadline ({MarketLens-roundDeadlines}); the seal must open to exactly these values for
    /// `msg.sender` ({MarketLens-sealOf}).
    function revealUpdate(uint256 projectId, uint256 round, string calldata cid, bytes32 commitment, bytes32 salt)
        external
    {
        Project storage p = _projects[projectId];
        Trainer storage t = _memberInRound(projectId, p, round);
        _checkRevealWindow(projectId, p, round, t);
        uint64 bit = uint64(1) << (t.slot - 1);
        if (p.revealedMask & bit != 0) revert AlreadySubmitted(projectId, round, msg.sender);
        Submission storage sub = _submissions[projectId][msg.sender];
        if (_seal(commitment, keccak256(bytes(cid)), msg.sender, projectId, round, salt) != sub.word) {
            revert SealMismatch(projectId, round, msg.sender);
        }
        if (commitment == bytes32(0)) revert ZeroCommitment();
        if (!IRoundVerifier(p.verifier).acceptsCommitment(commitment)) revert CommitmentNotAccepted(commitment);
        _checkCid(cid);

        sub.word = commitment; // over the seal (see `_submissions`)
        ++p.submissions;
        p.revealedMask |= bit;
        p.lastRevealAt = uint32(block.timestamp);
        emit UpdateSubmitted(projectId, round, msg.sender, cid, commitment, t.arrival);
    }

    /// @notice Reveals several trainers' committed submissions of `round` in one transaction, as
    /// {revealUpdate} would one by one (the same checks and the same `UpdateSubmitted` events), during the
    /// reveal phase. Anyone may send it, e.g. the aggregator with the openings its trainers handed it: a seal
    /// opens only to what its trainer committed ({MarketLens-sealOf} binds the trainer, chain, market, project and round),
    /// so an opening can reveal nothing else, for nobody else, in no other round or project. An opening that
    /// reveals nothing is skipped, not a revert: one of a trainer that is not a member, did not commit in
    /// `round` or already revealed (by itself, or in an earlier batch: a trainer's own reveal cannot make the
    /// batch fail), or that does not open its seal, or opens it to a zero or unaccepted commitment or an invalid
    /// CID. Returns how many trainers it revealed; reverts `NothingRevealed` if none (a batch copied and sent
    /// first, or wholly revealed already), and as {revealUpdate} if the project is not training, `round` is not
    /// the open round or the reveal phase is not open.
    ///
    /// WARNING: a batch is a convenience, never a duty. Whoever batches can leave a trainer out or send the
    /// batch late; a trainer whose reveal is not on chain in time must reveal itself with {revealUpdate} before
    /// the reveal deadline, or it is treated as flagged. And a trainer must hand out its opening only once the
    /// commit phase has closed on chain ({MarketLens-roundDeadlines}: `revealOpens`): before that, anyone
    /// holding it could commit a copy of the update.
    function revealBatch(uint256 projectId, uint256 round, Opening[] calldata openings)
        external
        returns (uint256 revealed)
    {
        Project storage p = _projects[projectId];
        _inRound(projectId, p, round);
        _checkRevealOpen(projectId, p, round);
        uint64 mask = p.revealedMask;
        IRoundVerifier verifier = IRoundVerifier(p.verifier);
        for (uint256 i = 0; i < openings.length; ++i) {
            uint64 bit = _revealOpening(projectId, round, verifier, openings[i], mask);
            if (bit == 0) continue;
            mask |= bit;
            ++revealed;
        }
        if (revealed == 0) revert NothingRevealed(projectId, round);
        p.submissions += uint8(revealed); // at most the trainers' count: each bit is set once
        p.revealedMask = mask;
        p.lastRevealAt = uint32(block.timestamp);
    }

    /// @dev Reveals opening `o` of {revealBatch} if it reveals something (see there) given the trainers revealed
    /// so far (`mask`): records its commitment, emits its `UpdateSubmitted` and returns its trainer's bit; 0 if it
    /// is skipped.
    function _revealOpening(uint256 projectId, uint256 round, IRoundVerifier verifier, Opening calldata o, uint64 mask)
        private
        returns (uint64 bit)
    {
        Trainer storage t = _trainers[projectId][o.trainer];
        uint256 slot = t.slot;
        if (slot == 0 || t.committedRound != round + 1) return 0;
        bit = uint64(1) << (slot - 1);
        if (mask & bit != 0) return 0;
        Submission storage sub = _submissions[projectId][o.trainer];
        if (
            _seal(o.commitment, keccak256(bytes(o.cid)), o.trainer, projectId, round, o.salt) != sub.word || o.commitment == bytes32(0)
                || !_isCid(o.cid) || !verifier.acceptsCommitment(o.commitment)
        ) return 0;
        sub.word = o.commitment; // over the seal (see `_submissions`)
        emit UpdateSubmitted(projectId, round, o.trainer, o.cid, o.commitment, t.arrival);
    }

    // ------------------------------------------------------------------ the owner's reference row

    /// @notice Commits the seal of the owner's reference row for `round` (docs/design/robust-reference.md): the
    /// owner's own update on its validation data from the round's global model, committed like a trainer's row.
    /// Only the project's owner, once per round, while the round's commit phase is open: before the submission
    /// deadline and, unless the project expects the reference ({expectReference}), before every trainer committed
    /// (commit when the round opens, the reference needs nothing else). In a project that expects it, the phase
    /// waits for it: committed after every trainer, it closes the phase (the reveals open at once). The seal is {MarketLens-sealOf} with an empty CID and the owner as trainer: it binds the row commitment, the
    /// owner, chain, market, project, round and a secret salt, and hides the row until {revealReference}.
    /// WARNING: a revealed reference may move pay among the trainers the rule pays within the bounds of
    /// docs/design/robust-reference.md section 3: it unpays only trainers below the median typicality, adds others
    /// at most what a trainer agreeing only with itself scores, and counts only if it sides with most trainers; it
    /// never flags, never slashes, and never unpays a round the rule without it pays. Not revealing it leaves the
    /// round to the rule without a reference.
    function commitReference(uint256 projectId, uint256 round, bytes32 seal) external {
        Project storage p = _projects[projectId];
        _ownerInRound(projectId, p, round);
        (, uint256 opens,) = _revealWindow(p);
        if (block.timestamp >= opens) revert SubmissionClosed(projectId, round, opens - 1);
        if (seal == bytes32(0)) revert ZeroSeal();
        Reference storage ref = _references[projectId][round];
        if (ref.seal != bytes32(0)) revert AlreadyCommitted(projectId, round, msg.sender);
        ref.seal = seal;
        // Every trainer committed and the phase is still open: the project expects the reference, which closes it.
        if (p.commits == p.trainerCount) p.commitsClosedAt = uint32(block.timestamp);
        emit ReferenceCommitted(projectId, round, seal);
    }

    /// @notice Reveals the owner's reference row for `round`, in the reveal phase: the row `commitment` and `salt`
    /// its seal opens to, and the row itself, K + 2 integers at scale 2^13 (checked like a disputed row: the box
    /// and presence `a` = {MAX_UNIT}) with a `proof` that the project's verifier accepts for `commitment` and this
    /// row ({IRoundVerifier-verifyRow}), so that the round stays provable. Once per round, only the owner, only
    /// with a committed seal. The round's finalization waits for it (until the reveal deadline) and hands the
    /// verifier `commitment`, so the aggregator can neither drop nor replace it. WARNING: as {commitReference}.
    /// The row is recorded as published in the project (`_publishedRows`, shown by the `ReferenceRevealed` event): a
    /// trainer that commits its commitment in a later round cannot dispute its rejection with this row
    /// ({RowAlreadyPublished}). A reference whose row was published in an earlier round (its own, or a trainer's
    /// disputed row) is not refused: a reference is the owner's word, any row in the box, and a stale one moves pay
    /// no further than any other row within the bounds above; refusing it would protect nobody.
    function revealReference(
        uint256 projectId,
        uint256 round,
        bytes32 commitment,
        bytes32 salt,
        int256[] calldata row,
        bytes calldata proof
    ) external {
        Project storage p = _projects[projectId];
        _ownerInRound(projectId, p, round);
        _checkRevealOpen(projectId, p, round);
        Reference storage ref = _references[projectId][round];
        if (ref.seal == bytes32(0)) revert NotCommitted(projectId, round, msg.sender);
        if (ref.commitment != bytes32(0)) revert AlreadySubmitted(projectId, round, msg.sender);
        if (_seal(commitment, keccak256(""), msg.sender, projectId, round, salt) != ref.seal) {
            revert SealMismatch(projectId, round, msg.sender);
        }
        IRoundVerifier verifier = IRoundVerifier(p.verifier);
        if (commitment == bytes32(0) || !verifier.acceptsCommitment(commitment)) revert CommitmentNotAccepted(commitment);
        _checkRow(row, verifier.sketchWidth());
        if (!verifier.verifyRow(commitment, row, proof)) revert InvalidRowProof(projectId, round, msg.sender);
        ref.commitment = commitment;
        mapping(bytes32 => uint256) storage published = _publishedRows[projectId];
        if (published[commitment] == 0) published[commitment] = round + 1; // no trainer disputes with it later
        emit ReferenceRevealed(projectId, round, commitment, row);
    }

    /// @notice Finalizes `round`: records the new global model, credits rewards by contribution,
    /// slashes flagged trainers, and reports outcomes to the reliability registry.
    /// @dev Allowed once the reveal phase is over (every committed trainer revealed after the commit
    /// phase closed, or the reveal deadline passed), and until the aggregation deadline. Reverts unless the project's verifier accepts `result.proof` for the
    /// submitted commitments, exactly these scores and flags, and this round's {MarketLens-roundTag}. A round is
    /// finalized once (the round counter moves on) and a proof of one round fails in every other
    /// round, project, market and chain, so no set of used proofs is kept: none that one project
    /// could fill to block another's finalization.
    /// A rejected submission (`result.rejected`) must have been announced with {rejectSubmissions} and not
    /// disputed, and a round with announced rejections is finalized only after its dispute window (or
    /// once every rejected trainer disputed). A rejection that stands is treated as flagged. If standing
    /// rejections leave fewer than {MIN_VALID_ROWS} accepted submissions (the rule then flags nobody), the
    /// round's share paid to trainers shrinks to the accepted part (`share * accepted / revealed`; the rest
    /// stays with the owner), so that suppressing rows never lets a shrunken round pay one trainer the
    /// whole round; otherwise the rejected trainers' part goes to the others, as a non-submitter's does.
    /// A submission shown stale ({MarketDisputes-challengeStale}) must be rejected ({StaleNotRejected} otherwise),
    /// and the round is finalized no sooner than the market's `challengePeriod` after its latest reveal
    /// ({ChallengeWindowOpen}), so that a challenge cannot be cut off by finalizing at once. The round's revealed
    /// commitments are recorded (`_roundCommitments`) for the stale challenges of later rounds.
    /// WARNING: an undisputed rejection is still the aggregator's word (whether an update was served
    /// cannot be proven either way): a trainer that does not dispute within the window loses the round.
    function finalizeRound(uint256 projectId, uint256 round, RoundResult calldata result) external {
        Project storage p = _project(projectId);
        _expectStatus(projectId, p, Status.Training);
        if (msg.sender != p.aggregator) revert Unauthorized(msg.sender);
        if (round != p.currentRound) revert WrongRound(projectId, p.currentRound, round);
        _checkTiming(projectId, p, round);
        if (p.rejectedMask != 0 && block.timestamp <= p.disputeDeadline) {
            revert DisputeWindowOpen(projectId, round, p.disputeDeadline);
        }
        uint256 challengeEnd = uint256(p.lastRevealAt) + _challengePeriod;
        if (block.timestamp < challengeEnd) revert ChallengeWindowOpen(projectId, round, challengeEnd);
        _checkCid(result.modelCid);
        _checkCid(result.proofCid);
        Tally memory tally = _collectCommitments(projectId, p, result);
        uint256 stale = p.staleMask;
        for (uint256 i = 0; stale >> i != 0; ++i) {
            if ((stale >> i) & 1 == 1 && !tally.rejected[i]) revert StaleNotRejected(projectId, round, tally.trainers[i]);
        }
        if (!_verify(projectId, round, p, tally, result.proof)) revert InvalidProof(projectId, round);
        _roundCommitments[projectId][round] = keccak256(abi.encodePacked(tally.commitments));

        // Effects.
        (IReliabilityRegistry.Outcome[] memory outcomes, uint256[] memory rewards) =
            _settleRound(projectId, p, round, tally);
        p.latestModelCid = result.modelCid;
        p.currentRound = uint16(round + 1);
        p.submissions = 0;
        p.commits = 0;
        p.commitsClosedAt = 0;
        p.revealedMask = 0;
        p.roundStart = uint40(block.timestamp);
        if (p.disputeDeadline != 0 || stale != 0) {
            p.rejectedMask = 0;
            p.disputedMask = 0;
            p.disputeDeadline = 0;
            p.staleMask = 0;
        }
        ++_aggregatorRecords[msg.sender].rounds;
        emit RoundFinalized(projectId, round, result.modelCid, result.proofCid, tally.scores, tally.flags, rewards);
        if (round + 1 == p.rounds) {
            p.status = Status.Finished;
            emit ProjectFinished(projectId, result.modelCid);
        }

        // Interaction with the trusted registry, after all effects.
        registry.recordRound(projectId, round, p.owner, p.aggregator, tally.trainers, outcomes, rewards);
    }

    /// @notice Ends a training project whose aggregator missed the current round's aggregation
    /// deadline. Anyone may call it. The round's share is split equally among the trainers who
    /// revealed in it, but for those whose announced rejection stood (the window is over by then); a
    /// trainer that committed and did not reveal, or whose rejection stood, is slashed, as at finalization.
    /// The owner gets the budget of the rounds that never ran.
    function abandon(uint256 projectId) external {
        Project storage p = _project(projectId);
        _expectStatus(projectId, p, Status.Training);
        uint256 round = p.currentRound;
        (,,, uint256 deadline) = _deadlines(p);
        if (block.timestamp <= deadline) revert NotAllowedYet(projectId, deadline + 1);

        p.status = Status.Cancelled;
        uint256 standing = p.rejectedMask; // the dispute window closed before the aggregation deadline
        uint256 revealed = p.revealedMask;
        address[] storage list = _trainerList[projectId];
        uint256 submitters = 0;
        for (uint256 i = 0; i < list.length; ++i) {
            if ((revealed >> i) & 1 == 1 && (standing >> i) & 1 == 0) ++submitters;
        }
        uint256 each = submitters > 0 ? _roundShare(p, round) / submitters : 0; // the remainder stays with the owner
        uint256 cut = (uint256(p.stake) * p.slashBps) / BPS;
        for (uint256 i = 0; i < list.length; ++i) {
            address who = list[i];
            if ((revealed >> i) & 1 == 0) {
                if (_trainers[projectId][who].committedRound != round + 1) continue;
                emit RevealMissed(projectId, round, who); // as at finalization
            } else if ((standing >> i) & 1 == 0) {
                _trainers[projectId][who].earned += uint96(each); // at most the round's share of the budget
                continue;
            } else {
                emit SubmissionRejected(projectId, round, who); // a rejection that stood: as at finalization
                ++_aggregatorRecords[p.aggregator].upheld;
            }
            p.slashed += uint128(_slash(projectId, round, who, cut));
        }
        p.totalEarned += uint128(each * submitters);
        emit ProjectAbandoned(projectId, round, submitters, each);
    }

    // ------------------------------------------------------------------ withdrawals

    /// @notice Pays the caller everything it is owed by a finished or cancelled project, in all
    /// its roles (owner, aggregator, trainer), and gives a trainer back the track record the project's bar
    /// reserved (even when it is owed nothing). Pull payment: state is zeroed before the transfer.
    function withdraw(uint256 projectId) external nonReentrant {
        Project storage p = _project(projectId);
        if (p.status != Status.Finished && p.status != Status.Cancelled) {
            revert WrongStatus(projectId, Status.Finished, p.status);
        }
        uint256 amount = _owed(projectId, p, msg.sender);
        Trainer storage t = _trainers[projectId][msg.sender];
        bool releases = t.reserved && !t.withdrawn; // its reserved record
        if (amount == 0 && !releases) revert NothingToWithdraw(projectId, msg.sender);

        if (msg.sender == p.owner) p.ownerPaid = true;
        if (msg.sender == p.aggregator) p.aggregatorPaid = true;
        if (t.slot != 0) t.withdrawn = true;
        emit Withdrawn(projectId, msg.sender, amount);

        if (releases) registry.release(projectId, msg.sender); // trusted
        if (amount == 0) return;
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The words at `slots` of this contract's storage, in order. {MarketLens} computes the composite
    /// views (a project, a trainer's standing, the open round's deadlines and rejections, seals and commitments,
    /// an aggregator's record) from them, which keeps their code out of this contract (the 24 KB limit). Storage
    /// is public on any chain (`eth_getStorageAt`): this reveals nothing, and changes nothing.
    function extsload(bytes32[] calldata slots) external view returns (bytes32[] memory words) {
        words = new bytes32[](slots.length);
        for (uint256 i = 0; i < slots.length; ++i) {
            bytes32 slot = slots[i];
            bytes32 word;
            assembly ("memory-safe") {
                word := sload(slot)
            }
            words[i] = word;
        }
    }

    /// @dev A submission's seal ({MarketLens-sealOf}) from its CID's hash `cidHash` (the owner's reference: the hash of
    /// the empty CID).
    function _seal(bytes32 commitment, bytes32 cidHash, address trainer, uint256 projectId, uint256 round, bytes32 salt)
        private
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(commitment, cidHash, trainer, block.chainid, address(this), projectId, round, salt));
    }

    /// @dev The tag of `round` of `projectId` that {finalizeRound} hands the verifier ({MarketLens-roundTag}).
    function _roundTag(uint256 projectId, uint256 round) private view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), projectId, round));
    }

    // ------------------------------------------------------------------ internals

    /// @dev A new project's config is usable: roles, verifier, sizes, bars, periods, value, model name and CID.
    function _checkConfig(ProjectConfig calldata cfg) private view {
        if (cfg.aggregator == address(0)) revert ZeroAddress();
        if (!_approvedVerifiers[cfg.verifier]) revert VerifierNotApproved(cfg.verifier);
        if (cfg.rounds == 0 || cfg.rounds > MAX_ROUNDS) revert InvalidConfig("rounds");
        if (cfg.minTrainers == 0 || cfg.minTrainers > cfg.maxTrainers || cfg.maxTrainers > MAX_TRAINERS) {
            revert InvalidConfig("trainers");
        }
        uint256 verifierMax = IRoundVerifier(cfg.verifier).maxTrainers();
        if (cfg.maxTrainers > verifierMax) revert VerifierTooSmall(cfg.maxTrainers, verifierMax);
        if (cfg.minReliabilityBps > BPS || cfg.slashBps > BPS) revert InvalidConfig("bps");
        // The join deadline is stored in 32 bits: a join period reaching past 2^32 - 1 would wrap it into the past
        // and leave a project nobody can ever join (its budget escrowed until the owner cancels).
        if (
            cfg.joinPeriod == 0 || block.timestamp + cfg.joinPeriod > type(uint32).max
                || cfg.submissionPeriod < MIN_PHASE_PERIOD || cfg.revealPeriod < MIN_PHASE_PERIOD
                || cfg.aggregationPeriod < MIN_PHASE_PERIOD
        ) revert InvalidConfig("periods");
        if (msg.value <= cfg.aggregatorFee || msg.value - cfg.aggregatorFee > type(uint96).max) {
            revert InvalidConfig("budget");
        }
        uint256 nameLength = bytes(cfg.modelName).length;
        if (nameLength == 0) revert InvalidConfig("modelName");
        if (nameLength > MAX_MODEL_NAME_LENGTH) revert ModelNameTooLong(nameLength, MAX_MODEL_NAME_LENGTH);
        _checkModelName(cfg.modelName);
        _checkCid(cfg.initialModelCid);
    }

    /// @dev A CID is 1 to {MAX_CID_LENGTH} letters and digits (base58btc, base32 and base36 CIDs all are):
    /// anything else could not be a CID and would be a string every reader must survive.
    function _checkCid(string calldata cid) private pure {
        if (!_isCid(cid)) revert InvalidCid();
    }

    function _isCid(string calldata cid) private pure returns (bool) {
        bytes calldata b = bytes(cid);
        return b.length != 0 && b.length <= MAX_CID_LENGTH && _onlyNameBytes(b, false);
    }

    /// @dev A model name is letters, digits, `_`, `-` and `.` (a registry key, never markup or control bytes).
    function _checkModelName(string calldata name) private pure {
        if (!_onlyNameBytes(bytes(name), true)) revert InvalidModelName();
    }

    /// @dev Whether `b` holds ASCII letters and digits only (`0-9`, `A-Z`, `a-z`), and `-`, `.` and `_` if
    /// `punctuation`. Checked 32 bytes at a time (~300 gas for a 59-byte CID, where a byte-by-byte look-up in a
    /// bitmap cost ~5.6k): no byte may have its top bit set; with it set in all of them, subtracting a bound from
    /// every byte at once borrows in none, and leaves a byte's top bit set exactly when the byte is at least
    /// that bound ({_atLeast}).
    function _onlyNameBytes(bytes calldata b, bool punctuation) private pure returns (bool) {
        uint256 n = b.length;
        for (uint256 i = 0; i < n; i += 32) {
            uint256 left = n - i;
            uint256 valid = left >= 32 ? type(uint256).max : ~(type(uint256).max >> (8 * left)); // b's bytes in it
            uint256 word = uint256(bytes32(b[i:])); // the bytes from i on, zero-padded past the end
            if (word & _TOP_BITS & valid != 0) return false; // a byte over 127
            uint256 x = word | _TOP_BITS;
            uint256 ok = (_atLeast(x, 0x30) & ~_atLeast(x, 0x3a)) | (_atLeast(x, 0x41) & ~_atLeast(x, 0x5b))
                | (_atLeast(x, 0x61) & ~_atLeast(x, 0x7b)); // 0-9, A-Z, a-z
            if (punctuation) ok |= (_atLeast(x, 0x2d) & ~_atLeast(x, 0x2f)) | (_atLeast(x, 0x5f) & ~_atLeast(x, 0x60));
            if (ok & valid != _TOP_BITS & valid) return false;
        }
        return true;
    }

    /// @dev For `x` whose 32 bytes all have their top bit set (0x80 + a byte below 128): the top bit of each byte
    /// that is at least 0x80 + `bound` (`bound` at most 0x80), 0 elsewhere. No byte borrows from the next one.
    function _atLeast(uint256 x, uint256 bound) private pure returns (uint256) {
        unchecked {
            return (x - bound * _BYTE_ONES) & _TOP_BITS;
        }
    }

    /// @dev The caller is project `projectId`'s owner, and the project is training in `round`, the open round.
    function _ownerInRound(uint256 projectId, Project storage p, uint256 round) private view {
        _inRound(projectId, p, round);
        if (msg.sender != p.owner) revert Unauthorized(msg.sender);
    }

    /// @dev The open round's commit phase has not passed its deadline (`round` is the open round).
    function _checkCommitWindow(uint256 projectId, Project storage p, uint256 round) private view {
        uint256 deadline = uint256(p.roundStart) + p.submissionPeriod;
        if (block.timestamp > deadline) revert SubmissionClosed(projectId, round, deadline);
    }

    /// @dev The caller (`t`) committed in `round`, and the reveal phase is open.
    function _checkRevealWindow(uint256 projectId, Project storage p, uint256 round, Trainer storage t) private view {
        if (t.committedRound != round + 1) revert NotCommitted(projectId, round, msg.sender);
        _checkRevealOpen(projectId, p, round);
    }

    /// @dev The open round's (`round`'s) reveal phase is open.
    function _checkRevealOpen(uint256 projectId, Project storage p, uint256 round) private view {
        (, uint256 opens, uint256 closes) = _revealWindow(p);
        if (block.timestamp < opens) revert RevealNotOpen(projectId, round, opens);
        if (block.timestamp > closes) revert RevealClosed(projectId, round, closes);
    }

    /// @dev The open round's {Tally}: its trainers, their commitments and the result's columns; checks the result's
    /// shape, that its trainers are the project's trainer list, that only submitters have a score or a flag, and that
    /// only announced, undisputed submissions are rejected. The trainers come from the calldata, not from the stored
    /// list (a cold read per trainer, 2.1k gas, against ~370 of calldata): `result.trainers[i]` is the project's
    /// i-th trainer exactly when its slot (set once, when it joined) is i + 1, and the list's length is the count.
    function _collectCommitments(uint256 projectId, Project storage p, RoundResult calldata result)
        private
        view
        returns (Tally memory r)
    {
        uint256 n = p.trainerCount; // the trainer list's length, fixed since training started
        if (result.trainers.length != n) revert TrainerListMismatch(projectId, result.trainers.length);
        if (result.scores.length != n || result.flags.length != n || result.rejected.length != n) {
            revert LengthMismatch(n, result.scores.length, result.flags.length, result.rejected.length);
        }
        (r.trainers, r.scores, r.flags, r.rejected) = (result.trainers, result.scores, result.flags, result.rejected);
        r.commitments = new bytes32[](n);
        uint256 rejectedMask = p.rejectedMask;
        uint256 revealed = p.revealedMask;
        mapping(address => Submission) storage submissions = _submissions[projectId];
        mapping(address => Trainer) storage members = _trainers[projectId];
        for (uint256 i = 0; i < n; ++i) {
            if (members[r.trainers[i]].slot != i + 1) revert TrainerListMismatch(projectId, i);
            uint256 score = r.scores[i];
            if (score > MAX_SCORE) revert ScoreTooLarge(i, score);
            bytes32 c = (revealed >> i) & 1 == 0 ? bytes32(0) : submissions[r.trainers[i]].word;
            if (c == bytes32(0) && (score != 0 || r.flags[i])) {
                revert NoSubmission(projectId, p.currentRound, r.trainers[i]);
            }
            // A rejected update is an announced, undisputed submission, flagged, without a score.
            if (r.rejected[i] && ((rejectedMask >> i) & 1 == 0 || !r.flags[i] || score != 0)) {
                revert InvalidRejection(projectId, p.currentRound, r.trainers[i]);
            }
            r.commitments[i] = c;
        }
    }

    /// @dev Asks the verifier, with the round's values in arrival order: the trainers who committed,
    /// in the order their commits were accepted, then the others in trainer order (a trainer that
    /// committed and did not reveal keeps its place as an empty slot). (Arrival
    /// order matters to the scoring rule: of two identical updates, only the first is paid.)
    /// A rejected submission keeps its place but is handed over as an empty slot (commitment 0, not
    /// flagged): the aggregator has no update to prove anything about; the market records it as flagged.
    /// The verifier also gets the round's {MarketLens-roundTag}, so that the proof counts for this round only, and the owner's
    /// revealed reference commitment (0: none revealed; the rule without a reference).
    function _verify(uint256 projectId, uint256 round, Project storage p, Tally memory r, bytes calldata proof)
        private
        view
        returns (bool)
    {
        (bytes32[] memory c, uint256[] memory s, bool[] memory f) = _inArrivalOrder(projectId, round, p.commits, r);
        bytes32 refCommitment = _references[projectId][round].commitment;
        return IRoundVerifier(p.verifier).verifyRound(_roundTag(projectId, round), c, s, f, refCommitment, proof);
    }

    /// @dev The round's commitments, scores and flags in arrival order (`late`: the number of commits, where those
    /// without one start), rejected submissions as empty slots.
    function _inArrivalOrder(uint256 projectId, uint256 round, uint256 late, Tally memory r)
        private
        view
        returns (bytes32[] memory c, uint256[] memory s, bool[] memory f)
    {
        uint256 n = r.trainers.length;
        c = new bytes32[](n);
        s = new uint256[](n);
        f = new bool[](n);
        mapping(address => Trainer) storage members = _trainers[projectId];
        for (uint256 i = 0; i < n; ++i) {
            Trainer storage t = members[r.trainers[i]];
            uint256 at = t.committedRound != round + 1 ? late++ : t.arrival - 1;
            bool rejected = r.rejected[i];
            c[at] = rejected ? bytes32(0) : r.commitments[i]; // the proof has no witness for it: an empty slot
            s[at] = r.scores[i];
            f[at] = rejected ? false : r.flags[i];
        }
    }

    /// @dev Credits the round's share (shrunk by standing rejections: see {finalizeRound}) to unflagged
    /// submitters by score, slashes flagged ones and those
    /// that committed without revealing, and returns every trainer's outcome for the registry and
    /// reward for the event.
    function _settleRound(uint256 projectId, Project storage p, uint256 round, Tally memory r)
        private
        returns (IReliabilityRegistry.Outcome[] memory outcomes, uint256[] memory rewards)
    {
        uint256 n = r.trainers.length;
        outcomes = new IReliabilityRegistry.Outcome[](n);
        rewards = new uint256[](n);
        uint256 totalScore = 0;
        for (uint256 i = 0; i < n; ++i) {
            if (!r.flags[i]) totalScore += r.scores[i];
        }
        Settlement memory s = Settlement({
            projectId: projectId,
            round: round,
            roundReward: _roundPool(p, round, r.rejected),
            totalScore: totalScore,
            cut: (uint256(p.stake) * p.slashBps) / BPS
        });
        uint256 credited = 0;
        uint256 slashed = 0;
        for (uint256 i = 0; i < n; ++i) {
            uint256 taken;
            (outcomes[i], rewards[i], taken) =
                _settleTrainer(s, r.trainers[i], r.commitments[i] != bytes32(0), r.flags[i], r.scores[i]);
            credited += rewards[i];
            slashed += taken;
            if (r.rejected[i]) {
                emit SubmissionRejected(s.projectId, s.round, r.trainers[i]);
                ++_aggregatorRecords[p.aggregator].upheld;
            }
        }
        p.totalEarned += uint128(credited);
        p.slashed += uint128(slashed);
    }

    /// @dev Slashes `cut` (at most what is left) of `who`'s stake in `round`: flagged, committed without revealing,
    /// or its rejection stood (at finalization or abandonment). Returns what was taken.
    function _slash(uint256 projectId, uint256 round, address who, uint256 cut) private returns (uint256 slashed) {
        Trainer storage t = _trainers[projectId][who];
        slashed = cut > t.stakeLeft ? t.stakeLeft : cut;
        if (slashed > 0) {
            t.stakeLeft -= uint96(slashed);
            emit StakeSlashed(projectId, round, who, slashed);
        }
    }

    /// @dev One trainer's part of {_settleRound}.
    function _settleTrainer(Settlement memory s, address who, bool submitted, bool flagged, uint256 score)
        private
        returns (IReliabilityRegistry.Outcome outcome, uint256 reward, uint256 slashed)
    {
        if (!submitted) {
            if (_trainers[s.projectId][who].committedRound != s.round + 1) {
                return (IReliabilityRegistry.Outcome.Missed, 0, 0);
            }
            emit RevealMissed(s.projectId, s.round, who); // committed and withheld its reveal: as flagged
            flagged = true;
        }
        if (flagged) return (IReliabilityRegistry.Outcome.Flagged, 0, _slash(s.projectId, s.round, who, s.cut));
        if (s.totalScore > 0) {
            reward = (s.roundReward * score) / s.totalScore;
            _trainers[s.projectId][who].earned += uint96(reward); // at most the round's share of the budget
        }
        return (IReliabilityRegistry.Outcome.Contributed, reward, 0);
    }

    function _startTraining(uint256 projectId, Project storage p) private {
        p.status = Status.Training;
        p.roundStart = uint40(block.timestamp);
        uint256 trainers = _trainerList[projectId].length;
        p.trainerCount = uint8(trainers); // at most MAX_TRAINERS
        emit TrainingStarted(projectId, trainers, block.timestamp + p.submissionPeriod);
    }

    /// @dev The budget per guaranteed trainer over the protocol fee rate (see {MarketLens-requiredTrackRecord}).
    function _requiredTrackRecord(Project storage p) internal view returns (uint256) {
        return (uint256(p.rewardBudget) * BPS) / (uint256(p.minTrainers) * PROTOCOL_FEE_BPS);
    }

    /// @dev What the trainers of `round` split: its share, shrunk to the accepted part
    /// (`share * accepted / revealed`) when standing rejections leave fewer than {MIN_VALID_ROWS} accepted.
    function _roundPool(Project storage p, uint256 round, bool[] memory rejected) private view returns (uint256) {
        uint256 revealed = p.submissions;
        uint256 accepted = revealed;
        for (uint256 i = 0; i < rejected.length; ++i) {
            if (rejected[i]) --accepted;
        }
        uint256 share = _roundShare(p, round);
        return accepted < MIN_VALID_ROWS && accepted < revealed ? (share * accepted) / revealed : share;
    }

    /// @dev Round `round`'s share of the budget; the shares of all rounds sum to the budget exactly.
    function _roundShare(Project storage p, uint256 round) private view returns (uint256) {
        uint256 budget = p.rewardBudget;
        return (budget * (round + 1)) / p.rounds - (budget * round) / p.rounds;
    }

    /// @dev The fee the aggregator earned: pro rata of finalized rounds.
    function _aggregatorEarned(Project storage p) private view returns (uint256) {
        return (uint256(p.aggregatorFee) * p.currentRound) / p.rounds;
    }

    function _owed(uint256 projectId, Project storage p, address account) internal view returns (uint256 amount) {
        if (account == p.owner && !p.ownerPaid) {
            amount += uint256(p.rewardBudget) - p.totalEarned + p.aggregatorFee - _aggregatorEarned(p) + p.slashed;
        }
        if (account == p.aggregator && !p.aggregatorPaid) amount += _aggregatorEarned(p);
        Trainer storage t = _trainers[projectId][account];
        if (t.slot != 0 && !t.withdrawn) amount += uint256(t.earned) + t.stakeLeft;
    }
}
