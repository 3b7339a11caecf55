// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IHalo2Verifier
 * @notice ezkl's circuit-specific Halo2 verifier (`create_evm_verifier(..., reusable=False)`): the
 * verifying key of one circuit is compiled into its code. The marketplace deploys it split in two
 * contracts (`marketplace.adapters.ezkl.dedicated`): this entry point and the quotient-evaluation
 * helper it calls.
 */
interface IHalo2Verifier {
    /// @notice Verifies `proof` for `instances` under the compiled-in key: returns one word, 1, or reverts.
    /// @dev Not declared view by ezkl, but it writes nothing, so it can be STATICCALLed.
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external view returns (bool);
}
