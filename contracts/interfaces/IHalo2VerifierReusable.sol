// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IHalo2VerifierReusable
 * @notice The part of ezkl's reusable Halo2 verifier (`create_evm_verifier(..., reusable=True)`)
 * that the marketplace calls. One deployed verifier serves every circuit; each circuit's
 * verifying-key artifact (VKA) is registered once and passed along with every proof.
 */
interface IHalo2VerifierReusable {
    /// @notice Registers a circuit's VKA (its digest becomes acceptable to {verifyProof}).
    function registerVka(bytes32[] calldata vka) external returns (bytes32 digest);

    /// @notice Verifies `proof` for `instances` under the registered `vka`.
    /// @dev Not declared view by ezkl, but it writes nothing, so it can be STATICCALLed. ezkl's
    /// verifier also returns a third value (rescaled instances) that is not a well-formed array
    /// for hashed inputs: it is deliberately left out here so that callers never decode it
    /// (decoding it reverts with an out-of-memory panic).
    function verifyProof(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        view
        returns (bool success, bytes32 vkaDigest);
}
