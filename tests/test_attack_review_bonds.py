"""Attack review of the rejection bonds (``MarketDisputes``: ``rejectSubmissions`` posts ``rejectionBond`` per
rejected trainer, ``disputeRejection`` reimburses a successful dispute its gas out of its bond, ``reclaimBonds``
returns the rest to the aggregator after the window, ``withdrawBonds`` pays credits out), on a real anvil with the
local test verifier. Every participant (owner, aggregator, any trainer, coalitions, anyone reading the mempool) may
deviate; the bonds hold when no trainer is reimbursed more than its dispute cost it, no bond is paid or returned
twice or to anyone else, none is stranded, and the market's ether is always exactly what it owes.

Holes the review found, fixed since (the tests pass):

- the reimbursement counted 16 gas for every byte of the call's data, and a plain account appended zero bytes after
  the arguments (4 gas each on chain, 10 under EIP-7623's floor; the ABI decoder ignores them): 100 KB of them
  earned ~0.7M gas above the dispute's cost, up to the whole bond at a few gwei. Now only the arguments' ABI
  encoding is counted (16 gas a byte, the documented slack of 12 gas a zero byte within it);
- a trainer account that runs code (a contract, or an account delegating to code, EIP-7702) built the call's data
  in memory (200 KB of zeros: ~0.1M gas, counted as 3.2M) and batched disputes of several projects, or a
  withdrawal and a dispute, in one transaction (each dispute reimbursed the 21,000 intrinsic gas once more, and the
  first credit's 17,100 for a credit slot the withdrawal had just emptied). Now only a dispute sent as its own
  transaction by a plain account (``msg.sender == tx.origin``, without code) is reimbursed the intrinsic gas, the
  calldata and the first credit's extra; any other is reimbursed the gas measured and the least the work after
  the measurement costs (``RELAYED_DISPUTE_GAS_OVERHEAD``), never more than it cost.

What holds as it was (the tests document it): an access list gains at most a few hundred gas; a reclaim and a
dispute in the same block (automine off, fee order) never both take the same bond; bonds reclaimed before the
round is finalized, across two projects of one aggregator and through an abandonment, are paid once and the
market's balance is always escrow + bonds held + bonds credited; re-entering ``withdrawBonds`` from the payment
fails; a market without bonds (``rejectionBond`` 0) takes no ether and awards nothing, and a huge bond cannot be
posted short by an overflow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import ContractPanicError

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.market import MarketClient
from marketplace.protocol.commitment import published_row
from marketplace.round.prove import HashProver
from tests.disputes import close_disputes
from tests.market_fixtures import Actors, reverts
from tests.mempool import Mempool
from tests.test_disputes import FEE, STAKE, N, Round, _finalization, _training_round

GWEI = 10**9
MAX_TIP = 2 * GWEI  # MarketDisputes.MAX_REIMBURSED_TIP


# ---------------------------------------------------------------- helpers


def _dispute_call(trainer: MarketClient, rnd: Round) -> Any:
    row = rnd.row_of(trainer)
    return trainer.market.functions.disputeRejection(rnd.pid, 0, published_row(row), HashProver().prove_row(row))


def _data(call: Any) -> bytes:
    return bytes.fromhex(ChainClient.calldata(call)[2:])


def _send(
    client: MarketClient,
    to: str,
    data: bytes,
    *,
    tip: int = GWEI,
    gas: int = 8_000_000,
    access_list: Sequence[dict[str, Any]] = (),
    authorizations: Sequence[Any] = (),
) -> Any:
    """Signs and sends ``data`` to ``to`` from ``client``'s account (EIP-1559, or EIP-7702 with
    ``authorizations``); waits for and returns the receipt, whether it succeeded or not."""
    w3 = client.chain.w3
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tx: dict[str, Any] = {
        "from": client.address, "to": to, "data": data, "value": 0, "gas": gas, "maxPriorityFeePerGas": tip,
        "maxFeePerGas": 2 * base + tip, "nonce": w3.eth.get_transaction_count(client.address),
        "chainId": client.chain.chain_id, "accessList": list(access_list),
    }  # fmt: skip
    if authorizations:
        tx["authorizationList"] = list(authorizations)
    signed = client.chain.account.sign_transaction(tx)
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))


def _fee(receipt: Any) -> int:
    """Wei the sender paid for the transaction of ``receipt``."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def _price(actors: Actors, receipt: Any) -> int:
    """The price per gas a dispute in ``receipt`` is reimbursed at: ``min(tx.gasprice, basefee + 2 gwei)``."""
    base = int(actors.chain.w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"])
    return min(int(receipt["effectiveGasPrice"]), base + MAX_TIP)


def _awards(actors: Actors, receipt: Any) -> int:
    """Wei the ``BondAwarded`` events of ``receipt`` credited, in all."""
    return sum(int(e["amount"]) for e in actors.events(receipt, "BondAwarded"))


def _rejected_round(actors: Actors, trainer_index: int = 0) -> tuple[Round, MarketClient]:
    """A one-round project whose trainers all committed and revealed, one of them rejected (one bond posted)."""
    rnd = _training_round(actors)
    trainer = rnd.trainers[trainer_index]
    actors.aggregator.reject_submissions(rnd.pid, 0, [trainer.address])
    return rnd, trainer


def _delegate(actors: Actors, trainer: MarketClient, code: str) -> None:
    """``trainer``'s account delegates to the code at ``code`` (EIP-7702), by a transaction of its own."""
    account: LocalAccount = trainer.chain.account
    nonce = actors.chain.w3.eth.get_transaction_count(trainer.address)
    auth = account.sign_authorization({"chainId": actors.chain.chain_id, "address": code, "nonce": nonce + 1})
    receipt = _send(trainer, actors.stranger.address, b"", gas=100_000, authorizations=[auth])
    assert receipt["status"] == 1 and actors.chain.code(trainer.address)[:3] == bytes.fromhex("ef0100")


def _relay(actors: Actors) -> Contract:
    return actors.admin.chain.deploy(actors.artifacts["DisputeRelay"])


def _through(actors: Actors, trainer: MarketClient, relay: Contract, calls: list[bytes], padding: int = 0) -> Any:
    """``trainer`` (delegating to ``relay``) sends one transaction that makes ``calls`` of the market in turn, each
    followed by ``padding`` zero bytes built in memory; returns its receipt (it must succeed)."""
    me = actors.chain.w3.eth.contract(address=trainer.address, abi=relay.abi)
    data = _data(me.functions.relay(trainer.market.address, calls, padding))
    receipt = _send(trainer, trainer.address, data, gas=25_000_000)
    assert receipt["status"] == 1
    return receipt


# ---------------------------------------------------------------- calldata and gas games (holes, fixed)


def test_zero_bytes_appended_to_a_disputes_calldata_earn_nothing(actors: Actors) -> None:
    """A trainer appends 100 KB of zero bytes after the dispute's ABI-encoded arguments (the decoder ignores them;
    4 gas each on chain, 10 under EIP-7623's floor): the reimbursement is the same gas as without them, and less
    than the fee (a few gas less: the measured code takes another branch)."""
    rnd, trainer = _rejected_round(actors)
    call = _dispute_call(trainer, rnd)
    snapshot = actors.chain.snapshot()
    plain = _send(trainer, trainer.market.address, _data(call))
    used = _awards(actors, plain) // _price(actors, plain)
    assert 0 <= _overpaid_gas(actors, plain) < 16_000  # the calldata bound's slack, 12 gas a zero byte
    actors.chain.revert(snapshot)
    padded = _send(trainer, trainer.market.address, _data(call) + bytes(100_000))
    assert padded["status"] == 1
    award, fee = _awards(actors, padded), _fee(padded)
    print(f"padded dispute: {padded['gasUsed']} gas (plain {plain['gasUsed']}), award {award} wei, fee {fee} wei")
    assert used - 50 <= award // _price(actors, padded) <= used  # the padding counts for nothing
    assert award < fee


def test_a_dispute_relayed_with_calldata_built_in_memory_earns_nothing(actors: Actors) -> None:
    """A trainer's account delegates to code (EIP-7702) that calls the market with the dispute's arguments followed
    by 200 KB of zero bytes built in memory (~0.1M gas of memory; counted at 16 gas a byte they were 3.2M): the
    award is at most the transaction's fee."""
    relay = _relay(actors)
    rnd, trainer = _rejected_round(actors)
    _delegate(actors, trainer, relay.address)
    receipt = _through(actors, trainer, relay, [_data(_dispute_call(trainer, rnd))], padding=200_000)
    award, fee = _awards(actors, receipt), _fee(receipt)
    print(f"relayed padded dispute: {receipt['gasUsed']} gas, award {award} wei, fee {fee} wei")
    assert 0 < award <= fee


def test_disputes_batched_in_one_transaction_earn_nothing(actors: Actors) -> None:
    """A trainer rejected in two projects disputes both in one transaction through code its account delegates to:
    the intrinsic gas and the first credit's surcharge are paid once, so they are reimbursed to neither relayed
    dispute; the two awards together are at most the transaction's fee."""
    relay = _relay(actors)
    rounds = [_training_round(actors) for _ in range(2)]
    trainer = rounds[0].trainers[0]
    for rnd in rounds:
        actors.aggregator.reject_submissions(rnd.pid, 0, [trainer.address])
    _delegate(actors, trainer, relay.address)
    receipt = _through(actors, trainer, relay, [_data(_dispute_call(trainer, rnd)) for rnd in rounds])
    award, fee = _awards(actors, receipt), _fee(receipt)
    print(f"two disputes in one transaction: {receipt['gasUsed']} gas, awards {award} wei, fee {fee} wei")
    assert len(actors.events(receipt, "BondAwarded")) == 2 and 0 < award <= fee


def test_withdrawing_then_disputing_in_one_transaction_earns_nothing(actors: Actors) -> None:
    """A trainer with a credit withdraws it and disputes in the same transaction: its credit slot, emptied by the
    withdrawal, is written again for 100 gas (and the withdrawal's refund), not the 22,100 of a first credit. The
    award is at most what the dispute added to the transaction's fee."""
    relay = _relay(actors)
    first, second = _training_round(actors), _training_round(actors)
    trainer = first.trainers[0]
    for rnd in (first, second):
        actors.aggregator.reject_submissions(rnd.pid, 0, [trainer.address])
    trainer.chain.transact(_dispute_call(trainer, first))  # a credit to withdraw
    _delegate(actors, trainer, relay.address)
    withdraw = _data(trainer.market.functions.withdrawBonds())
    snapshot = actors.chain.snapshot()
    alone = _through(actors, trainer, relay, [withdraw])
    actors.chain.revert(snapshot)
    both = _through(actors, trainer, relay, [withdraw, _data(_dispute_call(trainer, second))])
    award = _awards(actors, both)
    added = int(both["gasUsed"]) - int(alone["gasUsed"])
    print(f"withdraw then dispute: the dispute added {added} gas, award {award} wei")
    assert 0 < award <= added * int(both["effectiveGasPrice"])


def _overpaid_gas(actors: Actors, receipt: Any) -> int:
    """Gas a dispute's award counts above what its transaction used (negative: below)."""
    return _awards(actors, receipt) // _price(actors, receipt) - int(receipt["gasUsed"])


def test_an_access_list_gains_at_most_a_few_hundred_gas(actors: Actors) -> None:
    """A dispute declaring an access list (the node's full list, or just the disputes module, the one account it
    touches cold before the measurement) is overpaid at most 300 gas more than without one: a declared entry costs
    1,900 / 2,400 gas up front, where its first touch would have cost 2,100 / 2,600."""
    rnd, trainer = _rejected_round(actors)
    call = _dispute_call(trainer, rnd)
    market, module = trainer.market.address, actors.deployment.address("MarketDisputes")
    made = actors.chain.w3.eth.create_access_list(
        {"from": trainer.address, "to": market, "data": _data(call)}  # type: ignore[typeddict-item]
    )["accessList"]
    full = [{"address": e["address"], "storageKeys": [HexBytes(k).to_0x_hex() for k in e["storageKeys"]]} for e in made]
    overpaid = []
    for access_list in ([], full, [{"address": module, "storageKeys": []}]):
        snapshot = actors.chain.snapshot()
        overpaid.append(_overpaid_gas(actors, _send(trainer, market, _data(call), access_list=access_list)))
        actors.chain.revert(snapshot)
    print(f"gas overpaid without an access list, with the node's, with the module only: {overpaid}")
    assert all(gas <= overpaid[0] + 300 for gas in overpaid[1:])


# ---------------------------------------------------------------- ordering, windows and the escrow (safe)


@contextmanager
def _no_automine(actors: Actors) -> Iterator[Mempool]:
    """The session anvil with automine off (fee-ordered pool) for the block; automine back on afterwards."""
    pool = Mempool(actors.chain)
    pool.automine(False)
    try:
        yield pool
    finally:
        pool.automine(True)


def test_a_reclaim_and_a_dispute_in_one_block_never_both_take_the_bond(actors: Actors) -> None:
    """Automine off, fee-ordered mempool. In a block at the window's last second, a reclaim paying a far higher tip
    than the pending dispute is mined first and reverts (``BondsStillAtStake``); the dispute is awarded its cost.
    In a block one second later, the dispute (now the higher tip) reverts (``DisputeClosed``) and the reclaim
    returns the whole bond. Either way, award + returned = the bond."""
    rnd, trainer = _rejected_round(actors)
    bond = actors.owner.rejection_bond()
    deadline = actors.owner.rejections(rnd.pid).dispute_deadline
    dispute = _dispute_call(trainer, rnd)
    reclaim = actors.stranger.market.functions.reclaimBonds(rnd.pid, 0)
    for at, tips in ((deadline, (50, 1)), (deadline + 1, (1, 50))):
        snapshot = actors.chain.snapshot()
        with _no_automine(actors) as pool:
            actors.chain.w3.provider.make_request("evm_setNextBlockTimestamp", [at])  # type: ignore[arg-type]
            sent = {
                pool.send(actors.stranger.chain.account, reclaim, tip_gwei=tips[0]): "reclaim",
                pool.send(trainer.chain.account, dispute, tip_gwei=tips[1]): "dispute",
            }
            mined = pool.mine()
        order = [sent[r["transactionHash"].to_0x_hex()] for r in mined]
        ok = {sent[r["transactionHash"].to_0x_hex()]: r["status"] == 1 for r in mined}
        award = sum(_awards(actors, r) for r in mined)
        if at == deadline:
            assert order == ["reclaim", "dispute"] and ok == {"reclaim": False, "dispute": True}
            assert 0 < award < bond and actors.owner.bonds_held(rnd.pid, 0) == bond - award
            close_disputes(actors.owner, rnd.pid)
            assert actors.stranger.reclaim_bonds(rnd.pid, 0) == bond - award  # once the window is over
        else:
            assert order == ["dispute", "reclaim"] and ok == {"reclaim": True, "dispute": False}
            assert award == 0 and actors.owner.bond_credit(actors.aggregator.address) == bond
        assert actors.owner.bond_credit(actors.aggregator.address) + actors.owner.bond_credit(trainer.address) == bond
        assert actors.owner.bonds_held(rnd.pid, 0) == 0
        actors.chain.revert(snapshot)


def _owed(actors: Actors, pids: Sequence[int], rounds: int) -> int:
    """What the market owes: every account's due in every project (escrow), plus the bonds held for every round and
    the bonds credited to every account."""
    accounts = [actors.owner, actors.aggregator, actors.stranger, *actors.trainers]
    due = sum(actors.owner.withdrawable(pid, a.address) for pid in pids for a in accounts)
    held = sum(actors.owner.bonds_held(pid, r) for pid in pids for r in range(rounds))
    return due + held + sum(actors.owner.bond_credit(a.address) for a in accounts)


def test_bonds_and_escrow_stay_apart_across_projects_reclaims_and_an_abandonment(actors: Actors) -> None:
    """One aggregator, two projects. A: a rejection stands; its bond is reclaimed after the window and before the
    round is finalized, and withdrawn, while the round is still open; A is then abandoned and everyone withdraws.
    B: a rejection is disputed, B is finalized, everyone withdraws, the rest of its bond is reclaimed. After every
    step the market holds exactly escrow + bonds held + bonds credited (once a project is finished or cancelled its
    escrow is what its accounts may withdraw); no bond is reclaimed twice; at the end the balance is as before."""
    market = actors.deployment.address("TrainingMarket")
    before = actors.chain.balance(market)
    bond = actors.owner.rejection_bond()
    a, b = _training_round(actors), _training_round(actors)
    escrow = {pid: actors.owner.get_project(pid).reward_budget + FEE + N * STAKE for pid in (a.pid, b.pid)}

    def check(open_pids: Sequence[int]) -> None:
        closed = [pid for pid in (a.pid, b.pid) if pid not in open_pids]
        owed = _owed(actors, closed, 1) + sum(escrow[pid] for pid in open_pids)
        owed += sum(actors.owner.bonds_held(pid, 0) for pid in open_pids)
        assert actors.chain.balance(market) - before == owed

    stood, disputer = a.trainers[1], b.trainers[2]
    actors.aggregator.reject_submissions(a.pid, 0, [stood.address])
    actors.aggregator.reject_submissions(b.pid, 0, [disputer.address])
    check([a.pid, b.pid])
    award = _awards(actors, disputer.chain.transact(_dispute_call(disputer, b)))
    check([a.pid, b.pid])
    close_disputes(actors.owner, a.pid)
    assert actors.stranger.reclaim_bonds(a.pid, 0) == bond  # window over, round not finalized yet
    with reverts("NoBondsHeld"):
        actors.stranger.chain.transact(actors.stranger.market.functions.reclaimBonds(a.pid, 0))
    assert actors.aggregator.withdraw_bonds() == bond  # b's bond, still at stake, is not touched
    assert actors.owner.bonds_held(b.pid, 0) == bond - award
    check([a.pid, b.pid])

    actors.aggregator.finalize_round(b.pid, 0, _finalization(actors.aggregator, b, set()))
    check([a.pid])
    actors.chain.increase_time(actors.owner.round_deadlines(a.pid).aggregation - actors.chain.timestamp() + 1)
    actors.stranger.abandon(a.pid)
    check([])
    everyone = [actors.owner, actors.aggregator, *a.trainers]
    paid = {pid: sum(c.withdraw(pid) for c in everyone if c.withdrawable(pid, c.address)) for pid in (a.pid, b.pid)}
    assert paid == escrow
    check([])
    with reverts("NoBondsHeld"):  # a's bond came back before the abandonment: not again
        actors.stranger.chain.transact(actors.stranger.market.functions.reclaimBonds(a.pid, 0))
    assert actors.stranger.reclaim_bonds(b.pid, 0) == bond - award
    check([])
    assert actors.aggregator.withdraw_bonds() == bond - award and disputer.withdraw_bonds() == award
    assert actors.chain.balance(market) == before


def test_re_entering_withdraw_bonds_from_the_payment_fails(actors: Actors) -> None:
    """A trainer whose account runs code re-enters ``withdrawBonds`` from the payment of its credit: the re-entry
    reverts (``nonReentrant``, credit zeroed first), the outer withdrawal succeeds, the credit is paid once."""
    relay = _relay(actors)
    rnd, trainer = _rejected_round(actors)
    _delegate(actors, trainer, relay.address)
    trainer.chain.transact(_dispute_call(trainer, rnd))
    credit = actors.owner.bond_credit(trainer.address)
    market = actors.deployment.address("TrainingMarket")
    held = actors.chain.balance(market)
    receipt = trainer.chain.transact(trainer.market.functions.withdrawBonds())
    me = actors.chain.w3.eth.contract(address=trainer.address, abi=relay.abi)
    assert (me.functions.reentryAttempts().call(), me.functions.reentrySuccesses().call()) == (1, 0)
    assert [int(e["amount"]) for e in actors.events(receipt, "BondWithdrawn")] == [credit]
    assert actors.chain.balance(market) == held - credit and actors.owner.bond_credit(trainer.address) == 0


# ---------------------------------------------------------------- markets with other bonds (safe)


def _actors_on(actors: Actors, bond: int) -> Actors:
    """``actors`` on a fresh market of the session chain whose rejection bond is ``bond`` wei."""
    deployment = deploy_marketplace(actors.admin.chain, actors.artifacts, rejection_bond=bond)
    base = market_client(actors.admin.chain, deployment, actors.artifacts)
    assert deployment.address(TEST_VERIFIER)

    def mine(c: MarketClient) -> MarketClient:
        return base.as_account(c.chain.account)

    return Actors(
        mine(actors.admin), mine(actors.owner), mine(actors.aggregator), [mine(t) for t in actors.trainers],
        mine(actors.stranger), deployment, actors.artifacts,
    )  # fmt: skip


def test_a_market_without_bonds_takes_no_ether_and_awards_nothing(actors: Actors) -> None:
    """``rejectionBond`` 0: an announcement takes no ether (``WrongBond(0, 1)`` with one wei), a successful dispute
    awards nothing (no ``BondAwarded``), nothing is held, reclaimed or credited, and the market holds no ether
    besides the escrow."""
    free = _actors_on(actors, 0)
    assert free.owner.rejection_bond() == 0
    rnd = _training_round(free)
    trainer = rnd.trainers[0]
    call = free.aggregator.market.functions.rejectSubmissions(rnd.pid, 0, [trainer.address])
    with reverts("WrongBond") as caught:
        free.aggregator.chain.transact(call, value=1)
    assert caught.value.args == {"expected": 0, "sent": 1}
    free.aggregator.chain.transact(call)
    receipt = trainer.chain.transact(_dispute_call(trainer, rnd))
    assert free.events(receipt, "RejectionDisputed") and not free.events(receipt, "BondAwarded")
    close_disputes(free.owner, rnd.pid)
    free.aggregator.finalize_round(rnd.pid, 0, _finalization(free.aggregator, rnd, set()))
    with reverts("NoBondsHeld"):
        free.stranger.chain.transact(free.stranger.market.functions.reclaimBonds(rnd.pid, 0))
    with reverts("NoBondToWithdraw"):
        trainer.chain.transact(trainer.market.functions.withdrawBonds())
    market = free.deployment.address("TrainingMarket")
    assert free.chain.balance(market) == free.owner.get_project(rnd.pid).reward_budget + FEE + N * STAKE


@pytest.mark.parametrize("bond", [1, 2**255])
def test_a_tiny_or_huge_bond_is_posted_in_full_or_not_at_all(actors: Actors, bond: int) -> None:
    """A 1-wei bond: the award is capped at it and the arithmetic of the held bonds holds. A 2^255-wei bond: two
    rejections' bonds overflow, and the announcement reverts (checked arithmetic) instead of taking a wrapped-around
    amount; one rejection takes exactly 2^255 wei, more than anyone has."""
    market = _actors_on(actors, bond)
    rnd = _training_round(market)
    two = [t.address for t in rnd.trainers[:2]]
    call = market.aggregator.market.functions.rejectSubmissions(rnd.pid, 0, two)
    if bond > 1:
        with pytest.raises(ContractPanicError, match="0x11"):  # arithmetic overflow
            market.chain.w3.eth.call({"from": market.aggregator.address, "to": call.address, "data": _data(call)})
        with reverts("WrongBond"):
            market.aggregator.chain.transact(market.aggregator.market.functions.rejectSubmissions(rnd.pid, 0, two[:1]))
        assert market.owner.rejections(rnd.pid).dispute_deadline == 0
        return
    market.aggregator.chain.transact(call, value=2)
    receipt = rnd.trainers[0].chain.transact(_dispute_call(rnd.trainers[0], rnd))
    assert _awards(market, receipt) == 1 and market.owner.bonds_held(rnd.pid, 0) == 1
    close_disputes(market.owner, rnd.pid)
    assert market.stranger.reclaim_bonds(rnd.pid, 0) == 1
    assert market.aggregator.withdraw_bonds() == 1 and rnd.trainers[0].withdraw_bonds() == 1
