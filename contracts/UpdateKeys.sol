// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MarketLens} from "./MarketLens.sol";
import {MarketState} from "./MarketState.sol";
import {TrainingMarket} from "./TrainingMarket.sol";

/**
 * @title UpdateKeys
 * @notice The key each project's trainers encrypt their updates to. Updates pinned in the clear on IPFS let
 * anyone run gradient inversion on a trainer's data; in a project whose aggregator published a key here,
 * trainers pin their updates encrypted to it, so that only the aggregator can read them.
 *
 * How it is meant to be used: the project's aggregator (as {MarketLens-getProject} names it) calls
 * {publishKey} once with a 32-byte X25519 public key, best while the project is open, before trainers
 * join, so that they know what they join. A project is "encrypted" exactly when {keyOf} is not zero.
 * Trainers read {keyOf} when they commit: a key published late (while the project is training) applies
 * from each trainer's next commit on; updates pinned before are public and stay public. A key can be
 * published only while the project is open or training, and never changed or withdrawn, so trainers that
 * joined an encrypted project stay in one.
 *
 * Nothing else changes: trainers commit to the plaintext update's row as before, the seal and reveal
 * carry the CID of the encrypted bytes, and payment depends only on the committed rows.
 *
 * WARNING: this contract only publishes a key. It cannot check that the aggregator holds its secret
 * half, that the key is a usable X25519 point (clients refuse points of small order), or that trainers
 * really encrypt. An encrypted project is also less auditable: the public can verify the round's proof
 * (flags and scores are the rule's on the committed rows), but not that the updates match their
 * commitments, that the aggregator's rejections were due, or that the new model is the previous one plus
 * the mean of the paid updates: that needs the aggregator's secret key.
 */
contract UpdateKeys {
    /// @notice The market whose projects' keys this contract holds.
    TrainingMarket public immutable market;
    /// @notice The market's lens, which names each project's aggregator and status.
    MarketLens public immutable lens;

    mapping(uint256 projectId => bytes32 publicKey) private _keys;

    /// @notice `aggregator` published `publicKey` for `projectId`: its trainers encrypt their updates to it.
    event UpdateKeyPublished(uint256 indexed projectId, address indexed aggregator, bytes32 publicKey);

    /// @notice Only the project's aggregator publishes its key.
    error NotTheAggregator(uint256 projectId, address caller, address aggregator);
    /// @notice A project's key is published once and never changed.
    error KeyAlreadyPublished(uint256 projectId, bytes32 publicKey);
    /// @notice The zero key would mean "not encrypted".
    error ZeroKey(uint256 projectId);
    /// @notice Keys are published only while the project is open or training.
    error ProjectNotActive(uint256 projectId, MarketState.Status status);

    constructor(MarketLens lens_) {
        lens = lens_;
        market = lens_.market();
    }

    /// @notice Publishes `publicKey` (X25519, 32 bytes) as the key `projectId`'s updates are encrypted to.
    /// Only the project's aggregator, once, while the project is open or training.
    function publishKey(uint256 projectId, bytes32 publicKey) external {
        if (publicKey == bytes32(0)) revert ZeroKey(projectId);
        bytes32 published = _keys[projectId];
        if (published != bytes32(0)) revert KeyAlreadyPublished(projectId, published);
        TrainingMarket.ProjectView memory p = lens.getProject(projectId);
        if (msg.sender != p.aggregator) revert NotTheAggregator(projectId, msg.sender, p.aggregator);
        if (p.status != MarketState.Status.Open && p.status != MarketState.Status.Training) {
            revert ProjectNotActive(projectId, p.status);
        }
        _keys[projectId] = publicKey;
        emit UpdateKeyPublished(projectId, msg.sender, publicKey);
    }

    /// @notice The key `projectId`'s updates are encrypted to; zero if its updates are public.
    function keyOf(uint256 projectId) external view returns (bytes32) {
        return _keys[projectId];
    }
}
