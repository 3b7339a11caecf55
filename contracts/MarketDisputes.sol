// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
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
 * function called here directly reverts (`UnknownProject`, `WrongStatus`, `NoBondToWithdraw`). It holds no ether and
 * no state of its own (the `Ownable` owner of its own storage, its deployer, can do nothing with it).
 *
 * Rejection bonds (optimistic-rollup style): an announcement posts {rejectionBond} wei per rejected trainer. A trainer
 * that disputes its rejection successfully is reimbursed its dispute's gas out of its bond, never more (so a false
 * rejection pays for the dispute it forces, and withholding an update to be rejected earns nothing);
 * the bonds of the rejections nobody disputed go back to the aggregator once the round's dispute window is over
 * ({reclaimBonds}). Both are credits, withdrawn with {withdrawBonds} (pull payment). The market's ether is always
 * what it owes: its projects' escrow, the bonds held for rounds ({bondsHeld}) and the bonds credited ({bondCredit}).
 * Only {rejectSubmissions} takes ether: every other function of this module is non-payable, and so reverts when the
 * market's call carries any (DELEGATECALL keeps the call's value); a call of a function neither has reverts here.
 *
 * Stale challenges ({challengeStale}): the scoring rule compares a round's rows with each other only, so a trainer
 * that replays a row revealed in an earlier round of the project (another trainer's, or its own) would be paid like
 * an honest one. Anyone may show such a replay before the round is finalized: the replayed row and the earlier one,
 * each with its row proof, and where the earlier one was revealed (the round's recorded commitments, or the owner's
 * reference of that round); the market checks the near-copy test in integers and then treats the submission as a
 * rejection nobody can dispute (unpaid, flagged, slashed; the proof sees an empty slot). Every round stays open to
 * challenges for {challengePeriod} seconds after its latest reveal ({TrainingMarket-finalizeRound} waits).
 */
contract MarketDisputes is MarketState, ReentrancyGuardTransient {
    /// @notice The bond, in wei, an aggregator posts per trainer whose rejection it announces ({rejectSubmissions}).
    /// Fixed at deployment for every project of the market (an immutable: no owner, of the market or of a project,
    /// can lower it for an aggregator it colludes with).
    uint256 public immutable rejectionBond;
    /// @notice Seconds a round stays open to stale challenges ({challengeStale}) after its latest reveal:
    /// {TrainingMarket-finalizeRound} reverts `ChallengeWindowOpen` before. Fixed at deployment for every project of
    /// the market, at most {MAX_CHALLENGE_PERIOD} (so that a round revealed at its reveal deadline can still be
    /// finalized within the shortest aggregation period). 0: no guaranteed window (a colluding aggregator may
    /// finalize at once, before anyone could challenge).
    uint256 public immutable challengePeriod;
    /// @notice The longest {challengePeriod}: 4 minutes, a minute under the shortest aggregation period.
    uint256 public constant MAX_CHALLENGE_PERIOD = 4 minutes;
    /// @notice The near-copy bar of a stale challenge against another trainer's earlier row: the
    /// scoring rule's `dup_dist` (`GramConfig.dup_dist`, 2^-6 on unit rows) as a squared distance of rows at scale
    /// 2^13, i.e. 2^-6 * 2^26: `sum((a_k - b_k)^2)` over the K sketch entries at most this. Honest rows of different
    /// trainers in different rounds measured at cosine 0.936 at most (squared distance >= 0.128 = 2^-2.97).
    uint256 public constant NEAR_COPY_DIST = 2 ** 20;
    /// @notice The bar against the trainer's own earlier row, and against the owner's reference: 2^-10 at scale 2^26
    /// (cosine above ~0.9995). A trainer's honest rows of successive rounds can be close (measured cosine up to
    /// 0.990, Dirichlet data), so only an (almost) identical row counts as its replay. The owner's reference costs
    /// its owner nothing and can be any row: with the looser bar an owner could publish an honest trainer's earlier
    /// row (or a prediction of its next one) as its reference and have the trainer's next rows shown stale, the
    /// slash its own; against the reference only an almost identical replay counts.
    uint256 public constant OWN_COPY_DIST = 2 ** 16;
    /// @notice {StaleEvidence-author} naming the owner's reference row of the earlier round.
    uint256 public constant REFERENCE_AUTHOR = type(uint256).max;
    /// @notice Gas of a stale challenge sent as its own transaction by a plain account that {challengeStale} cannot
    /// measure with `gasleft()`, added to what it measures and to its calldata's cost (counted exactly, 4 gas a zero
    /// byte and 16 a non-zero one, so that padding earns nothing): the transaction's 21,000 intrinsic gas, the
    /// market's dispatch (its copy of the calldata into memory, the DELEGATECALL to this module) before the
    /// measurement, and the work after it (the trainer's stake and the credit updated, the event, the return).
    /// Measured on anvil (1.7) as the receipt's gas less the calldata, the gas measured and the first credit's
    /// {NEW_CREDIT_GAS}: 35,550 for a test-verifier challenge of 4,964 calldata bytes (K = 64, five trainers), and
    /// ~0.21 gas more per further byte (the dispatch's copy: 36,407 at 8,964 bytes). Rounded down to what a challenge
    /// of ~2.4 KB costs, so that a challenge is reimbursed at most its fee (a longer one, as every challenge with
    /// two rows of K >= 32, a little less: 550 gas, 0.2 %, at 4,964 bytes; `tests/test_stale_challenge.py`).
    uint256 public constant CHALLENGE_GAS_OVERHEAD = 35_000;

    /// @notice What {challengeStale} is shown: trainer `trainer`'s row of the open round and an earlier row of the
    /// project it nearly copies.
    struct StaleEvidence {
        address trainer; // the challenged trainer, X: it revealed in the open round
        int256[] row; // X's committed row of the open round (K + 2 integers at scale 2^13)
        bytes proof; // a row proof of `row` for X's revealed commitment ({IRoundVerifier-verifyRow})
        uint256 earlierRound; // r' < the open round: where the earlier row was revealed
        uint256 author; // its author: an index in the trainer list, or {REFERENCE_AUTHOR} (the owner's reference)
        bytes32[] commitments; // round r''s commitments in trainer order (0: no reveal); empty for the reference
        int256[] earlierRow; // the earlier row (K + 2 integers at scale 2^13)
        bytes earlierProof; // a row proof of `earlierRow` for its commitment
    }

    /// @notice Gas of a dispute sent as its own transaction by a plain account that {disputeRejection} cannot measure
    /// with `gasleft()`, added to what it measures: the transaction's 21,000 intrinsic gas, the market's dispatch
    /// and DELEGATECALL to this module before the measurement starts, and the work after it ends (the held bond's
    /// update, the award's event, the return): ~21,000 + ~3,500 + ~5,000 (the held bond's update) + ~2,900 (the
    /// credit's update) + ~2,100 (the event) + the rest; measured 36,071 on anvil (1.7) for a test-verifier
    /// dispute (2,340 calldata bytes: the dispatch's copy of a longer one costs a little more) without an access
    /// list, rounded up. The credit's zero-to-nonzero extra is added apart ({NEW_CREDIT_GAS}); the calldata at 16
    /// gas a byte, the most a byte costs, over the arguments' ABI encoding only: bytes sent after it (4 gas each if
    /// zero) count for nothing. Within it a zero byte costs 4: the slack a trainer is overpaid, 12 gas a zero byte
    /// of its arguments' encoding (~12.4k gas, ~6 %, for a test-verifier dispute; counting them here would cost
    /// ~9k of it).
    /// An access list's entries are not counted: one declaring the module and the held bond's slot gains ~200 gas
    /// (an entry costs 2,400 / 1,900 up front where the first touch costs 2,600 / 2,100); any other entry loses.
    uint256 public constant DISPUTE_GAS_OVERHEAD = 36_100;
    /// @notice Gas added to what {disputeRejection} measures for a dispute that is not its own transaction's only
    /// call by a plain account (a contract, an account delegating to code (EIP-7702), or any call whose sender is
    /// not `tx.origin`): the least the work after the measurement costs (the held bond's write, 2,900 and at least
    /// 100 to read it; the credit's, at least 100; the event's 2,131), rounded down. Such a call may share its
    /// transaction's intrinsic gas with other calls and build its calldata in memory, so neither is reimbursed, nor
    /// {NEW_CREDIT_GAS} (its credit may have been emptied earlier in the transaction): it is reimbursed less than it
    /// costs, never more.
    uint256 public constant RELAYED_DISPUTE_GAS_OVERHEAD = 5_000;
    /// @notice The extra gas of the award's credit when the trainer had none (a zero slot set: 22,100 instead of
    /// 5,000), added to a dispute's reimbursed gas in that case only.
    uint256 public constant NEW_CREDIT_GAS = 17_100;
    /// @notice The most priority fee per gas, in wei, a dispute's reimbursement pays above the block's base fee.
    uint256 public constant MAX_REIMBURSED_TIP = 2 gwei;

    /// @notice The aggregator posted `amount` (the bond times the rejections announced) for `round`'s rejections.
    event BondPosted(uint256 indexed projectId, uint256 indexed round, address indexed aggregator, uint256 amount);
    /// @notice `trainer` disputed its rejection in `round` successfully and was credited `amount` of its bond: its
    /// dispute's gas cost ({disputeRejection}), at most the bond; the rest stays held for the aggregator.
    event BondAwarded(uint256 indexed projectId, uint256 indexed round, address indexed trainer, uint256 amount);
    /// @notice The bonds of `round`'s undisputed rejections, `amount`, were credited back to `aggregator`.
    event BondReturned(uint256 indexed projectId, uint256 indexed round, address indexed aggregator, uint256 amount);
    /// @notice `account` withdrew `amount` of bonds credited to it.
    event BondWithdrawn(address indexed account, uint256 amount);
    /// @notice `challenger` showed that `trainer`'s submission in `round` nearly copies the row behind `earlier`,
    /// revealed in `earlierRound` by trainer number `author` (index in the trainer list; {REFERENCE_AUTHOR}: the
    /// owner's reference): the submission is rejected, beyond dispute. `award` (wei, out of the trainer's stake) was
    /// credited to the challenger for its gas ({withdrawBonds}).
    event StaleChallenged(
        uint256 indexed projectId,
        uint256 indexed round,
        address indexed trainer,
        address challenger,
        uint256 earlierRound,
        uint256 author,
        bytes32 earlier,
        uint256 award
    );

    /// @notice {rejectSubmissions} was sent `sent` wei; it takes exactly `expected` (the bond per rejected trainer).
    error WrongBond(uint256 expected, uint256 sent);
    /// @notice `round`'s dispute window is still open (disputes may still be awarded bonds) until `deadline`.
    error BondsStillAtStake(uint256 projectId, uint256 round, uint256 deadline);
    /// @notice No bond is held for `round` of project `projectId` (none posted, or returned already).
    error NoBondsHeld(uint256 projectId, uint256 round);
    /// @notice No bond is credited to `account`.
    error NoBondToWithdraw(address account);
    /// @notice `trainer`'s submission in `round` was already shown stale: it cannot be challenged again, nor its
    /// rejection disputed.
    error AlreadyShownStale(uint256 projectId, uint256 round, address trainer);
    /// @notice The open round `round` can no longer be challenged: its aggregation deadline `deadline` passed.
    error ChallengeClosed(uint256 projectId, uint256 round, uint256 deadline);
    /// @notice `earlierRound` is not a finalized round before `round` (challenges compare with earlier rounds only).
    error NotAnEarlierRound(uint256 projectId, uint256 round, uint256 earlierRound);
    /// @notice The commitments given for `earlierRound` hash to `given`, not to the round's record `recorded`.
    error RoundCommitmentsMismatch(uint256 projectId, uint256 earlierRound, bytes32 recorded, bytes32 given);
    /// @notice Nothing was revealed in `earlierRound` by `author` (a trainer index, or {REFERENCE_AUTHOR}).
    error NotRevealedEarlier(uint256 projectId, uint256 earlierRound, uint256 author);
    /// @notice The earlier row's proof does not show it behind `commitment`, revealed in `earlierRound`.
    error InvalidEarlierRowProof(uint256 projectId, uint256 earlierRound, bytes32 commitment);
    /// @notice The two rows' squared distance `distance` (scale 2^26) is above the near-copy bar `bar`
    /// ({NEAR_COPY_DIST}, or {OWN_COPY_DIST} against the trainer's own earlier row).
    error NotANearCopy(uint256 distance, uint256 bar);

    /// @param bondPerRejection the {rejectionBond}, in wei (0 turns bonds off: announcements are free again)
    /// @param challengeSeconds the {challengePeriod}, at most {MAX_CHALLENGE_PERIOD} (`InvalidConfig` otherwise)
    constructor(uint256 bondPerRejection, uint256 challengeSeconds) Ownable(msg.sender) {
        if (challengeSeconds > MAX_CHALLENGE_PERIOD) revert InvalidConfig("challengePeriod");
        rejectionBond = bondPerRejection;
        challengePeriod = challengeSeconds;
    }

    /// @notice Announces the submissions of `round` that the aggregator will reject (updates it could not
    /// fetch, or whose rows do not match their commitments), once per round, after the reveal phase and
    /// before the aggregation deadline. It opens a dispute window of `revealPeriod` seconds, during which
    /// each of these trainers may publish its committed row ({disputeRejection}); the aggregation deadline
    /// moves to `aggregationPeriod` after the window closes. Only announced, undisputed submissions can be
    /// rejected in {finalizeRound}.
    /// Takes exactly {rejectionBond} wei per rejected trainer ({WrongBond} otherwise), held for the round
    /// ({bondsHeld}): a trainer that disputes successfully is reimbursed its dispute's gas out of its bond, the rest
    /// comes back to the aggregator after the window ({reclaimBonds}).
    /// WARNING: the part of a bond that reimburses a successful dispute's gas (up to the whole bond) is lost to that
    /// trainer, whether the rejection was false or the update merely late to reach the aggregator's IPFS node:
    /// announce only the submissions it could not fetch or check, after retrying.
    function rejectSubmissions(uint256 projectId, uint256 round, address[] calldata trainers) external payable {
        Project storage p = _project(projectId);
        _expectStatus(projectId, p, Status.Training);
        if (msg.sender != p.aggregator) revert Unauthorized(msg.sender);
        if (round != p.currentRound) revert WrongRound(projectId, p.currentRound, round);
        _checkTiming(projectId, p, round);
        if (p.disputeDeadline != 0) revert RejectionsAlreadyAnnounced(projectId, round);
        if (trainers.length == 0) revert InvalidRejection(projectId, round, address(0));
        uint256 bonds = rejectionBond * trainers.length;
        if (msg.value != bonds) revert WrongBond(bonds, msg.value);

        uint256 deadline = block.timestamp + p.revealPeriod;
        uint64 mask = p.rejectedMask; // before the announcement: the submissions shown stale only
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
        if (bonds != 0) {
            _bondsHeld[projectId][round] = bonds; // announced once per round: nothing held for it before
            emit BondPosted(projectId, round, msg.sender, bonds);
        }
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
    /// A successful dispute reimburses the caller its own gas cost out of the {rejectionBond} the aggregator posted
    /// for its rejection, never more (`BondAwarded`; withdrawn with {withdrawBonds}): the gas measured with
    /// `gasleft()`, plus, for a dispute sent as its own transaction by a plain account (`msg.sender == tx.origin`,
    /// without code), {DISPUTE_GAS_OVERHEAD} (plus {NEW_CREDIT_GAS} for a first credit) and 16 gas per byte of its
    /// arguments' ABI encoding (an upper bound of their calldata's cost; bytes sent after the encoding count for
    /// nothing), or, for any other caller, only {RELAYED_DISPUTE_GAS_OVERHEAD}; at
    /// `min(tx.gasprice, block.basefee + MAX_REIMBURSED_TIP)` per gas, capped by the bond; the rest of the bond
    /// stays held and returns to the aggregator ({reclaimBonds}). So a false rejection costs a plain account's
    /// trainer nothing in gas up to the bond, and a trainer that withholds its update to be rejected and then
    /// disputes earns nothing from the bond (at most the calldata bound's slack). Under the market's DELEGATECALL
    /// `gasleft()`, `tx.gasprice`, `tx.origin` and `block.basefee` are the disputing transaction's.
    /// WARNING: a trainer that disputes through code (a contract wallet, an EIP-7702 delegation) is reimbursed less
    /// than its dispute costs (the intrinsic gas, the calldata, the first credit's extra: ~90k of a test-verifier
    /// dispute's ~195k gas): dispute from the plain account itself.
    /// WARNING: a trainer colluding with the block's builder can pay it a tip above its real cost (refunded off
    /// chain); only {MAX_REIMBURSED_TIP} per gas of a tip is reimbursed, so it recovers at most `used *
    /// MAX_REIMBURSED_TIP` above the base fee this way. Gas above the bond (a zk dispute at a high base fee) and
    /// the row proof's computation are not reimbursed.
    function disputeRejection(uint256 projectId, uint256 round, int256[] calldata row, bytes calldata proof)
        external
    {
        uint256 gasAtStart = gasleft();
        Project storage p = _projects[projectId];
        uint64 bit = uint64(1) << (_memberInRound(projectId, p, round).slot - 1);
        if (p.rejectedMask & bit == 0) revert NotRejected(projectId, round, msg.sender);
        if (p.staleMask & bit != 0) revert AlreadyShownStale(projectId, round, msg.sender);
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
        // The length of the arguments' ABI encoding: the selector, four head words, the row's length and entries,
        // the proof's length and its bytes in whole words.
        if (rejectionBond != 0) {
            _awardBond(projectId, round, gasAtStart, 0xc4 + 32 * row.length + ((proof.length + 31) & ~uint256(31)));
        }
    }

    /// @dev Credits the disputing caller its dispute's cost out of its rejection's bond, at most the bond: the gas
    /// used since `gasAtStart`, plus {DISPUTE_GAS_OVERHEAD} ({NEW_CREDIT_GAS} too if it had no credit) and 16 gas for
    /// each of the first `argumentsLength` calldata bytes if the caller is a plain account sending its own
    /// transaction (then this call is the transaction's only one, and its data the transaction's), else
    /// {RELAYED_DISPUTE_GAS_OVERHEAD}; at `min(tx.gasprice, block.basefee + MAX_REIMBURSED_TIP)` per gas.
    function _awardBond(uint256 projectId, uint256 round, uint256 gasAtStart, uint256 argumentsLength) private {
        uint256 credit = _bondCredits[msg.sender];
        uint256 award = _gasCost(gasAtStart, DISPUTE_GAS_OVERHEAD, credit == 0, argumentsLength, false);
        if (award > rejectionBond) award = rejectionBond;
        _bondsHeld[projectId][round] -= award; // posted with the announcement, one bond per rejected trainer
        _bondCredits[msg.sender] = credit + award;
        emit BondAwarded(projectId, round, msg.sender, award);
    }

    /// @dev The caller's cost of this transaction, in wei, at `min(tx.gasprice, block.basefee + MAX_REIMBURSED_TIP)`
    /// per gas: the gas used since `gasAtStart`, plus, if the caller is a plain account sending its own transaction
    /// (then this call is the transaction's only one, and its data the transaction's), `overhead`
    /// ({NEW_CREDIT_GAS} too if `newCredit`) and the calldata: with `exactCalldata` what the whole calldata cost
    /// ({_calldataGas}), else 16 gas for each of the first `argumentsLength` calldata bytes; for any other caller
    /// only {RELAYED_DISPUTE_GAS_OVERHEAD} (a call inside another transaction may share its intrinsic gas, build its
    /// calldata in memory and have emptied its credit earlier in it: reimbursed less than it costs, never more).
    function _gasCost(
        uint256 gasAtStart,
        uint256 overhead,
        bool newCredit,
        uint256 argumentsLength,
        bool exactCalldata
    ) private view returns (uint256) {
        uint256 used = RELAYED_DISPUTE_GAS_OVERHEAD;
        if (msg.sender == tx.origin && msg.sender.code.length == 0) {
            uint256 paid = argumentsLength < msg.data.length ? argumentsLength : msg.data.length;
            used = overhead + (exactCalldata ? _calldataGas(paid) : 16 * paid);
            if (newCredit) used += NEW_CREDIT_GAS;
        }
        used += gasAtStart - gasleft();
        uint256 price = block.basefee + MAX_REIMBURSED_TIP;
        if (tx.gasprice < price) price = tx.gasprice;
        return used * price;
    }

    /// @dev What the first `length` bytes of this call's calldata cost as a transaction's data (EIP-2028): 4 gas a zero
    /// byte, 16 a non-zero one.
    /// Counted four words a step, a flag per non-zero byte and one multiplication to sum them (~70 gas a word: ~10.6k
    /// for a test-verifier challenge's 4,964 bytes). The bytes past the end that `calldataload` pads with are zeros,
    /// not counted; the last step may count up to 127 non-zero bytes sent after the first `length` (at most ~1.5k gas
    /// over what those cost, out of the stale trainer's stake).
    function _calldataGas(uint256 length) private pure returns (uint256) {
        uint256 nonZero;
        assembly ("memory-safe") {
            let low := 0x7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f
            let high := 0x8080808080808080808080808080808080808080808080808080808080808080
            let ones := 0x0101010101010101010101010101010101010101010101010101010101010101
            let end := length
            // Four words a step (past the end `calldataload` reads zeros). Bit 7 of each byte of
            // `or(add(and(w, low), low), w)` is set iff the byte is not zero; the flags of four words add up to at
            // most 4 a byte, summed over the bytes by one multiplication (at most 128: the top byte holds it).
            for { let i := 0 } lt(i, end) { i := add(i, 128) } {
                let w := calldataload(i)
                let f := shr(7, and(high, or(add(and(w, low), low), w)))
                w := calldataload(add(i, 32))
                f := add(f, shr(7, and(high, or(add(and(w, low), low), w))))
                w := calldataload(add(i, 64))
                f := add(f, shr(7, and(high, or(add(and(w, low), low), w))))
                w := calldataload(add(i, 96))
                f := add(f, shr(7, and(high, or(add(and(w, low), low), w))))
                nonZero := add(nonZero, shr(248, mul(f, ones)))
            }
        }
        return 4 * length + 12 * nonZero;
    }

    /// @notice Shows that `e.trainer`'s submission in `round` (the open round of project `projectId`) replays a row
    /// revealed in an earlier round of the project: anyone may call it, from the trainer's reveal until the round is
    /// finalized (which waits {challengePeriod} after the latest reveal) or its aggregation deadline passes
    /// ({ChallengeClosed}). The evidence ({StaleEvidence}): the trainer's row with a row proof for its revealed
    /// commitment, and an earlier row with a row proof for the commitment revealed in `e.earlierRound` by trainer
    /// number `e.author` (the round's commitments in trainer order, which must hash to the round's record,
    /// {RoundCommitmentsMismatch}) or, with {REFERENCE_AUTHOR}, for the owner's reference of that round. The rows must
    /// be near copies in the scoring rule's sense, in exact integers: `sum((a_k - b_k)^2) <= NEAR_COPY_DIST` over
    /// the K sketch entries, or `<= OWN_COPY_DIST` when the earlier row is the trainer's own or the owner's reference
    /// ({NotANearCopy}). An announced rejection may be challenged too (so that a stale trainer cannot escape by
    /// disputing it after the window, the aggregator finalizing at once): it then stands, beyond dispute.
    /// On success the submission is rejected as an announced rejection nobody disputed is (flagged, unpaid, slashed
    /// at finalization, an empty slot for the proof, its part of the round going to the others through the proof),
    /// and it cannot be disputed ({AlreadyShownStale}); the aggregator's record counts it as a rejection that stands.
    /// Its row is recorded as published (`_publishedRows`). The caller is credited its gas cost out of the trainer's
    /// remaining stake, at most that stake ({withdrawBonds}): as {disputeRejection}'s, with {CHALLENGE_GAS_OVERHEAD}
    /// and its arguments' ABI encoding at what it cost (4 gas a zero byte, 16 a non-zero one; bytes sent after it not
    /// counted) for a plain account sending its
    /// own transaction, so at most its fee and within ~1 % of it at base fee + at most {MAX_REIMBURSED_TIP}.
    /// Reverts `NoSubmission` for a trainer that did not reveal in the round,
    /// {AlreadyShownStale} for a second challenge, `InvalidRowProof` / {InvalidEarlierRowProof} for a bad proof,
    /// {NotAnEarlierRound}, {NotRevealedEarlier} for an earlier row nobody revealed there.
    /// WARNING: like a dispute it calls the verifier twice (about 2M gas with the zk verifier): send it with the
    /// gas `eth_estimateGas` gives. A copy with enough noise to pass the rule's own copy test passes this one too.
    function challengeStale(uint256 projectId, uint256 round, StaleEvidence calldata e) external {
        uint256 gasAtStart = gasleft();
        Project storage p = _projects[projectId];
        uint256 index = _challengeable(projectId, round, p, e.trainer);
        (bytes32 commitment, bytes32 earlier) = _checkEvidence(projectId, round, p, e, index);

        uint64 bit = uint64(1) << index;
        p.staleMask |= bit;
        if (p.rejectedMask & bit == 0) {
            p.rejectedMask |= bit;
            ++_aggregatorRecords[p.aggregator].rejections;
        } // else announced already (and counted): the rejection now stands beyond dispute
        mapping(bytes32 => uint256) storage published = _publishedRows[projectId];
        if (published[commitment] == 0) published[commitment] = round + 1;
        uint256 award = _reimburseFromStake(projectId, e.trainer, gasAtStart, _evidenceLength(e));
        emit StaleChallenged(projectId, round, e.trainer, msg.sender, e.earlierRound, e.author, earlier, award);
    }

    /// @dev The index of `trainer` in the trainer list, once its submission in `round`, the open round, may be
    /// challenged: revealed, not shown stale, before the aggregation deadline. An announced rejection does not stop
    /// a challenge: its trainer could dispute it after the challenge window, and the aggregator finalize at once.
    function _challengeable(uint256 projectId, uint256 round, Project storage p, address trainer)
        private
        view
        returns (uint256 index)
    {
        _inRound(projectId, p, round);
        uint256 slot = _trainers[projectId][trainer].slot;
        if (slot == 0) revert NotATrainer(projectId, trainer);
        index = slot - 1;
        if ((p.revealedMask >> index) & 1 == 0) revert NoSubmission(projectId, round, trainer);
        if ((p.staleMask >> index) & 1 != 0) revert AlreadyShownStale(projectId, round, trainer);
        (,,, uint256 deadline) = _deadlines(p);
        if (block.timestamp > deadline) revert ChallengeClosed(projectId, round, deadline);
    }

    /// @dev Checks `e` against trainer number `index`'s revealed commitment (returned, with the earlier row's): both
    /// rows in the box, near copies, each proven behind its commitment.
    function _checkEvidence(
        uint256 projectId,
        uint256 round,
        Project storage p,
        StaleEvidence calldata e,
        uint256 index
    ) private view returns (bytes32 commitment, bytes32 earlier) {
        earlier = _earlierCommitment(projectId, round, e);
        IRoundVerifier verifier = IRoundVerifier(p.verifier);
        uint256 k = verifier.sketchWidth();
        _checkRow(e.row, k);
        _checkRow(e.earlierRow, k);
        uint256 distance = _squaredDistance(e.row, e.earlierRow, k);
        uint256 bar = e.author == index || e.author == REFERENCE_AUTHOR ? OWN_COPY_DIST : NEAR_COPY_DIST;
        if (distance > bar) revert NotANearCopy(distance, bar);
        commitment = _submissions[projectId][e.trainer].word; // revealed in the open round: its commitment
        if (!verifier.verifyRow(commitment, e.row, e.proof)) revert InvalidRowProof(projectId, round, e.trainer);
        if (!verifier.verifyRow(earlier, e.earlierRow, e.earlierProof)) {
            revert InvalidEarlierRowProof(projectId, e.earlierRound, earlier);
        }
    }

    /// @dev Credits the caller its challenge's gas cost ({_gasCost} with {CHALLENGE_GAS_OVERHEAD}) out of `trainer`'s
    /// remaining stake, at most all of it; returns the award.
    function _reimburseFromStake(uint256 projectId, address trainer, uint256 gasAtStart, uint256 argumentsLength)
        private
        returns (uint256 award)
    {
        Trainer storage t = _trainers[projectId][trainer];
        uint256 credit = _bondCredits[msg.sender];
        // The arguments' encoding is counted at what it cost (zero bytes at 4 gas); bytes sent after it not at all.
        award = _gasCost(gasAtStart, CHALLENGE_GAS_OVERHEAD, credit == 0, argumentsLength, true);
        uint256 left = t.stakeLeft;
        if (award > left) award = left;
        t.stakeLeft = uint96(left - award);
        _bondCredits[msg.sender] = credit + award;
    }

    /// @dev The length of {challengeStale}'s arguments' ABI encoding: the selector, three head words, the evidence's
    /// eight head words and five length words, its arrays' entries and its proofs' bytes in whole words. Only these
    /// bytes are reimbursed (at what they cost, {_calldataGas}): zero bytes sent after them (4 gas each on chain,
    /// 10 under EIP-7623's floor) would otherwise earn 12 (6) gas apiece out of the stale trainer's stake, which the
    /// finalization's slash would have paid the owner (and a stale trainer's own Sybil would recover its stake so).
    /// The owner's reference needs no commitments: a list sent with it is not counted.
    function _evidenceLength(StaleEvidence calldata e) private pure returns (uint256) {
        uint256 words = e.row.length + e.earlierRow.length;
        if (e.author != REFERENCE_AUTHOR) words += e.commitments.length;
        return 0x204 + 32 * words + ((e.proof.length + 31) & ~uint256(31))
            + ((e.earlierProof.length + 31) & ~uint256(31));
    }

    /// @dev The commitment of the earlier row of `e`: revealed in `e.earlierRound` (before `round`) by trainer number
    /// `e.author` (the given commitments hashing to the round's record), or the owner's reference of that round.
    function _earlierCommitment(uint256 projectId, uint256 round, StaleEvidence calldata e)
        private
        view
        returns (bytes32 c)
    {
        uint256 r = e.earlierRound;
        if (r >= round) revert NotAnEarlierRound(projectId, round, r);
        if (e.author == REFERENCE_AUTHOR) {
            c = _references[projectId][r].commitment;
        } else {
            bytes32 recorded = _roundCommitments[projectId][r];
            bytes32 given = keccak256(abi.encodePacked(e.commitments));
            if (given != recorded) revert RoundCommitmentsMismatch(projectId, r, recorded, given);
            if (e.author < e.commitments.length) c = e.commitments[e.author];
        }
        if (c == bytes32(0)) revert NotRevealedEarlier(projectId, r, e.author);
    }

    /// @dev `sum((a_k - b_k)^2)` over the first `k` entries (inside the box: each term below 2^29, no overflow).
    function _squaredDistance(int256[] calldata a, int256[] calldata b, uint256 k) private pure returns (uint256 d) {
        for (uint256 i = 0; i < k; ++i) {
            int256 diff = a[i] - b[i];
            d += uint256(diff * diff);
        }
    }

    /// @notice Credits the aggregator of project `projectId` the bonds still held for `round` (those of the
    /// rejections nobody disputed: they stood, or the aggregator withdrew them at finalization), once the round's
    /// dispute window is over: the round was finalized, the project abandoned, or the window's deadline passed.
    /// Anyone may call it (the credit is the aggregator's whoever calls); once per round ({NoBondsHeld} after).
    /// The aggregator withdraws the credit with {withdrawBonds}.
    function reclaimBonds(uint256 projectId, uint256 round) external {
        Project storage p = _project(projectId);
        if (p.status == Status.Training && round == p.currentRound && block.timestamp <= p.disputeDeadline) {
            revert BondsStillAtStake(projectId, round, p.disputeDeadline);
        }
        uint256 amount = _bondsHeld[projectId][round];
        if (amount == 0) revert NoBondsHeld(projectId, round);

        _bondsHeld[projectId][round] = 0;
        _bondCredits[p.aggregator] += amount;
        emit BondReturned(projectId, round, p.aggregator, amount);
    }

    /// @notice Pays the caller every bond credited to it, over every project of the market (awarded for its
    /// successful disputes, returned for its undisputed rejections). Pull payment: the credit is zeroed before the
    /// transfer ({TransferFailed} if the caller does not accept it: the credit stays). `nonReentrant` with the
    /// market's own guard (the same transient slot, at the market's address: DELEGATECALL).
    function withdrawBonds() external nonReentrant {
        uint256 amount = _bondCredits[msg.sender];
        if (amount == 0) revert NoBondToWithdraw(msg.sender);

        _bondCredits[msg.sender] = 0;
        emit BondWithdrawn(msg.sender, amount);

        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @notice The bonds held for `round` of project `projectId`: posted with its announcement, less those awarded
    /// to disputing trainers; 0 once returned ({reclaimBonds}).
    function bondsHeld(uint256 projectId, uint256 round) external view returns (uint256) {
        return _bondsHeld[projectId][round];
    }

    /// @notice The bonds `account` may withdraw now ({withdrawBonds}).
    function bondCredit(address account) external view returns (uint256) {
        return _bondCredits[account];
    }
}
