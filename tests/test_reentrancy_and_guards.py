"""Attacks on withdraw, and the test verifier's refusal to exist outside local chains."""

from __future__ import annotations

import pytest

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts
from marketplace.adapters.chain.deploy import deploy_marketplace
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import encode_rule_version
from marketplace.protocol.seal import seal
from marketplace.rule import RULE_VERSION
from tests.market_fixtures import ETH, Actors, reverts


def _attacker_project(actors: Actors) -> tuple[int, object]:
    """A one-round project whose only trainer is a contract that re-enters withdraw."""
    admin = actors.admin.chain
    attacker = admin.deploy(actors.artifacts["ReentrantTrainer"], actors.admin.market.address)
    pid = actors.create(rounds=1, min_trainers=1, max_trainers=1)
    admin.transact(attacker.functions.join(pid), value=ETH // 10)
    cid, commitment, salt = "bafkreiattacker", b"\x05" * 32, b"\x06" * 32
    sealed = seal(commitment, cid, attacker.address, actors.admin.round_address(pid, 0), salt)
    admin.transact(attacker.functions.commit(0, sealed))  # the only trainer: the reveal phase opens at once
    admin.transact(attacker.functions.reveal(0, cid, commitment, salt))
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1]))
    return pid, attacker


def test_reentrant_withdraw_is_paid_exactly_once(actors: Actors) -> None:
    admin = actors.admin.chain
    pid, attacker = _attacker_project(actors)
    owed = actors.owner.withdrawable(pid, attacker.address)
    assert owed == 10 * ETH + ETH // 10
    market_before = admin.balance(actors.admin.market.address)
    admin.transact(attacker.functions.attack())
    assert admin.call(attacker.functions.reentryAttempts()) == 1
    assert admin.call(attacker.functions.reentrySuccesses()) == 0
    assert admin.balance(attacker.address) == owed
    assert admin.balance(actors.admin.market.address) == market_before - owed
    assert actors.owner.withdrawable(pid, attacker.address) == 0


def test_failed_transfer_reverts_and_keeps_the_claim(actors: Actors) -> None:
    admin = actors.admin.chain
    pid, attacker = _attacker_project(actors)
    owed = actors.owner.withdrawable(pid, attacker.address)
    admin.transact(attacker.functions.setRejectPayments(True))
    with reverts("TransferFailed"):
        admin.transact(attacker.functions.attack())
    assert actors.owner.withdrawable(pid, attacker.address) == owed  # nothing lost
    admin.transact(attacker.functions.setRejectPayments(False))
    admin.transact(attacker.functions.attack())
    assert admin.balance(attacker.address) == owed


def test_test_verifier_refuses_to_deploy_outside_the_local_chain(artifacts: Artifacts) -> None:
    with AnvilNode(chain_id=11155111) as sepolia_like:  # Sepolia's chain id
        chain = ChainClient(sepolia_like.url, dev_accounts(1)[0])
        with pytest.raises(ContractRevert, match="TestVerifierOnLocalChainOnly"):
            chain.deploy(artifacts["TestRoundVerifier"], 64, encode_rule_version(RULE_VERSION))
        with pytest.raises(ValueError, match="only deploys on the local chain"):
            deploy_marketplace(chain, artifacts, with_test_verifier=True)
        deployment = deploy_marketplace(chain, artifacts)  # the real contracts deploy fine
        assert "TestRoundVerifier" not in deployment.contracts
