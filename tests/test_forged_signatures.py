"""Forged transactions against the real anvil chain: nobody can act as the aggregator without its key.

An Ethereum transaction carries no sender field: the node recovers the sender from the signature. So a
transaction signed by one key but "claiming" another sender is simply the signer's transaction, and a
tampered signature either does not recover at all (the node refuses it) or recovers to some other
address, which the contract then refuses like any stranger (``Unauthorized``). The target is
``finalizeRound``, the call that decides who gets paid: only the project's aggregator may make it.
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.constants import SECPK1_N
from web3.exceptions import Web3RPCError

from marketplace.adapters.chain.errors import ContractRevert
from tests.market_fixtures import ETH, Actors

GAS = 3_000_000  # fixed: estimating would already simulate the call from the forger


def finalize_tx(actors: Actors, pid: int, signer: LocalAccount, chain_id: int | None = None) -> dict[str, Any]:
    """An EIP-1559 ``finalizeRound(pid, 0, result)`` transaction with a result the verifier accepts, for ``signer``'s
    next nonce: the sender is the only thing that can make it fail."""
    chain = actors.chain
    result = actors.result(pid, 0, [600_000, 400_000, 0])
    call = actors.admin.market.functions.finalizeRound(pid, 0, result.as_abi_tuple(actors.admin.trainers(pid)))
    return call.build_transaction({
        "chainId": chain.chain_id if chain_id is None else chain_id, "gas": GAS, "value": 0, **chain.fees(),
        "nonce": chain.w3.eth.get_transaction_count(signer.address, "pending"),
    })  # fmt: skip


def with_signature(raw: bytes, y_parity: int, r: int, s: int) -> bytes:
    """The same typed (EIP-1559) transaction with another signature ``(yParity, r, s)``."""
    assert raw[0] == 2, "an EIP-1559 transaction"
    fields = rlp.decode(raw[1:])
    return b"\x02" + rlp.encode([*fields[:-3], y_parity, r, s])


def signature_of(raw: bytes) -> tuple[int, int, int]:
    y_parity, r, s = (int.from_bytes(f, "big") for f in rlp.decode(raw[1:])[-3:])
    return y_parity, r, s


def round_zero_finalized(actors: Actors, pid: int) -> bool:
    return len(actors.owner.finalized_rounds(pid)) > 0


def send_and_expect_unauthorized(actors: Actors, raw: bytes, sender: str) -> None:
    """Sends ``raw`` (its recovered ``sender`` funded for gas): it is mined, attributed to ``sender``, and reverts
    with ``Unauthorized(sender)``."""
    chain = actors.chain
    chain.set_balance(sender, 10 * ETH)
    receipt = chain.wait(chain.w3.eth.send_raw_transaction(raw))
    mined = chain.w3.eth.get_transaction(receipt["transactionHash"])
    assert mined["from"] == sender
    assert receipt["status"] == 0
    failure = chain.revert_reason(receipt)  # the revert reason, decoded by replaying the transaction
    assert isinstance(failure, ContractRevert) and failure.name == "Unauthorized", failure
    assert failure.args_dict["caller"] == sender


@pytest.fixture
def pid(actors: Actors) -> int:
    """A training project whose three trainers all committed and revealed round 0: it may be finalized now."""
    pid = actors.training_project(3)
    actors.submit_all(pid, 0)
    return pid


def test_a_transaction_cannot_claim_another_sender(actors: Actors, accounts: list[LocalAccount], pid: int) -> None:
    aggregator, forger = accounts[2], accounts[11]
    assert actors.owner.get_project(pid).aggregator == aggregator.address
    tx = finalize_tx(actors, pid, forger)

    # eth-account will not even sign a transaction whose "from" is not the key's address ...
    with pytest.raises((TypeError, ValueError), match="from"):
        forger.sign_transaction({**tx, "from": aggregator.address})
    # ... and the signed bytes carry no sender: whoever signed is the sender.
    raw = bytes(forger.sign_transaction(tx).raw_transaction)
    assert Account.recover_transaction(raw) == forger.address
    send_and_expect_unauthorized(actors, raw, forger.address)
    assert not round_zero_finalized(actors, pid)

    # The aggregator's own transaction goes through afterwards: nothing of the forgery stuck.
    own = bytes(aggregator.sign_transaction(finalize_tx(actors, pid, aggregator)).raw_transaction)
    receipt = actors.chain.wait(actors.chain.w3.eth.send_raw_transaction(own))
    assert receipt["status"] == 1 and round_zero_finalized(actors, pid)


TAMPERINGS = {
    "r+1": lambda v, r, s: (v, r + 1, s),
    "s+1": lambda v, r, s: (v, r, s + 1),
    "r-bit-flip": lambda v, r, s: (v, r ^ (1 << 100), s),
    "yParity-flipped": lambda v, r, s: (1 - v, r, s),
    "high-s (malleated)": lambda v, r, s: (1 - v, r, SECPK1_N - s),
    "r=0": lambda v, r, s: (v, 0, s),
    "s=0": lambda v, r, s: (v, r, 0),
    "r>=n": lambda v, r, s: (v, SECPK1_N + 1, s),
    "yParity=2": lambda v, r, s: (2, r, s),
}


@pytest.mark.parametrize("tamper", list(TAMPERINGS))
def test_a_tampered_signature_is_refused_or_recovers_to_someone_the_contract_refuses(
    actors: Actors, accounts: list[LocalAccount], pid: int, tamper: str
) -> None:
    aggregator = accounts[2]
    raw = bytes(aggregator.sign_transaction(finalize_tx(actors, pid, aggregator)).raw_transaction)
    forged = with_signature(raw, *TAMPERINGS[tamper](*signature_of(raw)))
    try:
        recovered: str | None = Account.recover_transaction(forged)
    except Exception:  # not a valid signature at all
        recovered = None

    if tamper.startswith("high-s"):
        check_malleated_twin(actors, pid, raw, forged, aggregator.address)
        return
    if recovered is None:  # no valid signature at all: the node refuses it
        with pytest.raises(Web3RPCError):
            actors.chain.w3.eth.send_raw_transaction(forged)
    else:
        send_and_expect_unauthorized(actors, forged, recovered)
    assert not round_zero_finalized(actors, pid)

    # The untouched original is still the aggregator's and still valid (its nonce was not used up).
    receipt = actors.chain.wait(actors.chain.w3.eth.send_raw_transaction(raw))
    assert receipt["status"] == 1 and round_zero_finalized(actors, pid)


def check_malleated_twin(actors: Actors, pid: int, raw: bytes, twin: bytes, aggregator: str) -> None:
    """``(r, n - s)`` with the other parity is a second valid signature by the same key over the same transaction.
    Nodes enforcing EIP-2 refuse it; anvil takes it. Either way it is the aggregator's own transaction (same sender,
    nonce and calldata) under another hash: whoever malleates it only gets it mined sooner, and just once."""
    w3 = actors.chain.w3
    try:
        tx_hash = w3.eth.send_raw_transaction(twin)
    except Web3RPCError:  # EIP-2: high s refused
        assert actors.chain.wait(w3.eth.send_raw_transaction(raw))["status"] == 1
    else:
        mined, fields = w3.eth.get_transaction(tx_hash), rlp.decode(raw[1:])  # [chainId, nonce, .., data, ..]
        assert mined["from"] == Account.recover_transaction(raw) == aggregator
        assert mined["nonce"] == int.from_bytes(fields[1], "big") and bytes(mined["input"]) == bytes(fields[7])
        assert actors.chain.wait(tx_hash)["status"] == 1
        with pytest.raises(Web3RPCError):  # the original is now a replay
            w3.eth.send_raw_transaction(raw)
    assert len(actors.owner.finalized_rounds(pid)) == 1


def test_a_signature_for_another_chain_or_a_replay_is_refused(
    actors: Actors, accounts: list[LocalAccount], pid: int
) -> None:
    aggregator = accounts[2]
    other_chain = bytes(aggregator.sign_transaction(finalize_tx(actors, pid, aggregator, chain_id=1)).raw_transaction)
    with pytest.raises(Web3RPCError):
        actors.chain.w3.eth.send_raw_transaction(other_chain)
    assert not round_zero_finalized(actors, pid)

    raw = bytes(aggregator.sign_transaction(finalize_tx(actors, pid, aggregator)).raw_transaction)
    assert actors.chain.wait(actors.chain.w3.eth.send_raw_transaction(raw))["status"] == 1
    with pytest.raises(Web3RPCError):  # the same signed bytes again: nonce already used
        actors.chain.w3.eth.send_raw_transaction(raw)
    assert len(actors.owner.finalized_rounds(pid)) == 1
