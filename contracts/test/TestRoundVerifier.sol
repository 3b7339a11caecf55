// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IRoundVerifier} from "../interfaces/IRoundVerifier.sol";

/**
 * @title TestRoundVerifier
 * @notice FOR LOCAL TESTS ONLY. Accepts a "proof" that is the keccak256 of the round tag and the
 * public values, `keccak256(abi.encode(roundTag, commitments, scores, flags, refCommitment))`, so tests can
 * exercise tampered results, dropped or forged references and proofs of other rounds without a zk
 * prover: like a real proof, it is valid for one round of one project, with one reference, only. It proves nothing about how the scores were computed. Its
 * {proofSystem} is "test-hash" (made by `marketplace.round.prove.HashProver`).
 * @dev Refuses to deploy on any chain but the local development chain id 31337, so it cannot be
 * approved on a public network by mistake.
 */
contract TestRoundVerifier is IRoundVerifier {
    /// @notice Deployment was attempted on a chain other than 31337.
    error TestVerifierOnLocalChainOnly(uint256 chainId);
    /// @notice A constructor argument is unusable.
    error InvalidSetup(string reason);

    /// @inheritdoc IRoundVerifier
    uint256 public immutable sketchWidth;
    /// @inheritdoc IRoundVerifier
    bytes8 public immutable ruleVersion;

    /// @param sketchWidth_ K, the sketch width trainers of its projects commit to
    /// @param ruleVersion_ the rule version its projects are scored by (`marketplace.rule.RULE_VERSION`)
    constructor(uint256 sketchWidth_, bytes8 ruleVersion_) {
        if (block.chainid != 31337) revert TestVerifierOnLocalChainOnly(block.chainid);
        if (ruleVersion_ == bytes8(0)) revert InvalidSetup("rule version");
        sketchWidth = sketchWidth_;
        ruleVersion = ruleVersion_;
    }

    /// @inheritdoc IRoundVerifier
    function name() external pure returns (string memory) {
        return unicode"Test verifier — proves nothing";
    }

    /// @inheritdoc IRoundVerifier
    function description() external pure returns (string memory) {
        return "For local tests only (chain 31337): it accepts the keccak256 hash of a round's values as its proof, "
            "which anyone can compute for any scores and flags. It proves nothing about how they were computed.";
    }

    /// @inheritdoc IRoundVerifier
    function provesNothing() external pure returns (bool) {
        return true;
    }

    /// @inheritdoc IRoundVerifier
    function proofSystem() external pure returns (bytes32) {
        return "test-hash";
    }

    /// @inheritdoc IRoundVerifier
    function maxTrainers() external pure returns (uint256) {
        return type(uint256).max;
    }

    /// @inheritdoc IRoundVerifier
    function verifyRound(
        bytes32 roundTag,
        bytes32[] calldata commitments,
        uint256[] calldata scores,
        bool[] calldata flags,
        bytes32 refCommitment,
        bytes calldata proof
    ) external pure returns (bool) {
        if (proof.length != 32) return false;
        return bytes32(proof) == keccak256(abi.encode(roundTag, commitments, scores, flags, refCommitment));
    }

    /// @inheritdoc IRoundVerifier
    /// @dev Accepts `proof == keccak256(abi.encode(commitment, row))`: anyone can make it for any row, so
    /// (like its round proofs) it shows nothing about the row and its commitment.
    function verifyRow(bytes32 commitment, int256[] calldata row, bytes calldata proof)
        external
        pure
        returns (bool)
    {
        if (proof.length != 32) return false;
        return bytes32(proof) == keccak256(abi.encode(commitment, row));
    }

    /// @inheritdoc IRoundVerifier
    function acceptsCommitment(bytes32 commitment) external pure returns (bool) {
        return commitment != bytes32(0);
    }
}
