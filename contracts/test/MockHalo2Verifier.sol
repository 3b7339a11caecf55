// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IHalo2VerifierReusable} from "../interfaces/IHalo2VerifierReusable.sol";

/**
 * @title MockHalo2Verifier
 * @notice FOR LOCAL TESTS ONLY: stands in for ezkl's reusable verifier to test how
 * EzklRoundVerifier lays out instances. A "proof" is accepted when it equals
 * keccak256(abi.encode(instances)) and the VKA was registered. Refuses to deploy off chain 31337.
 * {setReportedDigest} makes it report another VKA digest than the one it checked against.
 */
contract MockHalo2Verifier is IHalo2VerifierReusable {
    mapping(bytes32 => bool) public registered;
    bytes32 public reportedDigest;

    error TestVerifierOnLocalChainOnly(uint256 chainId);

    constructor() {
        if (block.chainid != 31337) revert TestVerifierOnLocalChainOnly(block.chainid);
    }

    function registerVka(bytes32[] calldata vka) external returns (bytes32 digest) {
        digest = keccak256(abi.encodePacked(vka));
        registered[digest] = true;
    }

    function setReportedDigest(bytes32 digest) external {
        reportedDigest = digest;
    }

    function verifyProof(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        view
        returns (bool, bytes32)
    {
        bytes32 digest = keccak256(abi.encodePacked(vka));
        require(registered[digest], "vka not registered");
        bool ok = proof.length == 32 && bytes32(proof) == keccak256(abi.encode(instances));
        return (ok, reportedDigest == bytes32(0) ? digest : reportedDigest);
    }
}
