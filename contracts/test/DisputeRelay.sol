// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title DisputeRelay
 * @notice FOR TESTS ONLY: code that a trainer's account delegates to (EIP-7702; a trainer contract could do the
 * same): it calls the market several times in one transaction, each call's calldata followed by zero bytes built in
 * memory (never sent as the transaction's calldata), so a dispute's reimbursement could count calldata and intrinsic
 * gas the transaction never paid; and its receive hook re-enters the paying market once (`withdrawBonds`), to show
 * that a bond is paid once.
 */
contract DisputeRelay {
    /// @notice Payments received that tried to re-enter the market, and how many of those re-entries succeeded.
    uint256 public reentryAttempts;
    uint256 public reentrySuccesses;

    /// @notice Calls `target` with each of `calls`, in order, each followed by `padding` zero bytes; reverts with the
    /// first failure's own revert data.
    function relay(address target, bytes[] calldata calls, uint256 padding) external {
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool ok, bytes memory reason) = target.call(bytes.concat(calls[i], new bytes(padding)));
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(reason, 32), mload(reason)) // the failed call's own revert data
                }
            }
        }
    }

    /// @notice Takes a payment and, the first time, calls `withdrawBonds()` of the payer again from inside it.
    receive() external payable {
        if (reentryAttempts != 0) return;
        ++reentryAttempts;
        (bool ok,) = msg.sender.call(abi.encodeWithSignature("withdrawBonds()"));
        if (ok) ++reentrySuccesses;
    }
}
