"""Circuit keys are keyed by the SRS they were made with: keys made with one SRS are never returned
for another, keys of an SRS are found again in the cache, and a prover gets the keys whose VKA its
verifier registered (with ``--srs``: that SRS's keys, checked; without: any cached keys that match).

Uses the row circuit (K = 32, logrows 12: seconds to set up) in a temporary cache
(``MARKETPLACE_ZK_CACHE``). The stand-in for a ceremony SRS is generated here at logrows 13, one more
than the row circuit needs, as a round circuit's ceremony SRS is larger than the row circuit: ezkl
downsizes it, and its proofs verify on chain."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import ezkl
import numpy as np
import pytest
from web3.contract import Contract

from marketplace.adapters.chain.market import encode_rule_version
from marketplace.adapters.ezkl.evm import NO_ROUND_VERIFIER, deploy_halo2_verifier
from marketplace.adapters.ezkl.keys import (
    DEV_SRS,
    RowKeys,
    cached_row_keys,
    find_row_keys,
    setup_row,
    sha256_file,
    srs_dir,
)
from marketplace.protocol.commitment import commit_update, published_row
from marketplace.round.prove import EzklRowProver, VerifyingKeyMismatch, row_prover_for
from marketplace.rule import RULE_VERSION
from tests.market_fixtures import Actors

K = 32
N = 4
ZERO_ROW = 12345  # any field element: no round is proven here


@pytest.fixture(scope="module")
def zk_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("zk-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MARKETPLACE_ZK_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def ceremony_srs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("srs") / "ceremony.srs"
    ezkl.gen_srs(str(path), 13)
    return path


@pytest.fixture(scope="module")
def dev_keys(zk_cache: Path) -> RowKeys:
    return setup_row(K)


@pytest.fixture(scope="module")
def ceremony_keys(zk_cache: Path, ceremony_srs: Path) -> RowKeys:
    return setup_row(K, srs=ceremony_srs)


def test_keys_are_cached_per_srs_and_found_again(
    zk_cache: Path, ceremony_srs: Path, dev_keys: RowKeys, ceremony_keys: RowKeys, tmp_path: Path
) -> None:
    sha = sha256_file(ceremony_srs)
    assert (dev_keys.srs_id, dev_keys.development_srs) == (DEV_SRS, True)
    assert (ceremony_keys.srs_id, ceremony_keys.development_srs, ceremony_keys.srs_sha256) == (sha, False, sha)
    assert dev_keys.root == zk_cache / "dev-srs" / "row-k32"
    assert ceremony_keys.root == zk_cache / f"srs-{sha[:16]}" / "row-k32" == srs_dir(sha) / "row-k32"
    assert dev_keys.srs_sha256 == sha256_file(dev_keys.srs) != sha
    assert dev_keys.vka_words() != ceremony_keys.vka_words()  # the verifying key depends on the SRS

    # Found again, not rebuilt: the same SRS (keyed by its content, wherever the file is), and the dev SRS.
    built = {keys.root: keys.pk.stat().st_mtime_ns for keys in (dev_keys, ceremony_keys)}
    copy = tmp_path / "elsewhere.srs"
    shutil.copyfile(ceremony_srs, copy)
    assert setup_row(K, srs=copy) == ceremony_keys and setup_row(K) == dev_keys
    assert {keys.root: keys.pk.stat().st_mtime_ns for keys in (dev_keys, ceremony_keys)} == built

    assert cached_row_keys(K) == [dev_keys, ceremony_keys]
    assert find_row_keys(K, ceremony_keys.vka_words()) == ceremony_keys
    assert find_row_keys(K, dev_keys.vka_words()) == dev_keys
    assert find_row_keys(K, [b"\1" * 32]) is None and find_row_keys(64, dev_keys.vka_words()) is None


def test_keys_made_with_one_srs_are_never_returned_for_another(
    zk_cache: Path, dev_keys: RowKeys, tmp_path: Path
) -> None:
    """Development keys copied into another SRS's folder (a mixed-up cache) are not listed and not
    returned for that SRS: its setup rebuilds the folder with its own keys."""
    third = tmp_path / "third.srs"
    ezkl.gen_srs(str(third), 12)
    sha = sha256_file(third)
    mixed = srs_dir(sha) / "row-k32"
    shutil.copytree(dev_keys.root, mixed)
    assert all(keys.root != mixed for keys in cached_row_keys(K))
    (mixed / "srs_id").write_text(sha)  # even claiming to be of that SRS: the fingerprint is the dev SRS's
    assert all(keys.root != mixed for keys in cached_row_keys(K))

    keys = setup_row(K, srs=third)
    assert (keys.root, keys.srs_id) == (mixed, sha)
    assert keys.vka_words() != dev_keys.vka_words() and sha256_file(keys.srs) == sha
    assert keys in cached_row_keys(K)
    shutil.rmtree(srs_dir(sha))


def test_a_mismatch_is_refused_naming_the_srs(dev_keys: RowKeys, ceremony_keys: RowKeys) -> None:
    with pytest.raises(VerifyingKeyMismatch, match=f"made with SRS sha256 {ceremony_keys.srs_id}") as caught:
        EzklRowProver(ceremony_keys, row_vka=dev_keys.vka_words(), verifier="0xabc")
    assert "`marketplace zk setup --srs FILE --row-only --sketch 32`" in str(caught.value)
    with pytest.raises(VerifyingKeyMismatch, match="made with a development SRS"):
        EzklRowProver(dev_keys, row_vka=ceremony_keys.vka_words(), verifier="0xabc")
    assert EzklRowProver(ceremony_keys, row_vka=ceremony_keys.vka_words()).keys == ceremony_keys


def _adapter(actors: Actors, halo2: str, row_keys: RowKeys, stand_in: RowKeys) -> Contract:
    """An EzklRoundVerifier registering ``row_keys``' row VKA (``stand_in``'s VKA, a real one of another
    SRS, stands in for the round circuit's: no round is proven here), approved in the market."""
    chain = actors.chain
    adapter = chain.deploy(
        actors.artifacts["EzklRoundVerifier"],
        halo2,
        stand_in.vka_words(),
        row_keys.vka_words(),
        N,
        K,
        ZERO_ROW,
        encode_rule_version(RULE_VERSION),
        "row test verifier",
        "registers a real row circuit's VKA",
        NO_ROUND_VERIFIER,
    )
    chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    return adapter


def test_a_trainer_gets_the_keys_its_verifier_registered(
    actors: Actors,
    zk_cache: Path,
    ceremony_srs: Path,
    dev_keys: RowKeys,
    ceremony_keys: RowKeys,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """row_prover_for with --srs: that SRS's keys, refused unless they are the verifier's; without: the
    cached keys that match, whatever their SRS; none cached: refused at once (no keys built). A proof
    made with the ceremony SRS's keys verifies on chain under its verifier only."""
    chain = actors.chain
    halo2 = deploy_halo2_verifier(chain, ceremony_keys).address  # the same contract for every circuit and SRS
    dev_adapter = _adapter(actors, halo2, dev_keys, ceremony_keys)
    ceremony_adapter = _adapter(actors, halo2, ceremony_keys, dev_keys)
    dev_project = actors.create(verifier=dev_adapter.address, max_trainers=N)
    ceremony_project = actors.create(verifier=ceremony_adapter.address, max_trainers=N)
    trainer = actors.trainers[0]

    assert _keys(row_prover_for(trainer, dev_project)) == dev_keys
    assert _keys(row_prover_for(trainer, ceremony_project)) == ceremony_keys
    assert _keys(row_prover_for(trainer, ceremony_project, srs=ceremony_srs)) == ceremony_keys
    with pytest.raises(VerifyingKeyMismatch, match=f"registered by verifier {dev_adapter.address}"):
        row_prover_for(trainer, dev_project, srs=ceremony_srs)

    prover = row_prover_for(trainer, ceremony_project)
    row, commitment = commit_update(np.random.default_rng(3).normal(size=2_000), 11, K)
    proof, ints = prover.prove_row(row), published_row(row)
    assert chain.call(ceremony_adapter.functions.verifyRow(commitment, ints, proof))
    assert not chain.call(dev_adapter.functions.verifyRow(commitment, ints, proof))

    empty = tmp_path / "empty-cache"
    monkeypatch.setenv("MARKETPLACE_ZK_CACHE", str(empty))
    with pytest.raises(VerifyingKeyMismatch, match=f"in {empty} do not match"):
        row_prover_for(trainer, ceremony_project)
    assert not empty.exists()  # nothing was built


def _keys(prover: object) -> RowKeys:
    assert isinstance(prover, EzklRowProver)
    return prover.keys
