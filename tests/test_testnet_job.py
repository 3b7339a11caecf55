"""A whole job on a stand-in for a public testnet, each role a separate party (issue 13, "Done when").

The chain is an anvil with Sepolia's chain id (11155111, not the development one) behind an RPC proxy that
refuses ``eth_getLogs`` over more than 10,000 blocks, as public providers do, with the market deployed 5,000
block numbers up and the chain then 25,000 numbers past it (``jump`` of tests/test_paged_logs.py). Every party
has its own keystore (fresh keys, funded as a faucet would) whose password is only in
``MARKETPLACE_KEYSTORE_PASSWORD``, and its own folders (network profiles, deployment records, zk key cache),
as if on its own machine:

- the market admin: ``network init``, ``deploy``, ``zk setup --srs`` and ``zk deploy --srs`` (4 x 32 circuit)
  with a stand-in ceremony SRS file, then publishes its deployment record;
- the project owner: ``network init``, the admin's record copied, ``model init``, ``project create`` (3 trainers,
  2 rounds; the verifier is the recorded one);
- three trainers: :class:`TrainerNode` with a :class:`MarketClient` from their own profile and keystore;
- the aggregator: the admin's published key folder in its own key cache (not the admin's), checked by
  ``zk setup --srs FILE --size 4x32`` (see below why not rebuilt), then
  :class:`AggregatorNode` proving each round with ezkl (``srs=FILE``, checked against the verifier's key);
- anyone: ``verify`` and ``audit`` of each round (CLI and library), with no key at all.

Then everyone withdraws, and what was withdrawn is what was escrowed (budget, fee and stakes).

About 90-170 s on 2 shared cores (two key setups of the 4 x 32 circuit, the admin's and the aggregator's, and
two proofs): marked heavy (``make test-heavy``, which CI runs after ``make test``) to keep ``make test`` within
its time budget.
"""

# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import ezkl
import pytest
from typer.testing import CliRunner

from marketplace.adapters.chain.accounts import create_keystore
from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.chain.client import LOG_BLOCK_RANGE_ENV, ChainClient
from marketplace.adapters.chain.config import deployment_path
from marketplace.adapters.chain.deploy import MARKET, connect, read_record
from marketplace.adapters.chain.market import MarketClient, ProjectStatus
from marketplace.adapters.ezkl.keys import cached_keys, sha256_file
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.cli.main import app
from marketplace.fl.data import load_npz, partition_digits
from marketplace.roles.aggregator import AggregatorNode
from marketplace.roles.audit import audit_round
from marketplace.roles.trainer import Committed, LocalTraining, Submitted, TrainerNode, TrainingSettings
from marketplace.roles.verify import verify_round
from tests.disputes import step_through_disputes
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.test_paged_logs import LIMIT, RangeLimitedProxy, jump

ETH = 10**18
CHAIN_ID = 11155111  # Sepolia's
NETWORK = "testnet"
TRAINERS = 3
ROUNDS = 2
SRS_LOGROWS = 15  # the 4 x 32 round circuit's logrows: the stand-in ceremony SRS is exactly that large
PASSWORD = "testnet-job-pw"
ROLES = ("admin", "owner", "aggregator", *(f"trainer{i}" for i in range(TRAINERS)))
ENV = ("MARKETPLACE_RPC_URL", "MARKETPLACE_CHAIN_ID", "MARKETPLACE_KEYSTORE", "MARKETPLACE_PRIVATE_KEY")


class Party:
    """One role on its own machine: its keystore and its folders (profiles, deployment records, zk keys)."""

    def __init__(self, name: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.name = name
        self.home = home
        self.keystore = home / f"{name}.json"
        self._monkeypatch = monkeypatch
        key = "0x" + hashlib.sha256(f"testnet-job/{name}".encode()).hexdigest()  # not an anvil dev key
        self.address = create_keystore(self.keystore, PASSWORD, key, kdf_iterations=2)

    @property
    def zk_cache(self) -> Path:
        return self.home / "zk"

    @property
    def deployments(self) -> Path:
        return self.home / "deployments"

    def enter(self) -> Party:
        """Makes this party's folders and password the environment the CLI and the roles read."""
        mp = self._monkeypatch
        mp.setenv("MARKETPLACE_STATE_DIR", str(self.home / "state"))
        mp.setenv("MARKETPLACE_NETWORKS_DIR", str(self.home / "networks"))
        mp.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(self.deployments))
        mp.setenv("MARKETPLACE_ZK_CACHE", str(self.zk_cache))
        mp.setenv("MARKETPLACE_KEYSTORE_PASSWORD", PASSWORD)
        return self

    def cli(self, *args: str) -> str:
        """Runs ``marketplace *args`` as this party; asserts success; returns the output, whitespace collapsed."""
        self.enter()
        result = CliRunner().invoke(app, list(args), terminal_width=300)
        assert result.exit_code == 0 and "Traceback" not in result.output, (self.name, args, result.output)
        return " ".join(result.output.split())

    def init_network(self, rpc_url: str, *, keystore: bool = True) -> None:
        """``marketplace network init testnet`` with this party's keystore (none for a reader)."""
        args = ["network", "init", NETWORK, "--rpc-url", rpc_url, "--chain-id", str(CHAIN_ID)]
        out = self.cli(*args, *(["--keystore", str(self.keystore)] if keystore else []))
        assert f"chain id {CHAIN_ID}" in out

    def receive_record(self, admin: Party) -> None:
        """Copies the admin's published deployment record into this party's deployments folder."""
        self.deployments.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(admin.deployments / f"{NETWORK}.json", self.deployments / f"{NETWORK}.json")

    def market(self, *, read_only: bool = False) -> MarketClient:
        """The market from this party's record and profile, signing with its keystore."""
        self.enter()
        return connect(NETWORK, read_only=read_only)


@pytest.mark.heavy  # ~2-3 min: run by make test-heavy (CI runs it after make test)
def test_a_whole_job_on_a_testnet_as_separate_parties(
    ipfs_node: LocalIpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(LOG_BLOCK_RANGE_ENV, raising=False)
    store = ModelStore(IpfsClient(ipfs_node.api_url))
    ipfs = ipfs_node.api_url
    parties = {name: Party(name, tmp_path / name, monkeypatch) for name in ROLES}
    admin, owner, aggregator = parties["admin"], parties["owner"], parties["aggregator"]
    trainers = [parties[f"trainer{i}"] for i in range(TRAINERS)]
    reader = Party("anyone", tmp_path / "anyone", monkeypatch)
    ceremony = tmp_path / "published" / "ceremony.srs"  # the public ceremony file everyone downloads
    ceremony.parent.mkdir()
    ezkl.gen_srs(str(ceremony), SRS_LOGROWS)

    with AnvilNode(chain_id=CHAIN_ID) as anvil:
        faucet = ChainClient(anvil.url, expected_chain_id=CHAIN_ID)
        for party in parties.values():
            faucet.set_balance(party.address, 10 * ETH)
        jump(faucet, 5_000)
        proxy = RangeLimitedProxy(anvil.url)
        try:
            for party in [*parties.values()]:
                party.init_network(proxy.url)
            reader.init_network(proxy.url, keystore=False)

            # (a) The admin deploys the market and a zk verifier with the ceremony SRS, and publishes the record.
            assert "TestRoundVerifier" not in admin.cli("deploy", "--network", NETWORK, "--challenge-period", "0")
            admin.cli("zk", "setup", "--srs", str(ceremony), "--max-trainers", "4")
            out = admin.cli("zk", "deploy", "--network", NETWORK, "--max-trainers", "4", "--srs", str(ceremony))
            assert "DEVELOPMENT" not in out and "approved" in out
            admin.enter()
            record = read_record(NETWORK)
            assert record is not None and record.chain_id == CHAIN_ID
            [verifier] = record.zk_verifiers
            assert (verifier.size, verifier.approved, verifier.development_srs) == ("4x32", True, False)
            assert verifier.srs_sha256 == sha256_file(ceremony)
            assert deployment_path(NETWORK).is_file()
            deploy_block = record.contracts[MARKET].block_number
            assert deploy_block > 5_000
            for party in [*parties.values(), reader]:
                if party is not admin:
                    party.receive_record(admin)
            jump(faucet, 25_000)

            # The aggregator's keys: the admin publishes its key folder beside the SRS file, and the aggregator
            # puts it in its own, separate cache. (Rebuilding them from the SRS file is not enough with ezkl 23.0.5:
            # two setups of the same circuit from the same SRS can give different verifying keys, because
            # gen_settings writes the einsum parameters from hash maps in a random order. `zk setup` below finds
            # the published keys, checks them, and builds nothing.)
            folder = f"srs-{verifier.srs_sha256[:16]}"
            shutil.copytree(admin.zk_cache / folder, aggregator.zk_cache / folder)
            out = aggregator.cli("zk", "setup", "--srs", str(ceremony), "--size", "4x32")
            assert sha256_file(ceremony) in out
            aggregator.enter()
            [agg_keys] = cached_keys(4, 32)
            assert agg_keys.root.is_relative_to(aggregator.zk_cache) and not agg_keys.development_srs
            assert agg_keys.srs_sha256 == verifier.srs_sha256

            # (b) The owner posts the job on the recorded verifier.
            cid = owner.cli("model", "init", "--model", "mlp", "--ipfs-api", ipfs).split()[-1]
            out = owner.cli(
                *("project", "create", "--network", NETWORK, "--initial-cid", cid, "--model", "mlp"),
                *("--rounds", str(ROUNDS), "--min-trainers", str(TRAINERS), "--max-trainers", str(TRAINERS)),
                *("--budget", "1", "--fee", "0.1", "--stake", "0.01", "--aggregator", aggregator.address),
                *("--submission-period", "300", "--reveal-period", "300", "--aggregation-period", "300"),
            )
            assert f"verifier {verifier.address}" in out and "project 1 created" in out
            pid = 1

            # (c) Each trainer joins from its own keystore; the last join starts training.
            shards = partition_digits(TRAINERS, "iid", seed=5, out_dir=tmp_path / "shards")
            nodes = [
                TrainerNode(t.market(), store, LocalTraining(load_npz(shards[i]), TrainingSettings(epochs=1)))
                for i, t in enumerate(trainers)
            ]
            assert [n.address for n in nodes] == [t.address for t in trainers]
            nodes[0].join(pid)
            jump(faucet, 12_000)  # the project's own history spans more than the provider's range too
            for n in nodes[1:]:
                n.join(pid)

            # (d) The aggregator proves every round with its own keys.
            node = AggregatorNode(aggregator.market(), store, srs=ceremony)
            for round_ in range(ROUNDS):
                assert all(isinstance(n.step(pid), Committed) for n in nodes)
                assert all(isinstance(n.step(pid), Submitted) for n in nodes)
                aggregator.enter()  # its key cache is the one the prover reads
                report = step_through_disputes(node, pid, nodes)
                assert report is not None and report.round == round_ and report.tx_hash
                assert report.prover == "ezkl-gram"

            # (e) Anyone checks every round, without a key.
            public = reader.market(read_only=True)
            assert public.get_project(pid).status is ProjectStatus.FINISHED
            assert [r.round for r in public.finalized_rounds(pid)] == list(range(ROUNDS))
            for round_ in range(ROUNDS):
                check = verify_round(public, pid, round_, store)
                assert check.valid and check.document_agrees, check
                assert audit_round(public, store, pid, round_).agrees
                assert "valid" in reader.cli("verify", str(pid), str(round_), "--network", NETWORK, "--ipfs-api", ipfs)
                out = reader.cli("audit", str(pid), str(round_), "--network", NETWORK, "--ipfs-api", ipfs)
                assert f"round {round_} checks out" in out

            # Everyone withdraws: what was escrowed (budget + fee) and staked comes back, to the wei.
            project = public.get_project(pid)
            withdrawn = [n.market.withdraw(pid) for n in nodes]
            withdrawn.append(owner.market().withdraw(pid))
            withdrawn.append(aggregator.market().withdraw(pid))
            assert all(w > ETH // 100 for w in withdrawn[:TRAINERS])  # stake back plus a reward
            assert sum(withdrawn) == project.reward_budget + project.aggregator_fee + TRAINERS * project.stake

            # Every log query went to the provider from the deployment block on, within its range.
            assert proxy.ranges and min(lo for lo, _, _ in proxy.ranges) == deploy_block
            assert all(hi - lo + 1 <= LIMIT and not refused for lo, hi, refused in proxy.ranges)
        finally:
            proxy.close()
