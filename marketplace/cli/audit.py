"""``marketplace audit`` and ``marketplace verify``: re-check a finalized round from public data,
and verify its proof against the deployed verifier.

``audit`` imports the audit (torch) inside the command, so that ``marketplace --help`` stays fast;
everything else is imported at the top. Error messages name the RPC endpoint without its credentials
(:func:`~marketplace.adapters.chain.redact.redact_urls`).

``audit`` exits 0 when the whole round was recomputed and agrees, 1 when something disagrees (or the round is
not finalized), and :data:`PARTIAL` when the project's updates are encrypted and no ``--update-key`` was given:
everything the public can check agrees, and the output lists what it could not check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from marketplace.adapters.chain.config import ConfigError
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.chain.redact import redact_urls
from marketplace.adapters.chain.update_keys import recorded_update_keys
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.cli.common import IPFS_API, NETWORK, connect_market, console, fail, open_store, open_store_if_reachable
from marketplace.protocol.envelope import UpdateKey, UpdateOrigin, is_envelope
from marketplace.roles.verify import ProofUnavailable, verify_round
from marketplace.rule.aggregate import PAID_CLIP, PAID_LOG_SPREAD

if TYPE_CHECKING:
    from marketplace.roles.audit import EncryptedAuditReport, ModelAudit, TrainerAudit
    from marketplace.round.collect import UpdateOpener

#: Exit code of an audit of an encrypted project without its key: what the public can check agrees, the rest
#: (listed) was not checked.
PARTIAL = 3
UPDATE_KEY = typer.Option(
    None,
    "--update-key",
    exists=True,
    dir_okay=False,
    help="An encrypted project's secret update key (`marketplace aggregator export-key`): audit the whole round.",
)


def audit_cmd(
    project_id: int,
    round_: int = typer.Argument(..., metavar="ROUND"),
    network: str = NETWORK,
    ipfs_api: str | None = IPFS_API,
    update_key: Path | None = UPDATE_KEY,
) -> None:
    """Re-check a finalized round from public data: every update against its commitment, the recorded
    flags and scores against a recomputation, and the recorded new model against the previous model
    plus the round's step (the paid updates and the unpaid ones that agree with them, clipped; bit for bit;
    nothing is pinned), naming the unpaid trainers whose update is in it. Exit code 1 if anything disagrees.

    A project whose updates are encrypted to its aggregator can only be checked in part without its secret
    update key (--update-key): the proof against the verifier, the recorded model's form, every revealed
    object's availability; exit code 3 when all of that agrees (what was not checked is listed)."""
    from marketplace.roles.audit import audit_encrypted_round, audit_round

    market = connect_market(network, read_only=True)
    store = open_store(ipfs_api)
    try:
        published = _published_key(market, project_id)
        if published is not None and update_key is None:
            _show_encrypted(audit_encrypted_round(market, store, project_id, round_))
            return
        if published is None and update_key is not None:
            raise fail(f"project {project_id}'s updates are public: --update-key is not needed")
        opener = None if published is None or update_key is None else _opener(update_key, published)
        report = audit_round(market, store, project_id, round_, opener)
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
        if t.admitted:
            update += "; in the model, unpaid, clipped"
        if t.screened:
            update += "; not in the model (points against the owner's reference), paid as scored"
        if t.clipped:
            update += (
                f"; [yellow]longer than its cap ({PAID_CLIP:g} x its committed sketch's norm, counted at most "
                f"{PAID_LOG_SPREAD:g} doubling above the paid lower median): in the model shortened to that[/]"
            )
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
        f"new model {model.recorded_cid} (recorded) = {model.previous_cid} + {step_words(model, report.trainers)}: "
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


def step_words(model: ModelAudit, trainers: list[TrainerAudit]) -> str:
    """The recomputed step in words: how much longer than the mean it is, of how many paid updates, and which unpaid
    trainers' updates are in it (clipped), named ``#index address`` as in the table."""
    index = {t.trainer: i for i, t in enumerate(trainers)}
    words = f"{model.stretch:.3g} x " if model.stretch != 1.0 else ""
    words += f"mean of {model.paid} paid update(s)"
    shortened = [f"#{i}" for i, t in enumerate(trainers) if t.clipped]
    if shortened:
        words += f" ({', '.join(shortened)} shortened to its cap, at most {PAID_CLIP:g} x its committed sketch's norm)"
    if model.admitted:
        names = ", ".join(f"#{index[t]} {t}" for t in model.admitted)
        words += f" and {len(model.admitted)} agreeing unpaid one(s) (in the model, unpaid, clipped: {names})"
    kept_out = [f"#{i}" for i, t in enumerate(trainers) if t.screened]
    if kept_out:
        words += f", without {', '.join(kept_out)} (against the owner's reference; paid as scored)"
    return words


def _published_key(market: MarketClient, project_id: int) -> bytes | None:
    """The key ``project_id``'s updates are encrypted to, or None if they are public."""
    keys = recorded_update_keys(market)
    return keys.key_of(project_id) if keys is not None else None


def _opener(path: Path, published: bytes) -> UpdateOpener:
    """Opens the project's envelopes with the secret key in ``path`` (hex), which must be the published key's."""
    try:
        key = UpdateKey(bytes.fromhex(path.read_text().strip().removeprefix("0x")))
    except (OSError, ValueError):
        raise fail(f"{path} does not hold a secret update key (64 hex digits)") from None
    if key.public != published:
        raise fail(f"the key in {path} is not the one this project's updates are encrypted to (0x{published.hex()})")

    def open_update(data: bytes, origin: UpdateOrigin) -> bytes:
        return key.open(data, origin) if is_envelope(data) else data

    return open_update


def _show_encrypted(report: EncryptedAuditReport) -> None:
    """Prints the audit of an encrypted round without its key; exits 1 if something disagrees, else 3."""
    pid, round_ = report.project_id, report.round
    table = Table(title=f"Audit of project {pid}, round {round_} (updates encrypted to the aggregator)")
    for col in ["#", "trainer", "update", "flag", "score", ""]:
        table.add_column(col)
    for i, t in enumerate(report.trainers):
        if not t.submitted:
            update = "not revealed"
        elif t.problem:
            update = f"[red]{t.problem}[/red]"
        else:
            update = "encrypted, served under its CID" if t.encrypted else "in the clear, matches commitment"
        update += "; rejected by the aggregator" if t.recorded_rejected else ""
        update += "; scored on the row it published" if t.published_row else ""
        mark = "[red]DIFFERS[/red]" if not t.agrees else "not checked" if t.encrypted else "[green]ok[/green]"
        table.add_row(str(i), t.trainer, update, str(t.recorded_flag), str(t.recorded_score), mark)
    console.print(table)
    if not report.finalized:
        raise fail(f"round {round_} of project {pid} is not finalized")
    if report.proof_problem:
        console.print(f"proof: [red]DIFFERS[/red]: {report.proof_problem}", soft_wrap=True)
    elif not report.proof_proves:
        console.print(
            "proof: the project's verifier is the local test verifier, whose proof proves nothing: the flags "
            "and scores are the aggregator's word"
        )
    else:
        console.print(
            f"proof: [green]valid[/green] ({report.proof_system}): the recorded flags and scores are the rule's on "
            "the committed rows (rejected trainers as empty slots)",
            soft_wrap=True,
        )
    model = f"[red]DIFFERS[/red]: {report.model_problem}" if report.model_problem else "[green]a valid model[/green]"
    console.print(f"new model {report.model_cid}: {model}", soft_wrap=True)
    console.print("[yellow]not checked[/yellow] (the updates are encrypted to the aggregator; needs --update-key):")
    for item in report.not_checked:
        console.print(f"  - {item}")
    if not report.agrees:
        raise fail("what could be checked differs from what was recorded")
    console.print(
        f"[yellow]round {round_} checks out in part[/yellow]: everything the public can check agrees; "
        "this is not a full audit"
    )
    raise typer.Exit(code=PARTIAL)


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
