// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title MockRoundVerifier
 * @notice FOR LOCAL TESTS ONLY: stands in for a circuit-specific ezkl verifier (`IHalo2Verifier`) to test
 * which answers EzklRoundVerifier counts. Every call but {setAnswer} returns the raw bytes set by {setAnswer}
 * (or reverts when {setReverts} is on), whatever the proof. Refuses to deploy off chain 31337.
 */
contract MockRoundVerifier {
    bytes public answer;
    bool public reverts;

    error TestVerifierOnLocalChainOnly(uint256 chainId);

    constructor() {
        if (block.chainid != 31337) revert TestVerifierOnLocalChainOnly(block.chainid);
    }

    function setAnswer(bytes calldata answer_, bool reverts_) external {
        answer = answer_;
        reverts = reverts_;
    }

    fallback(bytes calldata) external returns (bytes memory) {
        require(!reverts, "refused");
        return answer;
    }
}
