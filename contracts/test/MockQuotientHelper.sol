// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title MockQuotientHelper
 * @notice FOR LOCAL TESTS ONLY: a "helper" for a split ezkl verifier (`marketplace.adapters.ezkl.dedicated`)
 * that forwards each call to the real helper and answers, by {mode}: 0 its answer unchanged; 1 its answer
 * plus one (a lie); 2 its answer followed by a zero word (the right value, not one word); 3 its answer's
 * first 31 bytes. Refuses to deploy off chain 31337.
 */
contract MockQuotientHelper {
    address public immutable real;
    uint256 public immutable mode;

    error TestHelperOnLocalChainOnly(uint256 chainId);

    constructor(address real_, uint256 mode_) {
        if (block.chainid != 31337) revert TestHelperOnLocalChainOnly(block.chainid);
        real = real_;
        mode = mode_;
    }

    fallback(bytes calldata input) external returns (bytes memory) {
        (bool ok, bytes memory answer) = real.staticcall(input);
        require(ok && answer.length == 32, "real helper failed");
        uint256 value = abi.decode(answer, (uint256));
        if (mode == 1) return abi.encode(value + 1);
        if (mode == 2) return abi.encode(value, uint256(0));
        if (mode == 3) return abi.encodePacked(bytes31(bytes32(value)));
        return answer;
    }
}
