"""``marketplace trainer ...``, ``marketplace aggregator run`` and ``marketplace data partition``."""

from __future__ import annotations

from pathlib import Path

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from marketplace.adapters.chain.config import ConfigError
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.cli.project import NETWORK, fail, fmt_eth
from marketplace.demo.attacks import Attack

trainer_app = typer.Typer(help="Take part in projects as a trainer: join, then train round by round.")
aggregator_app = typer.Typer(help="Serve projects as their aggregator.")
data_app = typer.Typer(help="Data helpers for demos and tests.")
console = Console()

KEYSTORE = typer.Option(None, "--keystore", help="Keystore JSON of your wallet (else MARKETPLACE_PRIVATE_KEY).")
DEV_ACCOUNT = typer.Option(
    None, "--dev-account", help="Local chain only: sign with anvil's public dev account N (for trying things out)."
)
IPFS_API = typer.Option(
    None, "--ipfs-api", help="Kubo RPC URL (else MARKETPLACE_IPFS_API, else `marketplace ipfs up`)."
)
POLL = typer.Option(2.0, "--poll", help="Seconds between checks of the chain.")


def _account(network: str, keystore: Path | None, dev_account: int | None) -> LocalAccount:
    from marketplace.adapters.chain.accounts import AccountError
    from marketplace.adapters.chain.config import resolve_network

    profile = resolve_network(network)
    if dev_account is not None:
        if not profile.is_local:
            raise fail("--dev-account is for the local chain only")
        return profile.account(dev_index=dev_account)
    try:
        if keystore is not None:
            from marketplace.adapters.chain.accounts import load_account

            return load_account(keystore)
        return profile.account()
    except AccountError as exc:
        raise fail(str(exc)) from None


def _market(network: str, account: LocalAccount) -> MarketClient:
    from marketplace.adapters.chain.deploy import connect

    try:
        return connect(network, account)
    except (ConfigError, ChainError) as exc:
        raise fail(str(exc)) from None


def _store(ipfs_api: str | None):  # type: ignore[no-untyped-def]
    from marketplace.adapters.ipfs.ipfs import IpfsClient
    from marketplace.adapters.ipfs.manager import resolve_api_url
    from marketplace.adapters.ipfs.store import ModelStore

    try:
        return ModelStore(IpfsClient(resolve_api_url(ipfs_api)))
    except StorageError as exc:
        raise fail(str(exc)) from None


@trainer_app.command("join")
def trainer_join(
    project_id: int,
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
) -> None:
    """Join a project with its stake (checks your reliability first)."""
    market = _market(network, _account(network, keystore, dev_account))
    try:
        project = market.get_project(project_id)
        reliability = market.reliability(market.address)
        if reliability < project.min_reliability_bps:
            raise fail(
                f"your reliability {reliability} bps is below the project's minimum {project.min_reliability_bps}"
            )
        market.join(project_id, project.stake)
    except ChainError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"{market.address} joined project {project_id} with {fmt_eth(project.stake)} stake "
        f"(reliability {reliability / 100:.0f}%). Next: marketplace trainer run {project_id} --data <your data>"
    )


@trainer_app.command("run")
def trainer_run(
    project_id: int,
    data: Path = typer.Option(
        ..., exists=True, help="Your private data: CSV (label last), NPZ (x, y) or image folder."
    ),
    epochs: int = typer.Option(2, min=1),
    lr: float = typer.Option(0.5, min=0.0),
    batch_size: int = typer.Option(32, min=1),
    seed: int = typer.Option(0),
    attack: Attack = typer.Option(Attack.NONE, help="Simulation only: misbehave this way.", hidden=True),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
    ipfs_api: str | None = IPFS_API,
    poll: float = POLL,
) -> None:
    """Each round: fetch the global model, train on your data, pin the update, submit.

    Stops when the project ends."""
    from marketplace.fl.data import UnsupportedFormatError, load_local_data
    from marketplace.roles.trainer import StepOutcome, Submitted, TrainerNode, TrainingSettings

    market = _market(network, _account(network, keystore, dev_account))
    try:
        local = load_local_data(data)
    except (UnsupportedFormatError, ValueError, OSError) as exc:
        raise fail(f"cannot read {data}: {exc}") from None
    node = TrainerNode(market, _store(ipfs_api), local, TrainingSettings(epochs, lr, batch_size, seed, attack))
    console.print(f"trainer {market.address} on project {project_id} with {len(local)} samples")
    import time

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    last: object = None
    while True:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("local training", total=None)

            def report(step: int, total: int, progress: Progress = progress, task: TaskID = task) -> None:
                progress.update(task, completed=step, total=total)

            try:
                outcome = node.step(project_id, progress=report)
            except (ChainError, StorageError) as exc:
                console.print(f"[yellow]retrying after error:[/yellow] {exc}")
                time.sleep(poll)
                continue
        if isinstance(outcome, Submitted):
            took = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in outcome.timings.items())
            console.print(
                f"round {outcome.round}: submitted {outcome.cid} (update norm {outcome.update_norm:.3f}; {took}; "
                f"gas {outcome.gas_used:,})"
            )
        elif outcome != last:
            console.print(f"{outcome}")
        last = outcome
        if outcome is StepOutcome.FINISHED:
            info = market.trainer_info(project_id, market.address)
            console.print(f"project ended: earned {fmt_eth(info.earned)}; `marketplace project withdraw {project_id}`")
            return
        if not isinstance(outcome, Submitted):
            time.sleep(poll)


@aggregator_app.command("run")
def aggregator_run(
    project: list[int] | None = typer.Option(None, "--project", help="Project(s) to serve (default: all yours)."),
    eval_data: Path | None = typer.Option(None, exists=True, help="Held-out data to report accuracy on."),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
    ipfs_api: str | None = IPFS_API,
    poll: float = POLL,
    once: bool = typer.Option(False, "--once", help="Finalize whatever is due now, then exit."),
    srs: Path | None = typer.Option(
        None, exists=True, help="SRS the zk verifier's keys were made with (default: the cached development SRS)."
    ),
) -> None:
    """Watch the projects you aggregate; finalize each round when it is due. Rounds of projects
    whose verifier is an EzklRoundVerifier are proven with ezkl (keys set up once and cached)."""
    from marketplace.fl.data import load_local_data
    from marketplace.roles.aggregator import AggregatorNode, RoundReport

    market = _market(network, _account(network, keystore, dev_account))
    evaluation = load_local_data(eval_data) if eval_data else None
    node = AggregatorNode(market, _store(ipfs_api), evaluation=evaluation, srs=srs)

    def show(r: RoundReport) -> None:
        acc = f", accuracy {r.accuracy:.1%}" if r.accuracy is not None else ""
        flagged = [i for i, f in enumerate(r.flags) if f]
        console.print(
            f"project {r.project_id} round {r.round} finalized{acc}: flagged {flagged or 'none'}, "
            f"scores {[f'{s:.2f}' for s in r.scores]}, model {r.model_cid}"
        )
        for trainer, why in r.rejected.items():
            console.print(f"  rejected {trainer}: {why}")

    console.print(f"aggregator {market.address} serving {project or 'all its projects'}")
    try:
        if once:
            for pid in project or node.served_projects():
                report = node.step(pid)
                if report:
                    show(report)
            return
        node.run(
            project,
            poll_seconds=poll,
            on_report=show,
            on_error=lambda exc: console.print(f"[yellow]will retry:[/yellow] {exc}"),
        )
    except PermissionError as exc:
        raise fail(str(exc)) from None


@data_app.command("partition")
def data_partition(
    trainers: int = typer.Option(8, min=1, help="Number of shards."),
    scheme: str = typer.Option("iid", help="iid or dirichlet."),
    alpha: float = typer.Option(0.5, help="Dirichlet concentration (smaller = more skewed)."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("shards"), help="Output directory."),
) -> None:
    """Split scikit-learn's digits into one NPZ shard per trainer plus validation and test sets."""
    from marketplace.fl.data import partition_digits

    paths = partition_digits(trainers, scheme, alpha=alpha, seed=seed, out_dir=out)
    console.print(f"wrote {len(paths)} shards to {out}/ (and validation.npz, test.npz)")


model_app = typer.Typer(help="The model registry: architectures a project can name, initial weights.")


@model_app.command("list")
def model_list() -> None:
    """Architectures in the registry, with their parameter counts."""
    from marketplace.fl.models import available_models, num_params

    for name in available_models():
        console.print(f"{name}: {num_params(name):,} parameters")


@model_app.command("init")
def model_init(
    model: str = typer.Option("mlp", help="Architecture name (see `marketplace model list`)."),
    seed: int = typer.Option(0, help="Seed of the initial weights."),
    ipfs_api: str | None = IPFS_API,
) -> None:
    """Pin freshly initialized weights to IPFS and print their CID (for `project create --initial-cid`)."""
    from marketplace.fl.models import available_models, build_model

    if model not in available_models():
        raise fail(f"unknown model {model!r}; available: {', '.join(available_models())}")
    cid = _store(ipfs_api).put_tensors(build_model(model, seed=seed).state_dict(), {"kind": "model", "model": model})
    console.print(cid)


def audit_cmd(
    project_id: int,
    round_: int = typer.Argument(..., metavar="ROUND"),
    network: str = NETWORK,
    ipfs_api: str | None = IPFS_API,
) -> None:
    """Re-check a finalized round from public data: every update against its commitment, and the
    recorded flags and scores against a recomputation. Exit code 1 if anything disagrees."""
    from rich.table import Table

    from marketplace.adapters.chain.deploy import connect
    from marketplace.roles.audit import audit_round

    try:
        market = connect(network, read_only=True)
        report = audit_round(market, _store(ipfs_api), project_id, round_)
    except (ConfigError, ChainError, StorageError) as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"Audit of project {project_id}, round {round_}")
    for col in ["#", "trainer", "update", "flag (chain / recomputed)", "score (chain / recomputed)", ""]:
        table.add_column(col)
    for i, t in enumerate(report.trainers):
        update = (
            "not submitted" if not t.submitted else (f"[red]{t.problem}[/red]" if t.problem else "matches commitment")
        )
        if t.recorded_rejected:
            update += "; rejected by the aggregator"
        mark = "[green]ok[/green]" if t.agrees else "[red]DIFFERS[/red]"
        table.add_row(
            str(i), t.trainer, update, f"{t.recorded_flag} / {t.recomputed_flag}",
            f"{t.recorded_score} / {t.recomputed_score}", mark,
        )  # fmt: skip
    console.print(table)
    if not report.finalized:
        raise fail(f"round {round_} of project {project_id} is not finalized")
    if not report.agrees:
        raise fail("the recorded flags or scores differ from the recomputation")
    console.print(
        f"[green]round {round_} checks out[/green]: {len(report.invalid_updates)} invalid update(s), "
        "all flags and scores recomputed exactly"
    )


def verify_cmd(
    project_id: int,
    round_: int = typer.Argument(..., metavar="ROUND"),
    network: str = NETWORK,
    ipfs_api: str | None = IPFS_API,
) -> None:
    """Verify a round's proof against the project's deployed verifier (an eth_call: free, any
    network), with the public values recorded on chain; print the result and the gas an on-chain
    verification costs. The proof comes from IPFS, or from the finalize transaction if IPFS is
    not reachable. Exit code 1 if the proof does not verify."""
    from marketplace.adapters.chain.deploy import connect
    from marketplace.adapters.ipfs.ipfs import IpfsClient
    from marketplace.adapters.ipfs.manager import resolve_api_url
    from marketplace.adapters.ipfs.store import ModelStore
    from marketplace.roles.verify import ProofUnavailable, verify_round

    try:
        store: ModelStore | None = ModelStore(IpfsClient(resolve_api_url(ipfs_api)))
    except StorageError:
        console.print("no IPFS API configured: reading the proof from the finalize transaction")
        store = None
    try:
        market = connect(network, read_only=True)
        result = verify_round(market, project_id, round_, store)
    except (ConfigError, ChainError, ProofUnavailable) as exc:
        raise fail(str(exc)) from None
    console.print(f"proof {result.proof_hash} from {result.proof_source}")
    if result.document_agrees is False:
        console.print("[yellow]the proof document's public values differ from the chain's (the chain's are used)[/]")
    if not result.valid:
        raise fail(f"verifier {result.verifier} REJECTS round {round_} of project {project_id}: {result.error}")
    console.print(
        f"[green]valid[/green]: verifier {result.verifier} accepts round {round_} of project {project_id}; "
        f"an on-chain verification costs {result.gas:,} gas"
    )
