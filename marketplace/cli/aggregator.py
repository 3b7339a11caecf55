"""``marketplace aggregator run``: serve projects as their aggregator; ``publish-key``: encrypt a project's
updates to it; ``export-key``: hand a project's secret update key to an auditor.

The command imports the aggregator node (torch, ezkl) inside its body, so that ``marketplace --help``
stays fast; everything else is imported at the top.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from marketplace.adapters.chain.errors import ChainError
from marketplace.cli.common import (
    DEV_ACCOUNT,
    IPFS_API,
    KEYSTORE,
    NETWORK,
    POLL,
    connect_market,
    console,
    fail,
    fmt_eth,
    market_update_keys,
    open_store,
    signing_account,
    stops_on_signals,
)
from marketplace.fl.data import load_local_data

aggregator_app = typer.Typer(help="Serve projects as their aggregator.")


@aggregator_app.command("run")
def aggregator_run_cmd(
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
    commit_inbox: str | None = typer.Option(
        None,
        "--commit-inbox",
        metavar="HOST:PORT",
        help="Serve a commit inbox on HOST:PORT (an address your trainers reach, IPv6 in brackets; 0.0.0.0: every "
        "address, one URL printed per address; port 0: any free one) and commit "
        "the signed commits they hand in (`trainer run --commit-via URL`, the URL printed at start) in one "
        "transaction per round: you pay their commit gas. Everything posted is checked (size, JSON, this market, "
        "your project, its open round, a member's own signature) and each commit again with an eth_call before "
        "it is batched; trainers you leave out commit themselves by half the commit period.",
    ),
) -> None:
    """Watch the projects you aggregate; finalize each round when it is due. Rounds of projects
    whose verifier is an EzklRoundVerifier are proven with ezkl (keys set up once and cached)."""
    from marketplace.roles.aggregator import (
        AggregatorNode,
        CommitsBatched,
        RejectionsAnnounced,
        RevealsBatched,
        RoundReport,
    )
    from marketplace.round.commit_inbox import CommitInbox, InboxServer, inbox_url
    from marketplace.round.prove import ProverSelectionError

    market = connect_market(network, signing_account(network, keystore, dev_account))
    evaluation = load_local_data(eval_data) if eval_data else None
    store, keys = open_store(ipfs_api), market_update_keys(market)
    inbox = CommitInbox(market) if commit_inbox is not None else None
    node = AggregatorNode(market, store, evaluation=evaluation, srs=srs, update_keys=keys, commit_inbox=inbox)

    def show(r: RoundReport | RejectionsAnnounced) -> None:
        if isinstance(r, RejectionsAnnounced):
            until = datetime.fromtimestamp(r.dispute_deadline, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            console.print(
                f"project {r.project_id} round {r.round}: announced {len(r.rejected)} rejection(s); "
                f"the rejected trainers may publish their rows until {until}, then the round is finalized "
                "(a bond was posted per rejection: a trainer that disputes is reimbursed its dispute's gas out of it, "
                "the rest comes back)"
            )
            for trainer, why in r.rejected.items():
                console.print(f"  rejecting {trainer}: {why}")
            return
        acc = f", accuracy {r.accuracy:.1%}" if r.accuracy is not None else ""
        flagged = [i for i, f in enumerate(r.flags) if f]
        took = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in r.timings.items())
        done = "was already finalized (by an earlier run)" if r.already_finalized else "finalized"
        console.print(
            f"project {r.project_id} round {r.round} {done}{acc}: flagged {flagged or 'none'}, "
            f"scores {[f'{s:.2f}' for s in r.scores]}, model {r.model_cid}\n"
            f"  proof {r.prover} ({took}); transaction {r.tx_hash or '-'}, gas {r.gas_used:,}"
        )
        if r.reference is not None:  # the owner revealed a reference row: the round was scored with it
            console.print(f"  {r.reference.summary([f'#{i} {t}' for i, t in enumerate(r.trainers)])}")
        taken = [f"#{i} {t}" for i, (t, a) in enumerate(zip(r.trainers, r.admitted, strict=False)) if a]
        if taken:
            console.print(f"  in the model, unpaid, clipped (agrees with the paid updates): {', '.join(taken)}")
        kept_out = [f"#{i} {t}" for i, (t, s) in enumerate(zip(r.trainers, r.screened, strict=False)) if s]
        if kept_out:
            against = "not in the model, paid as scored (points against the owner's reference)"
            console.print(f"  {against}: {', '.join(kept_out)}")
        for trainer, why in r.rejected.items():
            console.print(f"  rejected {trainer}: {why}")
        for trainer, why in r.published.items():
            console.print(f"  disputed {trainer}: its update was rejected ({why}); scored on the row it published")
        if r.bonds_returned:
            console.print(
                f"  rejection bonds returned (undisputed, and what disputes' gas left): {fmt_eth(r.bonds_returned)} "
                f"(`marketplace project withdraw {r.project_id}` pays them out)"
            )

    def show_batch(b: CommitsBatched | RevealsBatched) -> None:
        if isinstance(b, CommitsBatched):
            console.print(
                f"project {b.project_id} round {b.round}: committed {len(b.committed)} trainer(s) in one batch "
                f"(transaction {b.tx_hash}, gas {b.gas_used:,})"
            )
            for trainer in b.dropped:
                console.print(f"  the signed commit of {trainer} would not land: it commits itself")
            return
        console.print(
            f"project {b.project_id} round {b.round}: revealed {len(b.revealed)} trainer(s) in one batch "
            f"(transaction {b.tx_hash}, gas {b.gas_used:,})"
        )
        for trainer, why in b.missing.items():
            console.print(f"  no opening of {trainer} ({why}): it reveals itself")

    console.print(f"aggregator {market.address} serving {project or 'all its projects'}")
    server = None
    if inbox is not None and commit_inbox is not None:
        host, _, port = commit_inbox.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise fail(f"--commit-inbox is HOST:PORT, not {commit_inbox!r}")
        try:
            server = InboxServer(inbox, host.strip("[]"), int(port))
        except OSError as exc:
            raise fail(f"cannot serve the commit inbox on {commit_inbox}: {exc}") from None
        url = server.url
        if not server.bound.is_unspecified:
            console.print(f"commit inbox: {url} (trainers: `marketplace trainer run ... --commit-via {url}`)")
        else:  # every address: the trainers are given the one they reach
            console.print(
                f"commit inbox on every address of this host, port {server.port}; give your trainers the URL they "
                "reach (`marketplace trainer run ... --commit-via URL`):"
            )
            for address in server.addresses():
                local = "  (this machine only)" if address.is_loopback else ""
                console.print(f"  commit inbox: {inbox_url(address, server.port)}{local}")
    try:
        with stops_on_signals():  # Ctrl-C or SIGTERM: "stopped", exit code 130 or 143
            if once:
                for pid in project or node.served_projects():
                    commits = node.commit_signed(pid)
                    if commits:
                        show_batch(commits)
                    batch = node.reveal_openings(pid)
                    if batch:
                        show_batch(batch)
                    report = node.step(pid)
                    if report:
                        show(report)
                return
            node.run(
                project,
                poll_seconds=poll,
                on_report=show,
                on_batch=show_batch,
                on_error=lambda exc: console.print(
                    f"[yellow]{type(exc).__name__}:[/yellow] {exc}"
                    + "".join(f" ({note})" for note in getattr(exc, "__notes__", []))
                ),
            )
    except (PermissionError, ProverSelectionError, ChainError) as exc:  # one line, naming what to do
        raise fail(str(exc)) from None
    finally:
        if server is not None:
            server.close()


@aggregator_app.command("publish-key")
def aggregator_publish_key_cmd(
    project: int = typer.Option(..., "--project", help="The project whose updates are to be encrypted to you."),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
) -> None:
    """Encrypt a project's updates to you: publish its update key (X25519) in the market's UpdateKeys. You
    must be the project's aggregator; once per project, while it is open or training; it can never be
    changed. Publish it before trainers join, so they know their updates will not be public; a key published
    later applies from each trainer's next commit on. The secret half is derived from your wallet (a signature
    of it, never stored): `aggregator run` with the same wallet decrypts the updates."""
    from marketplace.protocol.envelope import InvalidUpdateKey
    from marketplace.roles.aggregator import publish_update_key

    market = connect_market(network, signing_account(network, keystore, dev_account))
    keys = market_update_keys(market)
    if keys is None:
        raise fail(
            f"no UpdateKeys contract is recorded beside the market of {network!r}: its projects cannot be encrypted"
        )
    try:
        public = publish_update_key(market, keys, project)
    except (ChainError, InvalidUpdateKey) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"project {project}: updates are encrypted to 0x{public.hex()} from each trainer's next commit on "
        "(only this wallet can read them; `marketplace project show` tells trainers)"
    )


@aggregator_app.command("export-key")
def aggregator_export_key_cmd(
    project: int = typer.Option(..., "--project", help="The project whose secret update key to write."),
    out: Path = typer.Option(..., "--out", help="File to write (created with mode 0600; never overwritten)."),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
) -> None:
    """Write a project's secret update key to a file, for a full `marketplace audit --update-key FILE` by
    you or by an auditor you trust. Whoever holds it can read every update of this project (of no other)."""
    from marketplace.roles.aggregator import project_update_key

    market = connect_market(network, signing_account(network, keystore, dev_account))
    keys = market_update_keys(market)
    try:
        published = keys.key_of(project) if keys is not None else None
    except ChainError as exc:
        raise fail(str(exc)) from None
    key = project_update_key(market, project)
    if published != key.public:
        raise fail(f"project {project}'s updates are not encrypted to {market.address}'s key: nothing to export")
    try:
        with os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(key.secret.hex() + "\n")
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror}") from None
    console.print(f"wrote project {project}'s secret update key (public 0x{key.public.hex()}) to {out}")
