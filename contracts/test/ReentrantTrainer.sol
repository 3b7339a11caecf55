// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TrainingMarket} from "../TrainingMarket.sol";

/**
 * @title ReentrantTrainer
 * @notice FOR TESTS ONLY: a trainer contract that tries to re-enter {TrainingMarket.withdraw}
 * from its receive hook to be paid twice (or, when told to, rejects payments).
 */
contract ReentrantTrainer {
    TrainingMarket private immutable _market;
    uint256 public projectId;
    uint256 public reentryAttempts;
    uint256 public reentrySuccesses;
    bool public rejectPayments;

    constructor(TrainingMarket market) {
        _market = market;
    }

    function join(uint256 id) external payable {
        projectId = id;
        _market.join{value: msg.value}(id);
    }

    function commit(uint256 round, bytes32 seal) external {
        _market.commitUpdate(projectId, round, seal, "");
    }

    function reveal(uint256 round, string calldata cid, bytes32 commitment, bytes32 salt) external {
        _market.revealUpdate(projectId, round, cid, commitment, salt);
    }

    /// @notice Makes the receive hook revert, to test failed transfers.
    function setRejectPayments(bool reject) external {
        rejectPayments = reject;
    }

    function attack() external {
        _market.withdraw(projectId);
    }

    receive() external payable {
        require(!rejectPayments, "payments rejected");
        if (reentryAttempts < 3) {
            ++reentryAttempts;
            try _market.withdraw(projectId) {
                ++reentrySuccesses;
            } catch {}
        }
    }
}
