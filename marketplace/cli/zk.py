"""``marketplace zk setup|deploy|info|revoke``: circuit keys and the on-chain verifiers for
zero-knowledge round proofs.

- ``setup`` builds (once per circuit size and SRS; cached, see :mod:`marketplace.adapters.ezkl.keys`)
  the keys of a circuit made with an SRS file (``--srs``), else with a development SRS.
- ``deploy`` checks that the signer owns the market and that a development SRS goes on the local
  chain only (``--allow-dev-srs`` otherwise), before anything is deployed; it needs the circuit size
  off the local chain; it deploys the circuit's own verifier split in two contracts, which rounds go
  through (with ``--reusable``, or when a part would not fit in 24,576 bytes as at 64 x 32, through the
  reusable verifier and the VKA instead; a generated source the split does not recognise is refused),
  checks that both deployed codes are those compiled from the keys before approving, and records every
  verifier it deploys (with both parts' addresses and code hashes) in the deployment record.
- ``info`` shows, for each deployed verifier, its size, rule version, approval, recorded SRS, what
  rounds go through, whether cached keys here match it (and how to get keys that do) and whether the
  deployed split verifier and helper are the codes compiled from those keys.
- ``revoke`` withdraws a verifier's approval (projects already using it keep it).

The commands import the ezkl adapters (ezkl, torch) inside their bodies, so that ``marketplace --help``
stays fast; everything else is imported at the top.
"""

from __future__ import annotations

from pathlib import Path

import typer
from eth_utils import is_address, to_checksum_address
from web3.exceptions import Web3Exception

from marketplace.adapters.chain.config import ConfigError
from marketplace.adapters.chain.deploy import LOCAL_CHAIN_ID, ZkVerifierRecord, read_record
from marketplace.adapters.chain.errors import ChainError
from marketplace.cli.common import DEV_ACCOUNT, KEYSTORE, NETWORK, connect_market, console, fail, signing_account
from marketplace.rule import RULE_VERSION

zk_app = typer.Typer(
    help="Zero-knowledge proofs of round scoring: keys, verifier deployment and inspection.", no_args_is_help=True
)

#: Bounds of a circuit's size, as the options take them.
MIN_TRAINERS, MAX_TRAINERS, MIN_SKETCH, MAX_SKETCH = 2, 64, 8, 256
DEFAULT_SIZE = (16, 32)
DEFAULT_SKETCH = 32

SIZE = typer.Option(None, "--size", help="Circuit size NxK: N trainer slots, K-wide sketches (e.g. 4x32).")
TRAINERS = typer.Option(
    None, min=MIN_TRAINERS, max=MAX_TRAINERS, help="Trainer slots N of the circuit (with --sketch; or use --size)."
)
SKETCH = typer.Option(None, min=MIN_SKETCH, max=MAX_SKETCH, help=f"Sketch width K (default {DEFAULT_SKETCH}).")
MAX_PROJECT_TRAINERS = typer.Option(
    None, "--max-trainers", min=1, help="Pick the smallest offered circuit for projects of up to this many trainers."
)
SRS_OPTION = typer.Option(
    None,
    exists=True,
    dir_okay=False,
    help="Ceremony SRS file (at least the circuit's logrows). Without it a DEVELOPMENT-ONLY SRS is generated.",
)


def parse_size(text: str) -> tuple[int, int]:
    """``"NxK"`` -> (N, K), each within the options' bounds (:class:`typer.BadParameter` otherwise)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise typer.BadParameter(f"a size is NxK, e.g. 4x32; got {text!r}", param_hint="--size")
    n, k = int(parts[0]), int(parts[1])
    if not (MIN_TRAINERS <= n <= MAX_TRAINERS and MIN_SKETCH <= k <= MAX_SKETCH):
        raise typer.BadParameter(
            f"N in {MIN_TRAINERS}..{MAX_TRAINERS} and K in {MIN_SKETCH}..{MAX_SKETCH}; got {text!r}",
            param_hint="--size",
        )
    return n, k


def circuit_size(
    size: str | None, trainers: int | None, sketch: int | None, max_trainers: int | None, *, required: bool
) -> tuple[int, int]:
    """The circuit (N, K) the options name: ``--size NxK``, or ``--trainers N`` (``--sketch K``, default
    32), or ``--max-trainers M`` (the smallest offered circuit, ``keys.circuit_for``). Without any of
    them: :data:`DEFAULT_SIZE`, unless ``required`` (then an error naming the options)."""
    from marketplace.adapters.ezkl.keys import circuit_for

    named = [flag for flag, value in (("--size", size), ("--trainers", trainers), ("--max-trainers", max_trainers))
             if value is not None]  # fmt: skip
    if len(named) > 1:
        raise fail(f"give the circuit size once, not {' and '.join(named)}")
    if size is not None:
        n, k = parse_size(size)
        if sketch is not None and sketch != k:
            raise fail(f"--sketch {sketch} contradicts --size {size}")
        return n, k
    if trainers is not None:
        return trainers, sketch or DEFAULT_SKETCH
    if max_trainers is not None:
        if sketch is not None:
            raise fail("--max-trainers picks the sketch width too: give --size NxK for another one")
        try:
            return circuit_for(max_trainers)
        except ValueError as exc:
            raise fail(str(exc)) from None
    if required:
        raise fail(
            "give the verifier's circuit size: --size NxK (e.g. --size 16x32) or --max-trainers M "
            "(the smallest circuit for projects of up to M trainers); there is no default off the local chain"
        )
    return DEFAULT_SIZE[0], sketch or DEFAULT_SIZE[1]


def checked_address(text: str, what: str) -> str:
    """``text`` as a checksummed address (an error naming ``what`` if it is not one)."""
    if not is_address(text):
        raise fail(f"{what} must be an address (0x and 40 hex digits), got {text!r}")
    return to_checksum_address(text)


def _srs_label(sha256: str, development: bool) -> str:
    return (
        f"DEVELOPMENT SRS (sha256 {sha256}, generated by its deployer: insecure)"
        if development
        else f"SRS sha256 {sha256}"
    )


@zk_app.command("setup")
def zk_setup_cmd(
    size: str | None = SIZE,
    trainers: int | None = TRAINERS,
    sketch: int | None = SKETCH,
    max_trainers: int | None = MAX_PROJECT_TRAINERS,
    srs: Path | None = SRS_OPTION,
    row_only: bool = typer.Option(
        False, "--row-only", help="Only the row circuit of width K (what a trainer needs to dispute a rejection)."
    ),
) -> None:
    """Build (once per circuit size and SRS; cached in .cache/zk or $MARKETPLACE_ZK_CACHE) a circuit's
    keys and EVM verifier artefacts. To prove for a deployed verifier, use the SRS file it was deployed
    with (`marketplace zk info` shows its sha256) and its size."""
    from marketplace.adapters.ezkl.keys import setup, setup_row

    n, k = circuit_size(size, trainers, sketch, max_trainers, required=False)
    if srs is None:
        console.print(
            "[yellow]warning:[/yellow] generating a development SRS locally (ezkl gen_srs): whoever generated "
            "it could forge proofs, and its keys match only verifiers deployed from this cache. Use --srs with "
            "a ceremony SRS for anything real."
        )
    what = f"the {k}-wide row circuit" if row_only else f"the {n}-trainer, {k}-wide circuit"
    with console.status(f"setting up {what} (about a minute the first time)"):
        keys = setup_row(k, srs=srs) if row_only else setup(n, k, srs=srs)
    kind = "row-circuit" if row_only else f"circuit {keys.size}"
    console.print(
        f"{kind} keys in {keys.root} (logrows {keys.logrows}, proving key {keys.pk.stat().st_size / 2**30:.2f} GB)"
    )
    console.print(f"made with {_srs_label(keys.srs_sha256, keys.development_srs)}", soft_wrap=True)


@zk_app.command("deploy")
def zk_deploy_cmd(
    size: str | None = SIZE,
    trainers: int | None = TRAINERS,
    sketch: int | None = SKETCH,
    max_trainers: int | None = MAX_PROJECT_TRAINERS,
    srs: Path | None = SRS_OPTION,
    allow_dev_srs: bool = typer.Option(
        False, "--allow-dev-srs", help="Allow a development SRS on a chain that is not the local one (INSECURE)."
    ),
    halo2_verifier: str | None = typer.Option(
        None, help="A deployed reusable Halo2 verifier to reuse (default: the recorded one, else a new one)."
    ),
    again: bool = typer.Option(
        False, "--again", help="Deploy even if an approved verifier with the same keys is already recorded."
    ),
    reusable: bool = typer.Option(
        False,
        "--reusable",
        help="Verify rounds with the reusable verifier and the VKA instead of the circuit's own split verifier "
        "(about 300k gas more per round; chosen anyway when a part of the split would not fit in 24,576 bytes: "
        "the 64 x 32 circuit).",
    ),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
) -> None:
    """Deploy a circuit's on-chain verifier (an EzklRoundVerifier with the circuit's VKA and, unless --reusable,
    the circuit's own verifier split in two contracts, which rounds go through; row proofs go through the
    reusable Halo2 verifier) and approve it in the market once both deployed codes are checked against the
    keys; you must be the market's owner (checked first). Every deployed verifier is kept in
    deployments/<network>.json (`zk_verifiers`)."""
    from marketplace.adapters.ezkl.dedicated import DedicatedVerifierError, DoesNotFit, split_artifacts
    from marketplace.adapters.ezkl.evm import (
        DevelopmentSrsRefused,
        ZkDeployError,
        deploy_recorded_zk_verifier,
        recorded_twin,
        require_owner,
    )
    from marketplace.adapters.ezkl.keys import setup

    halo2 = checked_address(halo2_verifier, "--halo2-verifier") if halo2_verifier is not None else None
    market = connect_market(network, signing_account(network, keystore, dev_account))
    try:
        chain_id = market.chain.chain_id
        local = chain_id == LOCAL_CHAIN_ID
        n, k = circuit_size(size, trainers, sketch, max_trainers, required=not local)
        require_owner(market)
        if srs is None and not local:
            if not allow_dev_srs:
                raise DevelopmentSrsRefused(chain_id)
            console.print(
                f"[bold red]WARNING: deploying a verifier made with a DEVELOPMENT SRS on chain {chain_id}.[/bold red]\n"
                "[bold red]This machine generated that SRS: whoever holds it can forge proofs the verifier "
                "accepts, and no other machine can make matching keys. Test networks only.[/bold red]"
            )
        elif srs is None:
            console.print("development SRS (generated here): fine on the local chain, insecure anywhere else")
        with console.status(f"setting up the {n}x{k} circuit (about a minute the first time)"):
            keys = setup(n, k, srs=srs)
        specific = not reusable
        if specific:
            with console.status("generating the circuit's own verifier, split in two contracts"):
                try:
                    split_artifacts(keys)
                except DoesNotFit as exc:  # a measured limit (64 x 32), not a template change: fall back
                    console.print(
                        f"[yellow]{exc}[/yellow]: rounds will go through the reusable verifier under the VKA "
                        "(about 300k gas more per round)",
                        soft_wrap=True,
                    )
                    specific = False
        record = read_record(network)
        twin = None if again or record is None else recorded_twin(market, record, keys, specific=specific)
        if twin is not None:
            console.print(
                f"verifier {twin.address} ({twin.size}, rule {twin.rule_version}) with these keys is already "
                "deployed, approved and recorded: nothing deployed (--again deploys another)",
                soft_wrap=True,
            )
            return
        with console.status("deploying and approving the verifier"):
            entry = deploy_recorded_zk_verifier(
                market, keys, network, halo2_verifier=halo2, allow_dev_srs=allow_dev_srs, specific=specific
            )
    except DedicatedVerifierError as exc:
        raise fail(
            f"{exc}: nothing approved; `--reusable` verifies rounds with the reusable verifier instead"
        ) from None
    except (ConfigError, ChainError, ZkDeployError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"verifier for {n} trainers x {k}-wide sketches: [bold]{entry.address}[/bold] "
        f"(Halo2 verifier {entry.halo2_verifier}); approved: projects may name it with `project create --verifier`",
        soft_wrap=True,
    )
    console.print(
        f"recorded in deployments/{network}.json: size {entry.size}, rule {entry.rule_version}, "
        f"{_srs_label(entry.srs_sha256, entry.development_srs)}",
        soft_wrap=True,
    )
    console.print(f"rounds go through {_rounds_label(entry.round_verifier, entry.quotient_helper)}", soft_wrap=True)
    if not entry.development_srs:
        console.print(
            f"publish the SRS file (sha256 {entry.srs_sha256}) and the size {entry.size}: an aggregator gets "
            f"matching keys with `marketplace zk setup --srs FILE --size {entry.size}`",
            soft_wrap=True,
        )
    _print_still_approved(network, entry)


def _rounds_label(verifier: str | None, helper: str | None) -> str:
    if verifier is None:
        return "the reusable Halo2 verifier under the circuit's VKA"
    return f"the circuit's own verifier {verifier} (quotient helper {helper})"


def _print_still_approved(network: str, entry: ZkVerifierRecord) -> None:
    """Lists the other recorded verifiers of ``entry``'s size still marked approved."""
    record = read_record(network)
    others = [v for v in (record.zk_verifiers if record else []) if v.approved and v.size == entry.size]
    others = [v for v in others if v.address != entry.address]
    for v in others:
        console.print(
            f"still approved: earlier verifier {v.address} ({v.size}, rule {v.rule_version}); "
            f"`marketplace zk revoke {v.address}` withdraws it from new projects",
            soft_wrap=True,
        )


@zk_app.command("info")
def zk_info_cmd(
    verifier: list[str] | None = typer.Option(
        None, "--verifier", help="A verifier address to inspect (repeatable; default: every recorded zk verifier)."
    ),
    network: str = NETWORK,
) -> None:
    """For each deployed zk verifier: its size, rule version, approval, the recorded SRS, and whether the
    keys cached here match it (else how to get keys that do)."""
    from marketplace.adapters.ezkl.dedicated import DedicatedVerifierError
    from marketplace.adapters.ezkl.evm import check_round_verifier, describe_verifier, has_code
    from marketplace.adapters.ezkl.keys import cache_dir, find_keys, find_row_keys

    market = connect_market(network, read_only=True)
    record = read_record(network)
    addresses = list(verifier or [v.address for v in (record.zk_verifiers if record else [])])
    if not addresses:
        console.print(f"no zk verifier recorded for {network!r}: pass --verifier ADDRESS (or deploy one: `zk deploy`)")
        return
    console.print(f"keys cache: {cache_dir()} (MARKETPLACE_ZK_CACHE overrides)", soft_wrap=True)
    for address in [checked_address(a, "--verifier") for a in addresses]:
        if not has_code(market.chain, address):
            console.print(f"verifier {address}: no contract there on chain {market.chain.chain_id}")
            continue
        try:
            deployed = describe_verifier(market, address)
        except (ChainError, Web3Exception) as exc:
            console.print(f"verifier {address}: not a round verifier ({exc})", soft_wrap=True)
            continue
        info = deployed.info
        rule = "this code's" if info.rule_version == RULE_VERSION else f"NOT this code's {RULE_VERSION}"
        size = f"{info.max_trainers}x{info.sketch_width}"
        console.print(
            f"verifier {info.address}: {info.proof_system}, size {size}, rule {info.rule_version} ({rule}), "
            f"{'approved' if deployed.approved else 'not approved'}",
            soft_wrap=True,
        )
        entry = record.zk_verifier(info.address) if record else None
        srs_hint = "FILE (the SRS file it was deployed with)"
        if entry is not None:
            console.print(f"  recorded: {_srs_label(entry.srs_sha256, entry.development_srs)}", soft_wrap=True)
            srs_hint = f"FILE (the SRS file of sha256 {entry.srs_sha256})"
        else:
            console.print("  not in the deployment record: ask its deployer for the SRS file (or its sha256)")
        if deployed.vka is None or deployed.row_vka is None:
            continue
        console.print(f"  rounds: {_rounds_label(deployed.round_verifier, deployed.quotient_helper)}", soft_wrap=True)
        if entry is not None and (entry.round_verifier, entry.quotient_helper) != (
            deployed.round_verifier,
            deployed.quotient_helper,
        ):
            console.print("  [bold red]the record names another round verifier or helper than the chain[/bold red]")
        keys = find_keys(info.max_trainers, info.sketch_width, deployed.vka)
        row_keys = find_row_keys(info.sketch_width, deployed.row_vka)
        console.print(
            f"  local keys: round circuit {'match: ' + str(keys.root) if keys else 'none match'}; "
            f"row circuit {'match: ' + str(row_keys.root) if row_keys else 'none match'}",
            soft_wrap=True,
        )
        if keys is None or row_keys is None:
            console.print(
                f"  to get matching keys: `marketplace zk setup --srs {srs_hint} --size {size}`", soft_wrap=True
            )
        if keys is not None and deployed.round_verifier is not None:
            try:
                check_round_verifier(market.chain, info.address, keys)
                console.print("  round verifier and helper: the codes compiled from these keys")
            except DedicatedVerifierError as exc:
                console.print(f"  [bold red]round verifier NOT the keys': {exc}[/bold red]", soft_wrap=True)


@zk_app.command("revoke")
def zk_revoke_cmd(
    address: str = typer.Argument(..., help="The verifier to withdraw from new projects."),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
) -> None:
    """Withdraw a verifier's approval (owner only): new projects cannot name it; projects already using
    it keep it. The record keeps the verifier, marked not approved."""
    from marketplace.adapters.ezkl.evm import ZkDeployError, set_recorded_approval

    verifier = checked_address(address, "the verifier")
    market = connect_market(network, signing_account(network, keystore, dev_account))
    try:
        entry = set_recorded_approval(market, network, verifier, False)
    except (ConfigError, ChainError, ZkDeployError) as exc:
        raise fail(str(exc)) from None
    where = "its record updated" if entry is not None else "it is not in the deployment record"
    console.print(f"verifier {verifier} is no longer approved for new projects ({where})", soft_wrap=True)
