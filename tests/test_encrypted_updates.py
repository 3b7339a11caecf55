"""Encrypted updates (issue 14, "Privacy of updates") on a real anvil and a real IPFS node, the test verifier.

A project's aggregator publishes an X25519 key in ``UpdateKeys``; its trainers then pin their updates encrypted
to that key (the seal's CID is the ciphertext's, the commitment the plaintext row's), and the aggregator opens
them before the usual checks. The chain, the IPFS node and the deployment record are the ones the command line
uses (``chain up``, ``ipfs up``, ``deploy``), so the nodes find ``UpdateKeys`` in the record as ``trainer run``
and ``aggregator run`` do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from nacl.public import Box, PrivateKey, PublicKey
from typer.testing import CliRunner

from marketplace.adapters.chain.anvil import dev_accounts
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.config import DeployedContract, Deployment, deployment_path, write_deployment
from marketplace.adapters.chain.deploy import TEST_VERIFIER, connect, read_record
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import MarketClient, ProjectConfig, ProjectStatus
from marketplace.adapters.chain.update_keys import (
    UPDATE_KEYS,
    UnexpectedUpdateKeys,
    UpdateKeysClient,
    recorded_update_keys,
)
from marketplace.adapters.ipfs.errors import NotSafetensors
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import resolve_api_url
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import dumps, load_checked
from marketplace.cli.main import app
from marketplace.fl.models import build_model, param_spec, tensors_to_vector, vector_to_state
from marketplace.protocol.commitment import commit_update, published_row
from marketplace.protocol.envelope import (
    MAGIC,
    EnvelopeError,
    EnvelopeOriginMismatch,
    InvalidUpdateKey,
    UnsupportedEnvelopeVersion,
    UpdateKey,
    UpdateOrigin,
    check_form,
    is_envelope,
    open_own,
    seal_update,
    sender_key,
)
from marketplace.protocol.seal import RoundAddress
from marketplace.roles.aggregator import (
    AggregatorNode,
    RejectionsAnnounced,
    RoundReport,
    project_update_key,
    publish_update_key,
)
from marketplace.roles.audit import NOT_CHECKED_WHEN_ENCRYPTED, audit_encrypted_round, audit_round
from marketplace.roles.trainer import Committed, StepOutcome, Submitted, TrainerNode, UpdateContext
from marketplace.round.prove import HashProver
from tests.disputes import close_disputes, step_through_disputes
from tests.market_fixtures import commit, reveal_update
from tests.update_sources import agreeing_updates

ETH = 10**18
STAKE = ETH // 10
ADMIN, OWNER, AGGREGATOR, STRANGER = 0, 1, 2, 9
FIRST_TRAINER = 3  # dev accounts 3..8 are trainers
FIXTURES = Path(__file__).parent / "fixtures"


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


@dataclass
class Env:
    """The command line's local chain, IPFS node and deployment record, and a client per dev account."""

    accounts: list[LocalAccount]
    admin: MarketClient
    store: ModelStore

    def market(self, who: int) -> MarketClient:
        return self.admin.as_account(self.accounts[who])

    def keys(self, who: int) -> UpdateKeysClient:
        keys = recorded_update_keys(self.market(who))
        assert keys is not None
        return keys

    def project(self, n: int, *, rounds: int = 1, join: bool = True) -> int:
        """A training project of ``n`` trainers (dev accounts 3..) on the test verifier (an open one that nobody
        joined unless ``join``)."""
        initial = self.store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
        config = ProjectConfig(
            aggregator=self.accounts[AGGREGATOR].address,
            verifier=read_record("local").address(TEST_VERIFIER),  # type: ignore[union-attr]
            reward_budget=ETH,
            aggregator_fee=ETH // 10,
            stake=STAKE,
            rounds=rounds,
            min_trainers=n,
            max_trainers=n,
            slash_bps=5_000,
            model_name="mlp",
            initial_model_cid=initial,
        )
        pid = self.market(OWNER).create_project(config)
        for i in range(n if join else 0):
            self.market(FIRST_TRAINER + i).join(pid)
        return pid


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("encrypted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MARKETPLACE_STATE_DIR", str(tmp / "state"))
        patch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp / "deployments"))
        patch.setenv("MARKETPLACE_IPFS_HOME", str(tmp / "ipfs"))
        for name in ("MARKETPLACE_PRIVATE_KEY", "MARKETPLACE_IPFS_API", "MARKETPLACE_KEYSTORE", "MARKETPLACE_RPC_URL"):
            patch.delenv(name, raising=False)
        cli("chain", "up", "--port", "0")
        try:
            cli("ipfs", "up")
            assert UPDATE_KEYS in cli("deploy", "--challenge-period", "0")
            accounts = dev_accounts(10)
            yield Env(accounts, connect("local", accounts[ADMIN]), ModelStore(IpfsClient(resolve_api_url(None))))
        finally:
            CliRunner().invoke(app, ["ipfs", "down"])
            CliRunner().invoke(app, ["chain", "down"])


@dataclass(frozen=True)
class PerRound:
    """An update source that submits ``updates[round]``."""

    updates: list[np.ndarray]

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        return self.updates[ctx.round]


@dataclass
class Job:
    reports: list[RoundReport]
    cids: dict[tuple[int, str], str]  # (round, trainer) -> the CID it revealed
    payouts: dict[str, int]


def run_job(env: Env, pid: int, updates: list[list[np.ndarray]]) -> Job:
    """Every round of ``pid`` played by real nodes (trainer i submits ``updates[round][i]``); then what everyone
    can withdraw. The nodes find ``UpdateKeys`` in the deployment record."""
    n = len(updates[0])
    trainers = [
        TrainerNode(env.market(FIRST_TRAINER + i), env.store, PerRound([u[i] for u in updates])) for i in range(n)
    ]
    aggregator = AggregatorNode(env.market(AGGREGATOR), env.store)
    reports, cids = [], {}
    for round_ in range(len(updates)):
        assert all(isinstance(t.step(pid), Committed) for t in trainers)
        for t in trainers:
            revealed = t.step(pid)
            assert isinstance(revealed, Submitted)
            cids[(round_, t.address)] = revealed.cid
        report = step_through_disputes(aggregator, pid, trainers)
        assert report is not None and report.tx_hash
        reports.append(report)
    assert env.admin.get_project(pid).status is ProjectStatus.FINISHED
    everyone = [env.accounts[OWNER].address, env.accounts[AGGREGATOR].address, *(t.address for t in trainers)]
    return Job(reports, cids, {a: env.admin.withdrawable(pid, a) for a in everyone})


def test_an_encrypted_project_pays_as_a_clear_one_and_only_its_aggregator_reads_the_updates(env: Env) -> None:
    """The same two-round job twice from the same chain state: with public updates, then with the aggregator's
    key published. The encrypted job pins other bytes (no update is readable from IPFS, not even as
    safetensors), yet it flags, scores, builds the new models (the same CIDs, bit for bit) and pays exactly
    as the clear one. Only the aggregator's key (and each trainer's own sender key) opens an update."""
    updates = [agreeing_updates(4, seed=11), agreeing_updates(4, seed=12)]
    pid = env.project(4, rounds=2)
    chain = env.admin.chain
    snapshot = chain.snapshot()
    clear = run_job(env, pid, updates)
    assert all(not is_envelope(env.store.get_bytes(cid)) for cid in clear.cids.values())
    chain.revert(snapshot)

    public = publish_update_key(env.market(AGGREGATOR), env.keys(AGGREGATOR), pid)
    assert env.keys(STRANGER).key_of(pid) == public
    encrypted = run_job(env, pid, updates)

    for c, e in zip(clear.reports, encrypted.reports, strict=True):
        assert e.rejected == {} and e.flags == c.flags and e.chain_scores == c.chain_scores
        assert sum(e.chain_scores) > 0
        assert e.model_cid == c.model_cid  # the same new model, bit for bit
    assert encrypted.payouts == clear.payouts  # to the wei, for everyone

    spec = param_spec("mlp")
    agg_key = project_update_key(env.market(AGGREGATOR), pid)
    owner_key = project_update_key(env.market(OWNER), pid)  # the owner's wallet derives another key
    for (round_, trainer), cid in encrypted.cids.items():
        i = env.admin.trainers(pid).index(trainer)
        where = env.admin.round_address(pid, round_)
        origin = UpdateOrigin(where, trainer)
        pinned = env.store.get_bytes(cid)
        assert cid != clear.cids[(round_, trainer)] and is_envelope(pinned)
        with pytest.raises(NotSafetensors):
            load_checked(pinned, spec)
        plaintext = agg_key.open(pinned, origin)
        assert np.array_equal(tensors_to_vector(load_checked(plaintext, spec), spec), updates[round_][i])
        assert plaintext not in pinned and plaintext[8:64] not in pinned  # not even the header is readable
        assert origin.encode() not in pinned  # nor whose update it is (the reveal says that)
        with pytest.raises(EnvelopeError):
            owner_key.open(pinned, origin)
        own = sender_key(env.accounts[FIRST_TRAINER + i], where)
        assert open_own(pinned, public, own, origin) == plaintext  # a restarted trainer reads its own update again
        other = sender_key(env.accounts[FIRST_TRAINER + (i + 1) % 4], where)
        with pytest.raises(EnvelopeError):
            open_own(pinned, public, other, origin)
        _, commitment = commit_update(updates[round_][i], env.admin.sketch_seed(pid), env.admin.sketch_width(pid))
        assert env.admin.commitment(pid, round_, trainer) == commitment  # the plaintext's, unchanged

    # The public audit checks what it can and says what it cannot; with the key, the whole round.
    for round_ in (0, 1):
        partial = audit_encrypted_round(env.admin, env.store, pid, round_)
        assert partial.agrees and partial.proof is not None and partial.proof.valid
        assert all(t.encrypted and not t.problem for t in partial.trainers)
        assert partial.not_checked == NOT_CHECKED_WHEN_ENCRYPTED and not partial.proof_proves  # test verifier
        assert audit_round(env.admin, env.store, pid, round_, agg_key.open).agrees


HERE = RoundAddress(31337, "0x" + "ab" * 20, 7, 2)
TRAINER = "0x" + "cd" * 20


def test_an_envelope_opens_only_whole_and_unchanged_for_its_recipient() -> None:
    """Every byte of an envelope is authenticated: one flipped bit anywhere, a truncation, another recipient's
    key or another sender key refuses to open (``EnvelopeError``), never returns other bytes."""
    recipient = key_from(1)
    sender = b"\x05" * 32
    plaintext = b"update bytes " * 50
    origin = UpdateOrigin(HERE, TRAINER)
    envelope = seal_update(plaintext, recipient.public, sender, origin)
    assert recipient.open(envelope, origin) == plaintext
    assert envelope != seal_update(plaintext, recipient.public, sender, origin)
    for i in range(len(MAGIC), len(envelope)):
        changed = bytearray(envelope)
        changed[i] ^= 0x01
        with pytest.raises(EnvelopeError):
            recipient.open(bytes(changed), origin)
    for cut in (len(envelope) - 1, 100, 40):
        with pytest.raises(EnvelopeError):
            recipient.open(envelope[:cut], origin)
    with pytest.raises(EnvelopeError):
        key_from(2).open(envelope, origin)
    with pytest.raises(EnvelopeError):
        open_own(envelope, recipient.public, b"\x06" * 32, origin)
    assert "secret" not in repr(recipient) and recipient.secret.hex() not in repr(recipient)


@pytest.mark.parametrize(
    "other",
    [
        UpdateOrigin(HERE, "0x" + "ce" * 20),  # another trainer
        UpdateOrigin(RoundAddress(31337, HERE.market, 7, 3), TRAINER),  # a later round
        UpdateOrigin(RoundAddress(31337, HERE.market, 8, 2), TRAINER),  # another project
        UpdateOrigin(RoundAddress(31337, "0x" + "ac" * 20, 7, 2), TRAINER),  # another market
        UpdateOrigin(RoundAddress(1, HERE.market, 7, 2), TRAINER),  # another chain
    ],
    ids=["trainer", "round", "project", "market", "chain"],
)
def test_an_envelope_opens_only_for_the_submission_it_was_sealed_for(other: UpdateOrigin) -> None:
    """The trainer, round, project, market and chain are sealed with the update: an envelope revealed by another
    submission than its own (a replayed copy) opens for neither the aggregator nor its sender, and the error
    says whose envelope it is."""
    recipient, sender = key_from(1), b"\x05" * 32
    origin = UpdateOrigin(HERE, TRAINER)
    envelope = seal_update(b"update bytes " * 50, recipient.public, sender, origin)
    with pytest.raises(EnvelopeOriginMismatch, match=rf"sealed for {re.escape(str(origin))}, not for"):
        recipient.open(envelope, other)
    with pytest.raises(EnvelopeOriginMismatch):
        open_own(envelope, recipient.public, sender, other)
    assert str(UpdateOrigin.decode(origin.encode())) == str(origin)  # the error names it as the sealer did


def test_an_envelope_of_the_first_version_is_refused_with_its_version() -> None:
    """An envelope as version 1 made it (``mkt-enc1``, no origin inside) is still recognised as an envelope, and
    refused by its version, by the key holder and by the public check alike."""
    recipient, sender = key_from(1), PrivateKey(b"\x05" * 32)
    old = b"mkt-enc1" + bytes(sender.public_key) + Box(sender, PublicKey(recipient.public)).encrypt(b"x" * 400)
    assert is_envelope(old) and MAGIC == b"mkt-enc2"
    with pytest.raises(UnsupportedEnvelopeVersion, match=r"version '1'.*version 2 only"):
        recipient.open(old, UpdateOrigin(HERE, TRAINER))
    with pytest.raises(UnsupportedEnvelopeVersion):
        check_form(old)


def key_from(seed: int) -> UpdateKey:
    """A fixed update key pair (no wallet needed)."""
    return UpdateKey(bytes([seed]) * 32)


def test_only_the_projects_aggregator_publishes_its_key_once_while_the_project_runs(env: Env) -> None:
    pid = env.project(2)
    key = project_update_key(env.market(AGGREGATOR), pid).public
    for who in (STRANGER, OWNER, FIRST_TRAINER):
        address = env.accounts[who].address
        with pytest.raises(ContractRevert, match=rf"^NotTheAggregator\(projectId={pid}, caller={address}"):
            env.keys(who).publish_key(pid, key)
    aggregator = env.keys(AGGREGATOR)
    with pytest.raises(InvalidUpdateKey):  # a key nothing can be encrypted to is refused before any transaction
        aggregator.publish_key(pid, (1).to_bytes(32, "little"))
    with pytest.raises(ContractRevert, match=rf"^ZeroKey\(projectId={pid}\)"):
        aggregator.chain.transact(aggregator.contract.functions.publishKey(pid, b"\0" * 32))
    small = (1).to_bytes(32, "little")  # published with a raw transaction, past the client's check
    unusable = env.project(1)
    aggregator.chain.transact(aggregator.contract.functions.publishKey(unusable, small))
    node = TrainerNode(env.market(FIRST_TRAINER), env.store, PerRound(agreeing_updates(1, seed=1)))
    assert node.step(unusable) is StepOutcome.UNUSABLE_UPDATE_KEY  # it does not submit rather than pin in the clear
    assert env.admin.get_project(unusable).commits == 0
    with pytest.raises(ContractRevert, match=r"^UnknownProject\(projectId=999\)"):
        aggregator.publish_key(999, key)
    assert aggregator.key_of(pid) is None and aggregator.publication(pid) is None

    receipt = aggregator.publish_key(pid, key)
    (event,) = aggregator.chain.events(receipt, aggregator.contract, "UpdateKeyPublished")
    assert event["args"]["aggregator"] == env.accounts[AGGREGATOR].address
    published = aggregator.publication(pid)
    assert published is not None and published.public_key == key == aggregator.key_of(pid)
    assert published.block_number == receipt["blockNumber"]
    other = project_update_key(env.market(OWNER), pid).public
    for again in (key, other):  # neither the same key again nor another one: a project's key never changes
        with pytest.raises(ContractRevert, match=rf"^KeyAlreadyPublished\(projectId={pid}, publicKey=0x{key.hex()}"):
            aggregator.publish_key(pid, again)
    assert aggregator.key_of(pid) == key
    assert aggregator.market_address() == env.admin.market.address

    ended = env.project(2, join=False)
    env.market(OWNER).cancel(ended)
    with pytest.raises(ContractRevert, match=rf"^ProjectNotActive\(projectId={ended}, status=3\)"):
        aggregator.publish_key(ended, project_update_key(env.market(AGGREGATOR), ended).public)


def test_garbage_ciphertext_is_rejected_like_a_bad_update_and_its_trainer_may_dispute(env: Env) -> None:
    """Seven trainers of an encrypted project: three honest ones, and four whose pinned bytes the aggregator
    cannot use: random bytes behind the envelope header (A), an envelope made for another key (B), an envelope
    of a pickle (C), an envelope of an update that is not the one committed (D). Each is rejected with its
    reason; B publishes its committed row and is paid on it; A, C and D are flagged, slashed and recorded as
    flagged, exactly what a bad clear update gets."""
    pid = env.project(7)
    agg = env.market(AGGREGATOR)
    public = publish_update_key(agg, env.keys(AGGREGATOR), pid)
    spec = param_spec("mlp")
    ups = agreeing_updates(7, seed=21)
    seed, k = env.admin.sketch_seed(pid), env.admin.sketch_width(pid)
    honest = [TrainerNode(env.market(FIRST_TRAINER + i), env.store, PerRound([ups[i]])) for i in range(3)]
    bad = [env.market(FIRST_TRAINER + i) for i in range(3, 7)]
    a, b, c, d = bad
    flagged_before = {t.address: env.admin.record(t.address)[1] for t in bad}
    rows = {t.address: commit_update(ups[3 + j], seed, k) for j, t in enumerate(bad)}
    rng = np.random.default_rng(0)
    own_key = project_update_key(env.market(STRANGER), pid).public  # not the aggregator's
    where = env.admin.round_address(pid, 0)
    pinned = {
        a.address: MAGIC + rng.bytes(4_000),
        b.address: seal_update(
            dumps(vector_to_state(ups[4], spec)), own_key, b"\x07" * 32, UpdateOrigin(where, b.address)
        ),
        c.address: seal_update(b"\x80\x04\x95pickle payload", public, b"\x08" * 32, UpdateOrigin(where, c.address)),
        d.address: seal_update(
            dumps(vector_to_state(2 * ups[0], spec)), public, b"\x09" * 32, UpdateOrigin(where, d.address)
        ),
    }
    assert all(isinstance(t.step(pid), Committed) for t in honest)
    cids = {}
    for t in bad:
        cids[t.address] = env.store.put_bytes(pinned[t.address])
        commit(t, pid, 0, cids[t.address], rows[t.address][1])
    assert all(isinstance(t.step(pid), Submitted) for t in honest)
    for t in bad:
        reveal_update(t, pid, 0, cids[t.address], rows[t.address][1])

    aggregator = AggregatorNode(agg, env.store)
    announced = aggregator.step(pid)
    assert isinstance(announced, RejectionsAnnounced)
    assert set(announced.rejected) == {t.address for t in bad}
    assert announced.rejected[a.address].startswith("EnvelopeError")
    assert announced.rejected[b.address].startswith("EnvelopeError")
    assert announced.rejected[c.address].startswith("NotSafetensors")
    assert announced.rejected[d.address].startswith("CommitmentMismatch")
    row_b = rows[b.address][0]
    b.dispute_rejection(pid, 0, published_row(row_b), HashProver().prove_row(row_b))
    close_disputes(agg, pid)
    report = aggregator.step(pid)
    assert isinstance(report, RoundReport) and report.tx_hash
    assert set(report.rejected) == {a.address, c.address, d.address} and b.address in report.published
    trainers = report.trainers
    for t in (a, c, d):
        i = trainers.index(t.address)
        assert report.flags[i] and report.chain_scores[i] == 0
        assert env.admin.trainer_info(pid, t.address).stake_left == STAKE // 2  # slashed as a bad update is
        assert env.admin.record(t.address)[1] == flagged_before[t.address] + 1  # recorded as flagged
    assert set(env.admin.rejected_trainers(pid, 0)) == {a.address, c.address, d.address}
    i = trainers.index(b.address)
    assert not report.flags[i] and report.chain_scores[i] > 0
    assert env.admin.trainer_info(pid, b.address).stake_left == STAKE
    assert env.admin.record(b.address)[1] == flagged_before[b.address]
    assert all(env.admin.withdrawable(pid, h.address) > STAKE for h in honest)

    full = audit_round(env.admin, env.store, pid, 0, project_update_key(agg, pid).open)
    assert full.agrees and {t.trainer for t in full.invalid_updates} == {a.address, c.address, d.address}
    partial = audit_encrypted_round(env.admin, env.store, pid, 0)  # rejected envelopes cannot be judged
    assert partial.agrees
    assert {t.trainer for t in partial.trainers if t.recorded_rejected} == {a.address, c.address, d.address}


def test_a_replayed_envelope_is_rejected_with_whose_it_is_and_an_honest_encrypted_round_pays(env: Env) -> None:
    """Five trainers of an encrypted project, two rounds, all updates along one shared direction (so a stale
    update would score like a fresh one). Round 0 is honest: nobody is rejected and everyone is paid. In round
    1 trainer 0 commits and reveals trainer 1's round-0 envelope (public on IPFS, its commitment on chain), and
    trainer 2 its own round-0 envelope again. The aggregator opens each envelope for the submission that
    revealed it: both replays are rejected with ``EnvelopeOriginMismatch`` naming whose envelope it is, neither
    disputes (trainer 0 cannot: the row its commitment hashes to is trainer 1's, never published), and both are
    flagged and slashed; the three honest trainers are paid."""
    pid = env.project(5, rounds=2)
    agg = env.market(AGGREGATOR)
    publish_update_key(agg, env.keys(AGGREGATOR), pid)
    ups = agreeing_updates(10, seed=51)  # one direction: round 0 gets the first five, round 1 the others
    trainers = [TrainerNode(env.market(FIRST_TRAINER + i), env.store, PerRound([ups[i], ups[5 + i]])) for i in range(5)]
    aggregator = AggregatorNode(agg, env.store)
    assert all(isinstance(t.step(pid), Committed) for t in trainers)
    revealed = {t.address: t.step(pid) for t in trainers}
    assert all(isinstance(r, Submitted) for r in revealed.values())
    first = step_through_disputes(aggregator, pid, trainers)
    assert first is not None and first.tx_hash and first.rejected == {} and not any(first.flags)
    assert all(score > 0 for score in first.chain_scores)  # an honest encrypted round pays everyone

    other, victim, again = env.market(FIRST_TRAINER), trainers[1], env.market(FIRST_TRAINER + 2)
    honest = [trainers[1], trainers[3], trainers[4]]
    replays = {  # what each replayer commits: a round-0 envelope's CID and the commitment on chain beside it
        other.address: (revealed[victim.address].cid, env.admin.commitment(pid, 0, victim.address)),  # type: ignore[union-attr]
        again.address: (revealed[again.address].cid, env.admin.commitment(pid, 0, again.address)),  # type: ignore[union-attr]
    }
    for replayer in (other, again):
        commit(replayer, pid, 1, *replays[replayer.address])
    assert all(isinstance(t.step(pid), Committed) for t in honest)
    assert all(isinstance(t.step(pid), Submitted) for t in honest)
    for replayer in (other, again):
        reveal_update(replayer, pid, 1, *replays[replayer.address])

    announced = aggregator.step(pid)
    assert isinstance(announced, RejectionsAnnounced) and set(announced.rejected) == {other.address, again.address}
    where0, where1 = env.admin.round_address(pid, 0), env.admin.round_address(pid, 1)
    for replayer, author in ((other, victim.address), (again, again.address)):
        why = announced.rejected[replayer.address]
        assert why.startswith("EnvelopeOriginMismatch: ")
        assert f"sealed for {UpdateOrigin(where0, author)}, not for {UpdateOrigin(where1, replayer.address)}" in why
    close_disputes(agg, pid)
    report = aggregator.step(pid)
    assert isinstance(report, RoundReport) and report.tx_hash and report.published == {}
    assert set(report.rejected) == {other.address, again.address}
    for replayer in (other, again):
        i = report.trainers.index(replayer.address)
        assert report.flags[i] and report.chain_scores[i] == 0
        assert env.admin.trainer_info(pid, replayer.address).stake_left == STAKE // 2
    assert set(env.admin.rejected_trainers(pid, 1)) == {other.address, again.address}
    for t in honest:
        i = report.trainers.index(t.address)
        assert not report.flags[i] and report.chain_scores[i] > 0
        assert env.admin.withdrawable(pid, t.address) > STAKE
    assert env.admin.get_project(pid).status is ProjectStatus.FINISHED
    full = audit_round(env.admin, env.store, pid, 1, project_update_key(agg, pid).open)
    assert full.agrees and {t.trainer for t in full.invalid_updates} == {other.address, again.address}


def test_a_record_naming_another_contract_as_update_keys_is_refused_naming_both_addresses(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-made deployment record can name any contract as the market's ``UpdateKeys``. The attacker's
    (``FakeUpdateKeys``: its ``market()`` answers the real market, but anyone publishes any key, and the attacker
    published its own for a project), the genuine code deployed for another market, and an address without code
    are each refused (``UnexpectedUpdateKeys``, naming the record's contract and the market): by the library,
    the trainer and aggregator nodes, and the commands. The record ``deploy`` wrote still loads."""
    pid = env.project(2)
    attacker = env.market(STRANGER)
    market = env.admin.market.address
    fake_artifacts = compile_contracts([FIXTURES / "fake_update_keys"], tmp_path / "fake.json")
    fake = attacker.chain.deploy(fake_artifacts["FakeUpdateKeys"], market)
    attacker_key = project_update_key(attacker, pid).public
    attacker.chain.transact(fake.functions.publishKey(pid, attacker_key))
    genuine_code = compile_contracts()
    other_lens = attacker.chain.deploy(genuine_code["MarketLens"], attacker.address)  # the lens of another "market"
    elsewhere = attacker.chain.deploy(genuine_code[UPDATE_KEYS], other_lens.address)  # genuine, not ours
    genuine = Deployment.model_validate_json(deployment_path("local").read_text())
    refused = {
        fake.address: "its code is not the UpdateKeys compiled from contracts/UpdateKeys.sol",
        elsewhere.address: f"it holds the keys of the market {attacker.address}",
        attacker.address: "no contract is deployed there",
    }
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "hand-made"))
    trainer = env.market(FIRST_TRAINER)
    for address, why in refused.items():
        contracts = {**genuine.contracts, UPDATE_KEYS: DeployedContract(address=address, block_number=0)}
        write_deployment(genuine.model_copy(update={"contracts": contracts}))
        expected = f"names {address} as the UpdateKeys of the market {market}, but {why}"
        with pytest.raises(UnexpectedUpdateKeys, match=re.escape(expected)) as refusal:
            recorded_update_keys(trainer)
        assert (refusal.value.update_keys, refusal.value.market) == (address, market)
        with pytest.raises(UnexpectedUpdateKeys):  # rather than encrypt its updates to the attacker's key
            TrainerNode(trainer, env.store, PerRound(agreeing_updates(1, seed=1)))
        with pytest.raises(UnexpectedUpdateKeys):
            AggregatorNode(env.market(AGGREGATOR), env.store)
        assert expected in cli("project", "show", str(pid), code=1)
    read = UpdateKeysClient(trainer.chain, trainer.chain.contract(fake_artifacts["FakeUpdateKeys"], fake.address))
    assert read.key_of(pid) == attacker_key and read.market_address() == market  # what the nodes would have used

    write_deployment(genuine)
    keys = recorded_update_keys(trainer)
    assert keys is not None and keys.address == genuine.address(UPDATE_KEYS) and keys.market_address() == market


def test_a_key_published_late_applies_from_each_trainers_next_commit(env: Env) -> None:
    """The aggregator publishes the key in the middle of round 0's commit phase: the trainers that committed
    before pinned their updates in the clear (public, and staying so), the others encrypt; the aggregator reads
    both, and every update of the next round is encrypted."""
    pid = env.project(4, rounds=2)
    updates = [agreeing_updates(4, seed=31), agreeing_updates(4, seed=32)]
    trainers = [
        TrainerNode(env.market(FIRST_TRAINER + i), env.store, PerRound([u[i] for u in updates])) for i in range(4)
    ]
    aggregator = AggregatorNode(env.market(AGGREGATOR), env.store)
    early = [t.step(pid) for t in trainers[:2]]
    publish_update_key(env.market(AGGREGATOR), env.keys(AGGREGATOR), pid)
    late = [t.step(pid) for t in trainers[2:]]
    committed = early + late
    assert all(isinstance(c, Committed) for c in committed)
    encrypted = [is_envelope(env.store.get_bytes(c.cid)) for c in committed]  # type: ignore[union-attr]
    assert encrypted == [False, False, True, True]
    for t in trainers:
        assert isinstance(t.step(pid), Submitted)
    report = step_through_disputes(aggregator, pid, trainers)
    assert report is not None and report.rejected == {} and not any(report.flags)
    committed = [t.step(pid) for t in trainers]
    assert all(isinstance(c, Committed) and is_envelope(env.store.get_bytes(c.cid)) for c in committed)
    for t in trainers:
        assert isinstance(t.step(pid), Submitted)
    report = step_through_disputes(aggregator, pid, trainers)
    assert report is not None and report.rejected == {} and not any(report.flags)


def test_the_command_line_publishes_the_key_shows_it_and_audits_what_it_can(env: Env, tmp_path: Path) -> None:
    """``aggregator publish-key`` (the aggregator only, once), ``project show`` (encrypted or public), ``audit``
    without the key (exit 3: what the public can check agrees; what it cannot check is listed) and with the key
    ``aggregator export-key`` writes (exit 0: the whole round)."""
    pid = env.project(4)
    assert "public on IPFS: anyone can read them" in cli("project", "show", str(pid))
    out = cli("aggregator", "publish-key", "--project", str(pid), "--dev-account", str(OWNER), code=1)
    assert "NotTheAggregator" in out
    out = cli("aggregator", "publish-key", "--project", str(pid), "--dev-account", str(AGGREGATOR))
    key = project_update_key(env.market(AGGREGATOR), pid).public
    assert f"updates are encrypted to 0x{key.hex()}" in out
    assert "KeyAlreadyPublished" in cli(
        "aggregator", "publish-key", "--project", str(pid), "--dev-account", str(AGGREGATOR), code=1
    )
    out = cli("project", "show", str(pid))
    assert f"encrypted to the aggregator's key 0x{key.hex()}" in out and "only the aggregator can read them" in out

    run_job(env, pid, [agreeing_updates(4, seed=41)])
    out = cli("audit", str(pid), "0", code=3)
    assert out.count("encrypted, served") == 4 and out.count("not checked") == 5
    assert "the local test verifier, whose proof proves nothing" in out and "a valid model" in out
    for item in NOT_CHECKED_WHEN_ENCRYPTED:
        assert item in out
    assert "checks out in part" in out and "not a full audit" in out

    secret = tmp_path / "update.key"
    out = cli("aggregator", "export-key", "--project", str(pid), "--out", str(secret), "--dev-account", "2")
    assert str(secret) in out and key.hex() in out
    assert project_update_key(env.market(AGGREGATOR), pid).secret.hex() not in out  # written, never printed
    assert os.stat(secret).st_mode & 0o777 == 0o600
    cli("aggregator", "export-key", "--project", str(pid), "--out", str(secret), "--dev-account", "2", code=1)
    out = cli("audit", str(pid), "0", "--update-key", str(secret))
    assert "round 0 checks out: 0 invalid update(s)" in out and "recomputed bit for bit" in out
    public = env.project(2, join=False)
    assert "updates are public" in cli("audit", str(public), "0", "--update-key", str(secret), code=1)
    wrong = tmp_path / "wrong.key"
    wrong.write_text(project_update_key(env.market(OWNER), pid).secret.hex())
    assert "is not the one this project's updates are encrypted to" in cli(
        "audit", str(pid), "0", "--update-key", str(wrong), code=1
    )
