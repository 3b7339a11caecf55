// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IRoundVerifier} from "../interfaces/IRoundVerifier.sol";
import {IHalo2VerifierReusable} from "../interfaces/IHalo2VerifierReusable.sol";
import {IHalo2Verifier} from "../interfaces/IHalo2Verifier.sol";

/**
 * @title EzklRoundVerifier
 * @notice Checks a round's zero-knowledge proof of contribution: that the outlier flags and the
 * contribution scores the aggregator records were computed, by the project's scoring circuit,
 * from exactly the sketches the trainers committed to on chain.
 *
 * How it is meant to be used: deploy one per circuit size (N trainers, sketch width K) with the
 * shared ezkl reusable verifier, the circuit's VKA and the circuit's own verifier ({roundVerifier});
 * the market admin approves it; projects
 * whose trainer count is at most N name it as their verifier. `TrainingMarket.finalizeRound`
 * calls {verifyRound}, which lays out the proof's public instances as the circuit defines them
 * (the order ezkl's calldata has them in),
 *
 *     [ h_0 .. h_{N-1}, h_ref, h_tag | flag_0 .. flag_{N-1} | score_0 .. score_{N-1} | t_0 .. t_7 ]
 *
 * where `h_i` is trainer i's on-chain commitment (the Poseidon hash of its committed vector),
 * or the hash of the all-zero vector for a trainer that did not submit and for padding rows,
 * `h_ref` the commitment of the owner's reference row (the circuit's rule with a reference,
 * `marketplace.rule.gram.gram_rule_ref_int`; `TrainingMarket.revealReference`), the `refCommitment` the
 * market hands over, or the all-zero row's hash when it hands 0 (no reference revealed), with which
 * the rule is the rule without a reference, bit for bit (a reference not below the field modulus is refused);
 * flags are 0/1, scores are fixed-point integers, `t_j` is the j-th 16-bit chunk of the round
 * tag's first 128 bits (big-endian) and `h_tag` the Poseidon hash of the circuit's tag input,
 * and asks the ezkl verifier.
 *
 * Which ezkl verifier checks rounds: {roundVerifier}, ezkl's circuit-specific verifier of the round
 * circuit (its verifying key compiled into its code, `create_evm_verifier(reusable=False)`), split in
 * two contracts under the 24,576-byte limit (`marketplace.adapters.ezkl.dedicated`: the entry point
 * and the quotient-evaluation helper, an immutable address inside it); about 300k gas per round less
 * than the reusable verifier, which interprets the VKA at run time. Its answer counts only if the call
 * succeeds and returns exactly one word equal to 1. The round VKA is still registered with the
 * reusable verifier and kept ({vka}): it identifies the circuit (provers find their keys by it), and
 * `marketplace zk deploy` / `zk info` check that the deployed codes are those generated from the keys
 * of that VKA. The market admin's approval of this adapter covers both codes. With
 * `roundVerifier == address(0)` rounds go through the reusable verifier and the VKA (for a circuit
 * whose specific verifier does not split).
 *
 * Binding the round: the circuit takes the tag's chunks as an input and outputs them unchanged,
 * so the tag input is constrained twice: its Poseidon hash is the public `h_tag` and its values
 * are the public `t_j`, both tied to the same witness cells. The chunks are computed here from
 * the `roundTag` the market passes; `h_tag` is supplied by the prover inside the proof bytes,
 * `proof = abi.encode(bytes halo2Proof, uint256 tagHash)`, because Poseidon costs too much on
 * chain. That is sound: a proof verifies only if `h_tag` is the hash of the very values that the
 * public `t_j` fix, so for the chunks computed here exactly one `tagHash` can verify, and a proof
 * made for another tag has other `t_j` and fails whatever `tagHash` accompanies it.
 *
 * Disputes: it also checks proofs of the project's row circuit (`marketplace.rule.row_circuit`, the
 * same K), with which a rejected trainer shows that the row it publishes is the row behind its
 * commitment ({verifyRow}). Row proofs go through the reusable Halo2 verifier (its code does not
 * depend on the circuit; disputes are rare) under the row circuit's VKA; both circuits' VKAs are
 * registered, and a row proof counts only under its own.
 *
 * Its {proofSystem} is "ezkl-halo2-kzg"; its {ruleVersion} is the version of the scoring rule the
 * circuit (and so the VKA) was built from, given at deployment; so are its {name} and {description}
 * (`marketplace zk deploy` writes them from the circuit's size, sketch width, rule version and SRS).
 *
 * WARNING: the proof is only as sound as the setup of its keys; keys made from a locally
 * generated SRS (`gen_srs`) are for development only. Production needs a ceremony SRS.
 *
 * WARNING: only the tag's first 128 bits are bound (field inputs pass through float32 at fixed
 * point 2^13 and are range-checked below 2^27, so the tag is split into 16-bit chunks). Reusing a
 * proof in another round therefore needs a tag that agrees in those 128 bits: a second preimage
 * of truncated keccak256, about 2^128 work.
 */
contract EzklRoundVerifier is IRoundVerifier {
    /// @notice The BN254 scalar field modulus: every public instance must be below it.
    uint256 public constant FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @notice Chunks of the round tag the proof binds (`marketplace.protocol.constants.TAG_CHUNKS`).
    uint256 public constant TAG_CHUNKS = 8;
    /// @notice Bits per chunk (`TAG_CHUNK_BITS`): the proof binds the tag's first 8 x 16 = 128 bits.
    uint256 public constant TAG_CHUNK_BITS = 16;
    /// @notice Fixed point of a published row: 2^13 is 1 (`marketplace.protocol.constants.SCALE`).
    int256 public constant ROW_ONE = 8192;
    /// @notice Largest |l| of a published row: 32 at scale 2^13 (`LOG_CLIP`).
    int256 public constant ROW_MAX_LOG = 32 * 8192;

    /// @notice The shared ezkl verifier (the row circuit's proofs; rounds' when {roundVerifier} is 0).
    IHalo2VerifierReusable public immutable halo2Verifier;
    /// @notice The round circuit's circuit-specific verifier (0: rounds go through {halo2Verifier}).
    IHalo2Verifier public immutable roundVerifier;
    /// @notice Trainers the circuit takes (rounds with fewer are padded).
    uint256 public immutable circuitSize;
    /// @inheritdoc IRoundVerifier
    uint256 public immutable sketchWidth;
    /// @notice The commitment of the all-zero vector (absent trainers, padding).
    uint256 public immutable zeroRowHash;
    /// @notice Digest under which the VKA was registered with the verifier.
    bytes32 public immutable vkaDigest;
    /// @notice Digest under which the row circuit's VKA was registered with the verifier.
    bytes32 public immutable rowVkaDigest;
    /// @inheritdoc IRoundVerifier
    bytes8 public immutable ruleVersion;
    /// @dev The VKA words, stored as the code of a data contract (cheap to read back).
    address private immutable _vkaPointer;
    uint256 private immutable _vkaLength;
    /// @dev The row circuit's VKA words, stored the same way.
    address private immutable _rowVkaPointer;
    uint256 private immutable _rowVkaLength;
    /// @dev {name} and {description}, set once by the constructor.
    string private _name;
    string private _description;

    /// @notice Longest {name} and {description}, in bytes.
    uint256 public constant MAX_NAME_BYTES = 80;
    uint256 public constant MAX_DESCRIPTION_BYTES = 1024;

    /// @notice A constructor argument is unusable.
    error InvalidSetup(string reason);

    /// @param verifier the deployed ezkl reusable verifier
    /// @param vka_ the circuit's verifying-key artifact words (from `create_evm_vka`)
    /// @param rowVka_ the VKA words of the row circuit of width k (`marketplace.adapters.ezkl.keys.setup_row`)
    /// @param n the circuit's number of trainer inputs
    /// @param k the circuit's sketch width (a trainer input is k + 2 values)
    /// @param zeroRowHash_ the Poseidon hash of the circuit's all-zero trainer input
    /// @param ruleVersion_ the scoring rule's version the circuit was built from (`marketplace.rule.RULE_VERSION`)
    /// @param name_ {name}: 1 to MAX_NAME_BYTES bytes
    /// @param description_ {description}: 1 to MAX_DESCRIPTION_BYTES bytes
    /// @param roundVerifier_ the round circuit's circuit-specific verifier, made from the keys of `vka_`
    /// (0: rounds are verified by `verifier` under `vka_`)
    constructor(
        IHalo2VerifierReusable verifier,
        bytes32[] memory vka_,
        bytes32[] memory rowVka_,
        uint256 n,
        uint256 k,
        uint256 zeroRowHash_,
        bytes8 ruleVersion_,
        string memory name_,
        string memory description_,
        IHalo2Verifier roundVerifier_
    ) {
        if (address(verifier) == address(0)) revert InvalidSetup("verifier");
        if (vka_.length == 0) revert InvalidSetup("vka");
        if (rowVka_.length == 0) revert InvalidSetup("row vka");
        if (n == 0 || n > 64) revert InvalidSetup("circuit size");
        if (k == 0) revert InvalidSetup("sketch width");
        if (zeroRowHash_ == 0 || zeroRowHash_ >= FIELD_MODULUS) revert InvalidSetup("zero row hash");
        if (ruleVersion_ == bytes8(0)) revert InvalidSetup("rule version");
        if (bytes(name_).length == 0 || bytes(name_).length > MAX_NAME_BYTES) revert InvalidSetup("name");
        uint256 described = bytes(description_).length;
        if (described == 0 || described > MAX_DESCRIPTION_BYTES) revert InvalidSetup("description");
        _name = name_;
        _description = description_;
        halo2Verifier = verifier;
        roundVerifier = roundVerifier_;
        circuitSize = n;
        sketchWidth = k;
        zeroRowHash = zeroRowHash_;
        ruleVersion = ruleVersion_;
        vkaDigest = verifier.registerVka(vka_);
        rowVkaDigest = verifier.registerVka(rowVka_);
        if (rowVkaDigest == vkaDigest) revert InvalidSetup("row vka");
        _vkaLength = vka_.length;
        _vkaPointer = _storeAsCode(abi.encodePacked(vka_));
        _rowVkaLength = rowVka_.length;
        _rowVkaPointer = _storeAsCode(abi.encodePacked(rowVka_));
    }

    /// @inheritdoc IRoundVerifier
    /// @dev `proof` is `abi.encode(bytes halo2Proof, uint256 tagHash)`; anything else is refused
    /// (returns false), as is a `tagHash` outside the field.
    function verifyRound(
        bytes32 roundTag,
        bytes32[] calldata commitments,
        uint256[] calldata scores,
        bool[] calldata flags,
        bytes32 refCommitment,
        bytes calldata proof
    ) external view returns (bool) {
        (bool valid, uint256[] memory instances) = _instances(commitments, scores, flags, refCommitment);
        if (!valid) return false;
        _putTagChunks(instances, roundTag);
        return _verifyProof(proof, instances);
    }

    /// @inheritdoc IRoundVerifier
    /// @dev `proof` is the row circuit's Halo2 proof bytes as ezkl's calldata carries them
    /// (`marketplace.adapters.ezkl.prover.prove_row`). The instances are built here, all of them:
    /// `[commitment | row_0 .. row_{K+1}]`, a negative value x as `FIELD_MODULUS - |x|`. Returns false
    /// for a row of another length than `sketchWidth + 2`, a commitment that is 0 or not below the
    /// field modulus, a row outside the box (`|v| <= 2^13`, `|l| <= 32 * 2^13`, `a` in {0, 2^13}: the
    /// box keeps the integers far below p/2, so no two rows give the same instances), and a proof
    /// that does not verify under the row circuit's VKA. Row proofs are not unique (every proving run
    /// gives other bytes, and ezkl's verifier ignores bytes after the proof): nothing may key on them.
    function verifyRow(bytes32 commitment, int256[] calldata row, bytes calldata proof) external view returns (bool) {
        uint256 width = sketchWidth + 2;
        uint256 c = uint256(commitment);
        if (row.length != width || c == 0 || c >= FIELD_MODULUS) return false;
        uint256[] memory instances = new uint256[](width + 1);
        instances[0] = c;
        for (uint256 i = 0; i < width; ++i) {
            int256 x = row[i];
            int256 bound = i < width - 2 ? ROW_ONE : ROW_MAX_LOG;
            if (i == width - 1 ? (x != 0 && x != ROW_ONE) : (x > bound || x < -bound)) return false;
            instances[i + 1] = x >= 0 ? uint256(x) : FIELD_MODULUS - uint256(-x);
        }
        return _verifyHalo2(proof, instances, _loadVka(_rowVkaPointer, _rowVkaLength), rowVkaDigest);
    }

    /// @inheritdoc IRoundVerifier
    /// @dev Refuses 0, values outside the field, and the hash of the all-zero row: that row is what an
    /// empty slot is, so a "submission" of it contributes nothing and would only count as taking part.
    function acceptsCommitment(bytes32 commitment) external view returns (bool) {
        uint256 c = uint256(commitment);
        return c != 0 && c < FIELD_MODULUS && c != zeroRowHash;
    }

    /// @inheritdoc IRoundVerifier
    function maxTrainers() external view returns (uint256) {
        return circuitSize;
    }

    /// @inheritdoc IRoundVerifier
    function proofSystem() external pure returns (bytes32) {
        return "ezkl-halo2-kzg";
    }

    /// @inheritdoc IRoundVerifier
    function name() external view returns (string memory) {
        return _name;
    }

    /// @inheritdoc IRoundVerifier
    function description() external view returns (string memory) {
        return _description;
    }

    /// @inheritdoc IRoundVerifier
    function provesNothing() external pure returns (bool) {
        return false;
    }

    /// @notice The registered VKA words.
    function vka() external view returns (bytes32[] memory) {
        return _loadVka(_vkaPointer, _vkaLength);
    }

    /// @notice The registered VKA words of the row circuit.
    function rowVka() external view returns (bytes32[] memory) {
        return _loadVka(_rowVkaPointer, _rowVkaLength);
    }

    /// @dev The instances from the trainers' values (hashes, flags, scores) and the reference's hash (0: the
    /// all-zero row's); the tag's are filled in by {_putTagChunks} and {_verifyProof});
    /// `ok` is false if the values cannot be a round of this circuit.
    function _instances(
        bytes32[] calldata commitments,
        uint256[] calldata scores,
        bool[] calldata flags,
        bytes32 refCommitment
    ) private view returns (bool ok, uint256[] memory instances) {
        uint256 n = commitments.length;
        uint256 size = circuitSize;
        uint256 ref = uint256(refCommitment);
        if (n > size || scores.length != n || flags.length != n || ref >= FIELD_MODULUS) return (false, instances);
        instances = new uint256[](3 * size + 2 + TAG_CHUNKS);
        instances[size] = ref == 0 ? zeroRowHash : ref; // h_ref: the owner's reference row, or none
        for (uint256 i = 0; i < size; ++i) {
            uint256 h = i < n ? uint256(commitments[i]) : 0;
            if (i < n) {
                if (scores[i] >= FIELD_MODULUS) return (false, instances); // no aliasing modulo the field
                if (h == 0 && (flags[i] || scores[i] != 0)) return (false, instances);
                instances[size + 2 + i] = flags[i] ? 1 : 0;
                instances[2 * size + 2 + i] = scores[i];
            }
            if (h == 0) h = zeroRowHash;
            if (h >= FIELD_MODULUS) return (false, instances);
            instances[i] = h;
        }
        return (true, instances);
    }

    /// @dev Writes the tag's chunks, the last `TAG_CHUNKS` instances.
    function _putTagChunks(uint256[] memory instances, bytes32 roundTag) private pure {
        uint256 at = instances.length - TAG_CHUNKS;
        uint256 tag = uint256(roundTag);
        for (uint256 j = 0; j < TAG_CHUNKS; ++j) {
            instances[at + j] = (tag >> (256 - TAG_CHUNK_BITS * (j + 1))) & ((1 << TAG_CHUNK_BITS) - 1);
        }
    }

    /// @dev Completes the instances with the prover's `h_tag` and asks {roundVerifier} (if set) or the
    /// reusable verifier under the round VKA.
    function _verifyProof(bytes calldata proof, uint256[] memory instances) private view returns (bool) {
        (bool wellFormed, bytes calldata halo2Proof, uint256 tagHash) = _decodeProof(proof);
        if (!wellFormed || tagHash >= FIELD_MODULUS) return false;
        instances[circuitSize + 1] = tagHash;
        if (address(roundVerifier) != address(0)) return _verifySpecific(halo2Proof, instances);
        return _verifyHalo2(halo2Proof, instances, _loadVka(_vkaPointer, _vkaLength), vkaDigest);
    }

    /// @dev Asks the circuit-specific verifier: true only if the call succeeds and answers exactly one
    /// word, 1 (a revert, a short or long answer, or any other word is a refusal).
    function _verifySpecific(bytes calldata halo2Proof, uint256[] memory instances) private view returns (bool) {
        (bool ok, bytes memory answer) =
            address(roundVerifier).staticcall(abi.encodeCall(IHalo2Verifier.verifyProof, (halo2Proof, instances)));
        return ok && answer.length == 32 && abi.decode(answer, (uint256)) == 1;
    }

    /// @dev Asks the ezkl verifier; true only if the proof verifies and under the key of `digest`.
    function _verifyHalo2(bytes calldata halo2Proof, uint256[] memory instances, bytes32[] memory words, bytes32 digest)
        private
        view
        returns (bool)
    {
        try halo2Verifier.verifyProof(halo2Proof, instances, words) returns (bool ok, bytes32 verifiedUnder) {
            return ok && verifiedUnder == digest; // and under this circuit's key
        } catch {
            return false; // malformed proof
        }
    }

    /// @dev Splits `abi.encode(bytes halo2Proof, uint256 tagHash)` (head: offset 0x40 and the hash;
    /// tail: length and the zero-padded bytes); `ok` is false for any other layout.
    function _decodeProof(bytes calldata proof)
        private
        pure
        returns (bool ok, bytes calldata halo2Proof, uint256 tagHash)
    {
        halo2Proof = proof[0:0];
        if (proof.length < 96 || uint256(bytes32(proof[0:32])) != 64) return (false, halo2Proof, 0);
        uint256 length = uint256(bytes32(proof[64:96]));
        uint256 padded = proof.length - 96; // the proof's bytes, zero-padded to whole words
        if (padded % 32 != 0 || length > padded || padded - length >= 32) return (false, halo2Proof, 0);
        return (true, proof[96:96 + length], uint256(bytes32(proof[32:64])));
    }

    /// @dev Reads back `length` VKA words stored by {_storeAsCode} at `pointer`.
    function _loadVka(address pointer, uint256 length) private view returns (bytes32[] memory words) {
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
