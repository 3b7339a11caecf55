"""``marketplace audit`` and ``marketplace verify``: re-check a finalized round from public data,
and verify its proof against the deployed verifier.

``audit`` imports the audit (torch) inside the command, so that ``marketplace --help`` stays fast;
everything else is imported at the top. Error messages name the RPC endpoint without its credentials
(:func:`~marketplace.adapters.chain.redact.redact_urls`).
"""

from __future__ import annotations

import typer
from rich.table import Table

from marketplace.adapters.chain.config import ConfigError
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.redact import redact_urls
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.cli.common import IPFS_API, NETWORK, connect_market, console, fail, open_store, open_store_if_reachable
from marketplace.roles.verify import ProofUnavailable, verify_round


def audit_cmd(
    project_id: int,
    round_: int = typer.Argument(..., metavar="ROUND"),
    network: str = NETWORK,
    ipfs_api: str | None = IPFS_API,
) -> None:
    """Re-check a finalized round from public data: every update against its commitment, the recorded
    flags and scores against a recomputation, and the recorded new model against the previous model
    plus the mean of the paid updates (bit for bit; nothing is pinned). Exit code 1 if anything disagrees."""
    from marketplace.roles.audit import audit_round

    market = connect_market(network, read_only=True)
    store = open_store(ipfs_api)
    try:
        report = audit_round(market, store, project_id, round_)
    except (ConfigError, ChainError, StorageError) as exc:
        raise fail(redact_urls(str(exc))) from None
    table = Table(title=f"Audit of project {project_id}, round {round_}")
    for col in ["#", "trainer", "update", "flag (chain / recomputed)", "score (chain / recomputed)", ""]:
        table.add_column(col)
    for i, t in enumerate(report.trainers):
        update = (
            "not revealed" if not t.submitted else (f"[red]{t.problem}[/red]" if t.problem else "matches commitment")
        )
        if t.recorded_rejected:
            update += "; rejected by the aggregator"
        if t.row_only:
            update = f"[yellow]paid for the row it published in a dispute; update not in the model: {t.row_only}[/]"
        mark = "[green]ok[/green]" if t.agrees else "[red]DIFFERS[/red]"
        table.add_row(
            str(i), t.trainer, update, f"{t.recorded_flag} / {t.recomputed_flag}",
            f"{t.recorded_score} / {t.recomputed_score}", mark,
        )  # fmt: skip
    console.print(table)
    if not report.finalized or report.model is None:
        raise fail(f"round {round_} of project {project_id} is not finalized")
    model = report.model
    console.print(
        f"new model {model.recorded_cid} (recorded) = {model.previous_cid} + mean of {model.paid} paid update(s): "
        + ("[green]recomputed bit for bit[/green]" if model.agrees else f"[red]DIFFERS[/red]: {model.problem}"),
        soft_wrap=True,
    )
    if not all(t.agrees for t in report.trainers):
        raise fail("the recorded flags or scores differ from the recomputation")
    if not model.agrees:
        raise fail("the recorded new model differs from the recomputation")
    console.print(
        f"[green]round {round_} checks out[/green]: {len(report.invalid_updates)} invalid update(s), "
        "all flags and scores recomputed exactly, the new model recomputed bit for bit"
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
    store = open_store_if_reachable(ipfs_api)
    if store is None:
        console.print("no IPFS API configured: reading the proof from the finalize transaction")
    market = connect_market(network, read_only=True)
    try:
        result = verify_round(market, project_id, round_, store)
    except (ConfigError, ChainError, ProofUnavailable) as exc:
        raise fail(redact_urls(str(exc))) from None
    console.print(f"proof {result.proof_hash} from {result.proof_source}")
    if result.document_agrees is False:
        console.print("[yellow]the proof document's public values differ from the chain's (the chain's are used)[/]")
    if not result.valid:
        raise fail(f"verifier {result.verifier} REJECTS round {round_} of project {project_id}: {result.error}")
    console.print(
        f"[green]valid[/green]: verifier {result.verifier} accepts round {round_} of project {project_id}; "
        f"an on-chain verification costs {result.gas:,} gas"
    )
