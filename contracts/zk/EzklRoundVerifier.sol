// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IRoundVerifier} from "../interfaces/IRoundVerifier.sol";
import {IHalo2VerifierReusable} from "../interfaces/IHalo2VerifierReusable.sol";

/**
 * @title EzklRoundVerifier
 * @notice Checks a round's zero-knowledge proof of contribution: that the outlier flags and the
 * contribution scores the aggregator records were computed, by the project's scoring circuit,
 * from exactly the sketches the trainers committed to on chain.
 *
 * How it is meant to be used: deploy one per circuit size (N trainers, sketch width K) with the
 * shared ezkl reusable verifier and the circuit's VKA; the market admin approves it; projects
 * whose trainer count is at most N name it as their verifier. `TrainingMarket.finalizeRound`
 * calls {verifyRound}, which lays out the proof's public instances as the circuit defines them,
 *
 *     [ h_0 .. h_{N-1} | flag_0 .. flag_{N-1} | score_0 .. score_{N-1} ]
 *
 * where `h_i` is trainer i's on-chain commitment (the Poseidon hash of its committed vector),
 * or the hash of the all-zero vector for a trainer that did not submit and for padding rows,
 * flags are 0/1 and scores are fixed-point integers, and asks the ezkl verifier.
 *
 * Its {proofSystem} is "ezkl-halo2-kzg"; its {ruleVersion} is the version of the scoring rule the
 * circuit (and so the VKA) was built from, given at deployment.
 *
 * WARNING: the proof is only as sound as the setup of its keys; keys made from a locally
 * generated SRS (`gen_srs`) are for development only. Production needs a ceremony SRS.
 */
contract EzklRoundVerifier is IRoundVerifier {
    /// @notice The BN254 scalar field modulus: every public instance must be below it.
    uint256 public constant FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice The shared ezkl verifier.
    IHalo2VerifierReusable public immutable halo2Verifier;
    /// @notice Trainers the circuit takes (rounds with fewer are padded).
    uint256 public immutable circuitSize;
    /// @inheritdoc IRoundVerifier
    uint256 public immutable sketchWidth;
    /// @notice The commitment of the all-zero vector (absent trainers, padding).
    uint256 public immutable zeroRowHash;
    /// @notice Digest under which the VKA was registered with the verifier.
    bytes32 public immutable vkaDigest;
    /// @inheritdoc IRoundVerifier
    bytes8 public immutable ruleVersion;
    /// @dev The VKA words, stored as the code of a data contract (cheap to read back).
    address private immutable _vkaPointer;
    uint256 private immutable _vkaLength;

    /// @notice A constructor argument is unusable.
    error InvalidSetup(string reason);

    /// @param verifier the deployed ezkl reusable verifier
    /// @param vka_ the circuit's verifying-key artifact words (from `create_evm_vka`)
    /// @param n the circuit's number of trainer inputs
    /// @param k the circuit's sketch width (a trainer input is k + 2 values)
    /// @param zeroRowHash_ the Poseidon hash of the circuit's all-zero trainer input
    /// @param ruleVersion_ the scoring rule's version the circuit was built from (`marketplace.rule.RULE_VERSION`)
    constructor(
        IHalo2VerifierReusable verifier,
        bytes32[] memory vka_,
        uint256 n,
        uint256 k,
        uint256 zeroRowHash_,
        bytes8 ruleVersion_
    ) {
        if (address(verifier) == address(0)) revert InvalidSetup("verifier");
        if (vka_.length == 0) revert InvalidSetup("vka");
        if (n == 0 || n > 64) revert InvalidSetup("circuit size");
        if (k == 0) revert InvalidSetup("sketch width");
        if (zeroRowHash_ == 0 || zeroRowHash_ >= FIELD_MODULUS) revert InvalidSetup("zero row hash");
        if (ruleVersion_ == bytes8(0)) revert InvalidSetup("rule version");
        halo2Verifier = verifier;
        circuitSize = n;
        sketchWidth = k;
        zeroRowHash = zeroRowHash_;
        ruleVersion = ruleVersion_;
        vkaDigest = verifier.registerVka(vka_);
        _vkaLength = vka_.length;
        _vkaPointer = _storeAsCode(abi.encodePacked(vka_));
    }

    /// @inheritdoc IRoundVerifier
    function verifyRound(
        bytes32[] calldata commitments,
        uint256[] calldata scores,
        bool[] calldata flags,
        bytes calldata proof
    ) external view returns (bool) {
        uint256 n = commitments.length;
        uint256 size = circuitSize;
        if (n > size || scores.length != n || flags.length != n) return false;
        uint256[] memory instances = new uint256[](3 * size);
        for (uint256 i = 0; i < size; ++i) {
            uint256 h = i < n ? uint256(commitments[i]) : 0;
            if (i < n) {
                if (scores[i] >= FIELD_MODULUS) return false; // no aliasing modulo the field
                if (h == 0 && (flags[i] || scores[i] != 0)) return false;
                instances[size + i] = flags[i] ? 1 : 0;
                instances[2 * size + i] = scores[i];
            }
            if (h == 0) h = zeroRowHash;
            if (h >= FIELD_MODULUS) return false;
            instances[i] = h;
        }
        try halo2Verifier.verifyProof(proof, instances, _loadVka()) returns (bool ok, bytes32 digest) {
            return ok && digest == vkaDigest; // and under this circuit's key
        } catch {
            return false; // malformed proof
        }
    }

    /// @inheritdoc IRoundVerifier
    function acceptsCommitment(bytes32 commitment) external pure returns (bool) {
        return commitment != bytes32(0) && uint256(commitment) < FIELD_MODULUS;
    }

    /// @inheritdoc IRoundVerifier
    function maxTrainers() external view returns (uint256) {
        return circuitSize;
    }

    /// @inheritdoc IRoundVerifier
    function proofSystem() external pure returns (bytes32) {
        return "ezkl-halo2-kzg";
    }

    /// @notice The registered VKA words.
    function vka() external view returns (bytes32[] memory) {
        return _loadVka();
    }

    function _loadVka() private view returns (bytes32[] memory words) {
        uint256 length = _vkaLength;
        address pointer = _vkaPointer;
        words = new bytes32[](length);
        assembly ("memory-safe") {
            // The data contract's code is one STOP byte followed by the words.
            extcodecopy(pointer, add(words, 0x20), 1, mul(length, 0x20))
        }
    }

    /// @dev Deploys `data` as the runtime code of a new contract (prefixed with STOP so it cannot
    /// be called) and returns its address (the SSTORE2 pattern).
    function _storeAsCode(bytes memory data) private returns (address pointer) {
        bytes memory runtime = abi.encodePacked(hex"00", data);
        // Init code: copy the runtime that follows this 12-byte prefix to memory and return it.
        bytes memory init = abi.encodePacked(hex"61", uint16(runtime.length), hex"80600c6000396000f3", runtime);
        assembly ("memory-safe") {
            pointer := create(0, add(init, 0x20), mload(init))
        }
        if (pointer == address(0)) revert InvalidSetup("vka storage");
    }
}
