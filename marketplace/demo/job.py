"""The main job: a whole marketplace run on an embedded default stack.

Starts a local chain (anvil) and, on 127.0.0.1, one IPFS node per participant in a private swarm
(:mod:`marketplace.demo.swarm`; or one node for everyone: ``shared_ipfs``, or the node it is given),
deploys the contracts, and then plays every role, each participant through its own node: the owner
posts a job with escrow, trainers (some of them malicious) join, train on their private shards and
submit round by round, the owner commits and reveals a reference row each round from its validation
data (unless ``reference`` is off: docs/design/robust-reference.md), the aggregator flags, scores
(with the owner's reference), aggregates and finalizes each round, and finally everyone withdraws what the
project owes it and the rejection bonds credited to it (a disputing trainer's reimbursement, the aggregator's
returned bonds), as ``marketplace project withdraw`` does. Prints a table per round (and what the owner's reference
changed) and a payout table, whose totals add up: escrow + bonds posted = paid out + bonds withdrawn; with a swarm,
an auditor re-derives the last round through its own node and a table shows each node's swarm
traffic. Writes a plot.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.config import Deployment
from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.market import MarketClient, ProjectConfig
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.demo.adversaries import update_source
from marketplace.demo.attacks import Attack
from marketplace.demo.swarm import (
    AGGREGATOR,
    AUDITOR,
    OWNER,
    DemoSwarm,
    SwarmReport,
    demo_swarm,
    participant_names,
    swarm_table,
    trainer_name,
)
from marketplace.fl.data import TEST_FILE, VALIDATION_FILE, load_npz, partition_digits
from marketplace.fl.models import build_model
from marketplace.fl.train import evaluate
from marketplace.protocol.model_card import ModelCard, card_metadata
from marketplace.roles.aggregator import AggregatorNode, RejectionsAnnounced, RoundReport
from marketplace.roles.audit import audit_round
from marketplace.roles.owner import OwnerReferenceNode, ReferenceCommitted, ReferenceOutcome, ReferenceRevealed
from marketplace.roles.trainer import (
    Committed,
    Disputed,
    DisputeRefused,
    LocalTraining,
    RevealVia,
    StepOutcome,
    Submitted,
    TrainerNode,
    TrainingSettings,
)
from marketplace.round.commit_inbox import CommitInbox, InboxServer
from marketplace.round.score import ReferenceEffect

ETH = 10**18


@dataclass
class DemoConfig:
    """What the demo job looks like."""

    trainers: int = 8
    attacks: list[Attack] = field(default_factory=lambda: [Attack.SIGN_FLIP, Attack.FREE_RIDER_ZERO])
    rounds: int = 5
    model: str = "mlp"
    partition: str = "iid"
    alpha: float = 0.5
    epochs: int = 2
    lr: float = 0.5
    budget_eth: int = 8
    fee_eth: float = 0.5
    stake_eth: float = 0.1
    slash_bps: int = 5_000
    seed: int = 0
    plot: Path | None = Path("reports/demo.png")
    workdir: Path | None = None
    zk: bool = True  # real ezkl proofs checked on chain; False: the local test verifier (no proof)
    ipfs_api: str | None = None  # the Kubo RPC URL of an IPFS node for everyone; None: start local node(s)
    shared_ipfs: bool = False  # one local node for every participant; False: one node each, in a private swarm
    reference: bool = True  # the owner commits and reveals a reference row each round (its validation data)

    @property
    def shared(self) -> bool:
        """Whether every participant uses one IPFS node (``shared_ipfs``, or an external node given)."""
        return self.shared_ipfs or bool(self.ipfs_api)

    def participants(self, web: bool = False) -> list[str]:
        """The participants that get their own IPFS node: none when the node is shared."""
        return [] if self.shared else participant_names(self.trainers, web=web)


@dataclass
class DemoResult:
    project_id: int
    reports: list[RoundReport]
    payouts: dict[str, int]
    escrowed: int
    roles: dict[str, str]
    initial_accuracy: float
    plot: Path | None
    swarm: SwarmReport | None = None  # the swarm at the end; None with one shared node
    audit_agrees: bool | None = None  # whether the auditor's re-derivation of the last round agreed
    bonds: dict[str, int] = field(default_factory=dict)  # rejection bonds each withdrew (reimbursed, returned)
    bonds_posted: int = 0  # rejection bonds the aggregator posted: sum(bonds.values()) once every round is over


@dataclass
class LocalStack:
    """A running local chain + IPFS node(s) with the marketplace deployed.

    ``store`` (on ``ipfs_api``) is the shared node's, or with a ``swarm`` the owner's; :meth:`store_of`
    gives each participant the store of its own node."""

    chain_url: str
    ipfs_api: str
    admin: MarketClient
    deployment: Deployment
    store: ModelStore
    accounts: list[LocalAccount]
    swarm: DemoSwarm | None = None

    def store_of(self, participant: str) -> ModelStore:
        """The store of ``participant``'s own node in the swarm, or the shared one without a swarm;
        ValueError if the swarm has no node for it."""
        return self.swarm.store(participant) if self.swarm else self.store


@contextmanager
def local_stack(
    workdir: Path,
    n_accounts: int,
    ipfs_api: str | None = None,
    participants: Sequence[str] = (),
    console: Console | None = None,
) -> Iterator[LocalStack]:
    """Starts anvil on a free loopback port and IPFS: with ``participants`` (owner and aggregator first,
    see :func:`~marketplace.demo.swarm.participant_names`) one node for each in a private swarm (its start
    shown on ``console``), else one node for everyone, or none if ``ipfs_api`` names one to use (checked
    to answer first: :class:`~marketplace.adapters.ipfs.errors.StorageError` if not); deploys, and stops
    what it started on exit. ValueError for ``participants`` with ``ipfs_api``."""
    if ipfs_api and participants:
        raise ValueError("an IPFS node given by its API is shared by every participant: no swarm of nodes")
    accounts = dev_accounts(n_accounts)
    with ExitStack() as started:
        anvil = started.enter_context(AnvilNode())
        swarm = None
        if participants:
            swarm = started.enter_context(demo_swarm(workdir / "ipfs", participants, console))
            ipfs = swarm.store(OWNER).client
        else:
            ipfs = started.enter_context(_ipfs_client(workdir, ipfs_api))
        admin_chain = ChainClient(anvil.url, accounts[0])
        for account in accounts:
            admin_chain.set_balance(account.address, 1_000 * ETH)
        deployment = deploy_marketplace(admin_chain)
        admin = market_client(admin_chain, deployment)
        yield LocalStack(anvil.url, ipfs.api_url, admin, deployment, ModelStore(ipfs), accounts, swarm)


@contextmanager
def _ipfs_client(workdir: Path, ipfs_api: str | None) -> Iterator[IpfsClient]:
    """A client of the node at ``ipfs_api`` (once it answered), else of a local node started in ``workdir``."""
    if ipfs_api:
        with IpfsClient(ipfs_api) as client:
            client.version()
            yield client
        return
    with LocalIpfsNode(workdir / "ipfs") as node, node.client() as client:
        yield client


def run_demo(config: DemoConfig, console: Console | None = None, stack: LocalStack | None = None) -> DemoResult:
    """Runs the demo job; starts (and stops) its own stack unless one is given (then each participant uses
    its own node if the stack has a swarm, else the stack's one node)."""
    console = console or Console()
    if stack is None:
        with tempfile.TemporaryDirectory(prefix="marketplace-demo-") as tmp:
            workdir = config.workdir or Path(tmp)
            with started_stack(config, console, workdir) as s:
                return _run(config, console, s, workdir)
    return _run(config, console, stack, config.workdir or Path(tempfile.mkdtemp(prefix="marketplace-demo-")))


@contextmanager
def started_stack(config: DemoConfig, console: Console, workdir: Path, web: bool = False) -> Iterator[LocalStack]:
    """:func:`local_stack` for ``config`` (a node per participant, the web server's too if ``web``, unless
    the node is shared), saying what it started on ``console``."""
    starting = "starting a local chain" + ("" if config.ipfs_api else " and IPFS node" + ("" if config.shared else "s"))
    with ExitStack() as started:
        with console.status(starting):
            participants = config.participants(web)
            stack = started.enter_context(
                local_stack(workdir, config.trainers + 3, config.ipfs_api, participants, console)
            )
        console.print(
            f"chain [bold]{stack.chain_url}[/bold]   IPFS API [bold]{stack.ipfs_api}[/bold] {_ipfs_note(config, stack)}"
        )
        yield stack


def _ipfs_note(config: DemoConfig, stack: LocalStack) -> str:
    """What the IPFS API printed before it is: whose node, and whether the others share it."""
    if stack.swarm:
        n = len(stack.swarm.participants)
        return (
            f"(the owner's; each of the {n} participants has its own node, started in "
            f"{stack.swarm.start_seconds:.1f} s, all in a private swarm; --shared-ipfs: one for all)"
        )
    if config.ipfs_api:
        return "(the node you gave, shared by every participant)"
    return "(one node shared by every participant: --shared-ipfs)"


def _run(config: DemoConfig, console: Console, stack: LocalStack, workdir: Path) -> DemoResult:
    """:func:`_play` with the aggregator's commit inbox served on 127.0.0.1 (trainers hand it their signed commits,
    as with ``trainer run --commit-via``)."""
    with InboxServer(CommitInbox(stack.admin.as_account(stack.accounts[2]))) as inbox:
        return _play(config, console, stack, workdir, inbox)


def _play(config: DemoConfig, console: Console, stack: LocalStack, workdir: Path, inbox: InboxServer) -> DemoResult:
    n = config.trainers
    if len(config.attacks) >= n:
        raise ValueError("at least one trainer must be honest")
    owner = stack.admin.as_account(stack.accounts[1])
    aggregator_client = stack.admin.as_account(stack.accounts[2])
    attacks = [Attack.NONE] * (n - len(config.attacks)) + list(config.attacks)

    # The data: one private shard per trainer; the owner keeps a held-out test set.
    shards = partition_digits(n, config.partition, alpha=config.alpha, seed=config.seed, out_dir=workdir / "shards")
    test = load_npz(workdir / "shards" / TEST_FILE)

    # Owner: initial weights to IPFS, then the job with escrow.
    initial = build_model(config.model, seed=config.seed).state_dict()
    card = ModelCard(
        task="Classify 8x8 images of handwritten digits (0-9)",
        data=f"scikit-learn's digits, split into {n} private shards ({config.partition}), one per trainer",
        metric="accuracy on the owner's held-out test set",
    )  # the model card travels in the initial weights' header (the contract keeps their CID only)
    initial_cid = stack.store_of(OWNER).put_tensors(initial, {"kind": "model", "round": "0", **card_metadata(card)})
    _, initial_accuracy = evaluate(config.model, initial, test.x, test.y)
    verifier = deploy_zk_round_verifier(stack, n, console) if config.zk else stack.deployment.address(TEST_VERIFIER)
    cfg = ProjectConfig(
        aggregator=aggregator_client.address,
        verifier=verifier,
        reward_budget=config.budget_eth * ETH,
        aggregator_fee=int(config.fee_eth * ETH),
        stake=int(config.stake_eth * ETH),
        rounds=config.rounds,
        min_trainers=n,
        max_trainers=n,
        slash_bps=config.slash_bps,
        model_name=config.model,
        initial_model_cid=initial_cid,
    )
    pid = owner.create_project(cfg)
    console.print(
        f"owner {owner.address[:10]}… posted project [bold]{pid}[/bold]: {config.rounds} rounds of {config.model}, "
        f"{config.budget_eth} ETH budget + {config.fee_eth} ETH aggregator fee escrowed "
        f"({_eth(cfg.protocol_fee)} ETH protocol fee burned); "
        f"initial test accuracy {initial_accuracy:.1%}"
    )
    if config.reference:  # every round's commit phase waits for the owner's reference (no trainer can shut it out)
        owner.expect_reference(pid)
        console.print("owner: every round's commit phase waits for its reference (expectReference)")

    trainer_accounts = stack.accounts[3 : 3 + n]
    sybil_group: dict[tuple[int, int], np.ndarray] = {}  # the Sybils' crafted updates, shared off chain
    trainers = [
        TrainerNode(
            stack.admin.as_account(trainer_accounts[i]),
            stack.store_of(trainer_name(i)),
            update_source(
                attacks[i],
                load_npz(shards[i]),
                TrainingSettings(epochs=config.epochs, lr=config.lr, seed=config.seed + i),
                group=sybil_group,
            ),
            reveal_via=RevealVia.AGGREGATOR,  # openings handed to the aggregator's reveal batch, as `trainer run`
            commit_inbox=inbox.url,  # signed commits handed to the aggregator's commit batch
        )
        for i in range(n)
    ]
    roles = {t.address: "honest" if attacks[i] is Attack.NONE else attacks[i].value for i, t in enumerate(trainers)}
    for t in trainers:
        t.join(pid)
    console.print(
        f"{n} trainers joined with {config.stake_eth} ETH stake each; "
        f"malicious: {', '.join(f'#{i} {a.value}' for i, a in enumerate(attacks) if a is not Attack.NONE) or 'none'}"
    )
    aggregator = AggregatorNode(
        aggregator_client, stack.store_of(AGGREGATOR), evaluation=test, commit_inbox=inbox.inbox
    )
    reference = _reference_node(config, stack, owner, workdir, console)

    reports: list[RoundReport] = []
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    for round_ in range(config.rounds):
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"round {round_}: local training and commits", total=2 * n)
            if reference is not None:  # the owner commits its reference as the round opens
                _reference_step(reference, pid, console)
            for t in trainers:  # commit phase: every trainer seals its submission and hands its signed commit over
                outcome = t.step(pid)
                if not isinstance(outcome, Committed) and outcome is not StepOutcome.WAITING_FOR_COMMIT_BATCH:
                    console.print(f"  trainer {t.address[:10]}…: {outcome}")
                progress.advance(task)
            _commit_in_batch(aggregator, owner, pid, trainers, console)
            progress.update(task, description=f"round {round_}: reveals")
            _open_reveals(owner, pid)
            for t in trainers:  # the reveal phase is open: each publishes its opening for the aggregator
                outcome = t.step(pid)
                if not isinstance(outcome, Submitted | StepOutcome):
                    console.print(f"  trainer {t.address[:10]}…: {outcome}")
                progress.advance(task)
            _reveal_in_batch(aggregator, owner, pid, trainers, console)
            if reference is not None:  # the reveal phase is open: the owner reveals its reference
                _reference_step(reference, pid, console)
            progress.update(task, description=f"round {round_}: scoring{' and proving' if config.zk else ''}")
            report = aggregator.step(pid)
            if isinstance(report, RejectionsAnnounced):
                progress.update(task, description=f"round {round_}: disputes of rejected submissions")
                for t in trainers:  # a rejected trainer publishes its committed row
                    outcome = t.step(pid)
                    if isinstance(outcome, Disputed):
                        console.print(f"  trainer {t.address[:10]}… disputed its rejection: published its row")
                    elif isinstance(outcome, DisputeRefused):
                        console.print(
                            f"  trainer {t.address[:10]}…: its dispute is refused, its row was published in round "
                            f"{outcome.published_in} already; the rejection stands"
                        )
                close_disputes(owner, pid)
                report = aggregator.step(pid)
        if not isinstance(report, RoundReport):
            raise RuntimeError(f"round {round_} was not due for aggregation")
        reports.append(report)
        console.print(_round_table(report, roles))
        if reference is not None:
            console.print(f"  {_reference_words(report, roles)}")

    payouts, bonds = _withdraw_all(pid, [owner, aggregator_client, *(t.market for t in trainers)])
    escrowed = cfg.escrow + n * cfg.stake
    posted = stack.admin.bonds_posted(pid)
    parties = Parties(roles, owner.address, aggregator_client.address)
    console.print(payout_table(stack, pid, payouts, bonds, parties, escrowed, posted))
    audit_agrees = (
        _audit(stack, pid, reports[-1].round, console) if stack.swarm and AUDITOR in stack.swarm.participants else None
    )
    swarm = stack.swarm.report() if stack.swarm else None
    if swarm:
        console.print(swarm_table(swarm))
    plot = _plot(config.plot, reports, roles, initial_accuracy) if config.plot else None
    if plot:
        console.print(f"plot written to [bold]{plot}[/bold]")
    return DemoResult(
        pid, reports, payouts, escrowed, roles, initial_accuracy, plot, swarm, audit_agrees, bonds, posted
    )


def _withdraw_all(pid: int, clients: Sequence[MarketClient]) -> tuple[dict[str, int], dict[str, int]]:
    """Everyone withdraws, as ``marketplace project withdraw`` does: the rejection bonds credited to it (the project's
    held bonds of rounds over returned to the aggregator first: :meth:`MarketClient.collect_bonds`), then what the
    project owes it. Returns the wei each withdrew from the project and in bonds, by address."""
    payouts, bonds = {}, {}
    for client in clients:
        bonds[client.address] = client.collect_bonds(pid)
        owed = client.withdrawable(pid, client.address)
        payouts[client.address] = client.withdraw(pid) if owed > 0 else 0
    return payouts, bonds


def _reference_node(
    config: DemoConfig, stack: LocalStack, owner: MarketClient, workdir: Path, console: Console
) -> OwnerReferenceNode | None:
    """The owner's reference node, training on the owner's validation set as the trainers train (None if
    ``config.reference`` is off)."""
    if not config.reference:
        return None
    validation = load_npz(workdir / "shards" / VALIDATION_FILE)
    settings = TrainingSettings(epochs=config.epochs, lr=config.lr, seed=config.seed + 10_000)
    console.print(
        f"owner: commits a reference row each round from its {len(validation)} validation samples "
        "(it may unpay a below-median trainer that disagrees with it, or pay one the rule drops; --no-reference: off)"
    )
    return OwnerReferenceNode(owner, stack.store_of(OWNER), LocalTraining(validation, settings))


def _reference_step(node: OwnerReferenceNode, pid: int, console: Console) -> None:
    """One step of the owner's reference node, said on ``console`` unless it committed or revealed as planned."""
    outcome = node.step(pid)
    if isinstance(outcome, ReferenceRevealed):
        console.print(f"  owner revealed its reference (gas {outcome.gas_used:,})")
    elif not isinstance(outcome, ReferenceCommitted) and outcome is not ReferenceOutcome.REVEALED:
        console.print(f"  owner's reference: {outcome}")


def _reference_words(report: RoundReport, roles: dict[str, str]) -> str:
    """What the owner's reference did in the round, naming trainers as the round table does."""
    if report.reference is None:
        return "the owner revealed no reference: paid by the rule without it"
    return report.reference.summary([f"#{i} ({roles.get(t, '?')})" for i, t in enumerate(report.trainers)])


def _audit(stack: LocalStack, pid: int, round_: int, console: Console) -> bool:
    """The auditor re-derives round ``round_`` from the chain and its own node (which fetches the round's data
    from the swarm) and says whether the flags, scores and model agree with what was finalized."""
    with console.status(f"auditor: re-deriving round {round_} from the chain and the swarm"):
        report = audit_round(stack.admin, stack.store_of(AUDITOR), pid, round_)
    verdict = "[green]agree[/green]" if report.agrees else "[red]DISAGREE[/red]"
    console.print(
        f"auditor (its own IPFS node): round {round_} re-derived from the chain and the swarm; flags, scores and "
        f"model {verdict} with what was finalized"
    )
    return report.agrees


def close_disputes(market: MarketClient, pid: int) -> None:
    """Moves the local chain's clock past the dispute window of the round's announced rejections (the demo does
    not wait it out in real time; every rejected trainer it runs has disputed by then, or cannot)."""
    _advance_to(market, market.rejections(pid).dispute_deadline + 1)


def _commit_in_batch(
    aggregator: AggregatorNode, market: MarketClient, pid: int, trainers: list[TrainerNode], console: Console
) -> None:
    """The aggregator commits the signed commits the trainers handed in, in one ``commitBatch``; it waits a quarter
    of the commit period for a trainer that handed in none (e.g. a copier with nothing to copy yet), and a trainer
    it did not commit commits itself from half the period on: the demo does not wait these out in real time, it
    moves the local chain's clock there."""
    project = market.get_project(pid)
    quarter = project.round_start + project.submission_period // 4
    batch = aggregator.commit_signed(pid)
    if batch is None and market.chain.timestamp() < quarter:  # a signed commit is missing: the batch waits
        _advance_to(market, quarter)
        batch = aggregator.commit_signed(pid)
    if batch is not None:
        console.print(
            f"  aggregator committed {len(batch.committed)} trainer(s) in one batch (gas {batch.gas_used:,})"
            + (f"; left out: {', '.join(t[:10] + '…' for t in batch.dropped)}" if batch.dropped else "")
        )
    waiting = [t for t in trainers if t.step(pid) is StepOutcome.WAITING_FOR_COMMIT_BATCH]  # each sees its commit
    if waiting:
        _advance_to(market, project.round_start + project.submission_period // 2)
        for t in waiting:
            t.step(pid)


def _reveal_in_batch(
    aggregator: AggregatorNode, market: MarketClient, pid: int, trainers: list[TrainerNode], console: Console
) -> None:
    """The aggregator reveals the openings the trainers published in one ``revealBatch``; a trainer it did not
    reveal (an opening it could not use) reveals itself from half the reveal period on, which the demo does not
    wait out in real time: it moves the local chain's clock there."""
    deadlines, project = market.round_deadlines(pid), market.get_project(pid)
    period = project.reveal_period
    quarter = deadlines.reveal_opens + period // 4
    batch = aggregator.reveal_openings(pid)
    if batch is None and market.chain.timestamp() < quarter:  # an opening is missing: the batch waits a quarter
        _advance_to(market, quarter)
        batch = aggregator.reveal_openings(pid)
    if batch is not None:
        console.print(
            f"  aggregator revealed {len(batch.revealed)} trainer(s) in one batch (gas {batch.gas_used:,})"
            + (f"; left out: {', '.join(t[:10] + '…' for t in batch.missing)}" if batch.missing else "")
        )
    for t in trainers:  # reports the batch's reveal, or finds itself left out
        t.step(pid)
    round_ = project.current_round
    unrevealed = {c.trainer for c in market.commits(pid, round_)} - {r.trainer for r in market.submissions(pid, round_)}
    if unrevealed:
        _advance_to(market, deadlines.reveal_opens + period // 2)
        for t in trainers:
            if t.address in unrevealed:
                t.step(pid)


def _open_reveals(market: MarketClient, pid: int) -> None:
    """Moves the local chain's clock to the reveal phase if a trainer did not commit (e.g. a copier with nothing
    to copy): the commit phase then lasts until its deadline, which the demo does not wait out in real time."""
    _advance_to(market, market.round_deadlines(pid).reveal_opens)


def _advance_to(market: MarketClient, t: int) -> None:
    """Moves the local chain's clock to time ``t`` if it is before it (the demo does not wait out phases in real
    time); a clock already at or past ``t`` is left alone."""
    now = market.chain.timestamp()
    if now < t:
        market.chain.increase_time(t - now)


def deploy_zk_round_verifier(stack: LocalStack, trainers: int, console: Console) -> str:
    """Sets up (once, cached) the smallest circuit for ``trainers`` and deploys and approves its verifier."""
    from marketplace.adapters.ezkl.evm import deploy_zk_verifier
    from marketplace.adapters.ezkl.keys import circuit_for, setup

    n, k = circuit_for(trainers)
    with console.status(f"zk: setting up the {n}-slot circuit on {k}-wide sketches (cached; ~1 min the first time)"):
        keys = setup(n, k)
    with console.status("zk: deploying ezkl's reusable Halo2 verifier and the round verifier"):
        _, adapter = deploy_zk_verifier(stack.admin, keys)
    console.print(
        f"zk verifier [bold]{adapter}[/bold]: every round's flags and scores are proven (ezkl, {n} slots x {k}) "
        "and checked on chain. [yellow]Development SRS[/yellow] (gen_srs): production needs a ceremony SRS."
    )
    return adapter


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _round_table(report: RoundReport, roles: dict[str, str]) -> Table:
    acc = f"{report.accuracy:.1%}" if report.accuracy is not None else "-"
    proof = f"proof {report.prover} {report.timings.get('prove', 0.0):.1f} s, finalize gas {report.gas_used:,}"
    table = Table(
        title=f"Round {report.round}: test accuracy {acc}, model {report.model_cid[:16]}…; {proof}",
        title_justify="left",
    )
    for col in ["#", "trainer", "role", "submitted", "flagged", "contribution", "note"]:
        table.add_column(col)
    ref = report.reference
    for i, addr in enumerate(report.trainers):
        flagged = "[red]FLAGGED[/red]" if report.flags[i] else ""
        share = f"{report.scores[i]:.1%}" if report.submitted[i] and not report.flags[i] else "-"
        taken = "in the model, unpaid, clipped" if i < len(report.admitted) and report.admitted[i] else ""
        if i < len(report.screened) and report.screened[i]:
            taken = "not in the model (against the owner's reference)"
        note = "; ".join(n for n in (report.rejected.get(addr, "") or _moved(ref, i), taken) if n)
        table.add_row(
            str(i), _short(addr), roles.get(addr, "?"), "yes" if report.submitted[i] else "no", flagged, share, note,
        )  # fmt: skip
    return table


def _moved(reference: ReferenceEffect | None, i: int) -> str:
    """The round table's note for trainer ``i`` on what the owner's reference changed for it ("" if nothing)."""
    if reference is None:
        return ""
    if i in reference.unpaid:
        return "unpaid by the owner's reference"
    return "paid thanks to the owner's reference" if i in reference.added else ""


def _eth(wei: int) -> str:
    return f"{wei / ETH:.4f}"


@dataclass(frozen=True)
class Parties:
    """Who is who in the payout table: the trainers' roles (honest or their attack), the owner, the aggregator."""

    roles: dict[str, str]
    owner: str
    aggregator: str

    def role(self, address: str) -> str:
        if address == self.owner:
            return "owner (refund)"
        if address == self.aggregator:
            return "aggregator (fee; bonds returned)"
        return f"trainer: {self.roles[address]}"


def payout_table(
    stack: LocalStack,
    pid: int,
    payouts: dict[str, int],
    bonds: dict[str, int],
    parties: Parties,
    escrowed: int,
    bonds_posted: int,
) -> Table:
    """Everyone's withdrawals: from the project (``withdrawn``) and in rejection bonds (``bonds``: a disputing
    trainer's reimbursement, the aggregator's returned bonds), with the totals against what came in: the escrow and
    the bonds posted (``escrow + bonds posted = paid out + bonds withdrawn`` once everyone withdrew)."""
    table = Table(title=f"Payouts of project {pid} (ETH)", title_justify="left")
    for col in ["who", "role", "withdrawn", "bonds", "reliability"]:
        table.add_column(col)
    for addr, amount in payouts.items():
        rel = f"{stack.admin.reliability(addr) / 100:.0f}%" if addr in parties.roles else ""
        table.add_row(_short(addr), parties.role(addr), _eth(amount), _eth(bonds.get(addr, 0)), rel)
    total, bonds_total = sum(payouts.values()), sum(bonds.values())
    table.add_row(
        "[bold]total[/bold]", "", f"[bold]{_eth(total)}[/bold]", f"[bold]{_eth(bonds_total)}[/bold]",
        f"escrowed {_eth(escrowed)} + bonds posted {_eth(bonds_posted)}",
    )  # fmt: skip
    return table


def _plot(path: Path, reports: list[RoundReport], roles: dict[str, str], initial_accuracy: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    rounds = list(range(len(reports) + 1))
    ax1.plot(rounds, [initial_accuracy] + [r.accuracy or 0.0 for r in reports], marker="o")
    ax1.set(xlabel="rounds finalized", ylabel="test accuracy", title="Global model accuracy", ylim=(0, 1))
    ax1.set_xticks(rounds)
    ax1.grid(alpha=0.3)
    trainers = reports[0].trainers
    bottom = np.zeros(len(trainers))
    for r in reports:
        shares = np.array([0.0 if f else s for s, f in zip(r.scores, r.flags, strict=True)])
        ax2.bar(range(len(trainers)), shares, bottom=bottom, label=f"round {r.round}")
        bottom += shares
    labels = [f"#{i}\n{roles[a].replace('_', ' ')}" for i, a in enumerate(trainers)]
    ax2.set_xticks(range(len(trainers)), labels, fontsize=7)
    ax2.set(ylabel="contribution share (summed over rounds)", title="Contributions per trainer")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
