"""Verifiers have names (issue 15): each verifier contract declares a name, a description and whether it proves
nothing; the job form, its review step, the project and join pages and every verify result show them, and a
project whose verifier proves nothing is labelled as such. A verifier deployed before names shows as its address
and "unnamed verifier".
"""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import html
import re
from pathlib import Path

from eth_utils import keccak
from fastapi.testclient import TestClient
from web3.contract import Contract

from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.market import encode_rule_version
from marketplace.adapters.chain.verifier_label import (
    UNNAMED,
    VerifierLabel,
    clean_text,
    ezkl_verifier_text,
    read_verifier_label,
)
from marketplace.rule import RULE_VERSION
from marketplace.web.schemas import VerifyResult
from marketplace.web.templating import build_templates
from tests.market_fixtures import Actors, reverts
from tests.web_fixtures import (  # noqa: F401
    FinishedProject,
    client,
    finished_project,
    ipfs,
    ipfs_node,
    web_app,
    web_settings,
)

#: An EzklRoundVerifier's `roundVerifier` when rounds go through the (mock) reusable verifier.
NO_ROUND_VERIFIER = "0x" + "00" * 20

LEGACY = Path(__file__).parent / "fixtures" / "legacy_verifier"
TEST_NAME = "Test verifier — proves nothing"


def zk_verifier(actors: Actors, name: str, description: str, n: int = 4, approve: bool = True) -> Contract:
    """An ``EzklRoundVerifier`` of an ``n``x32 circuit in front of the mock Halo2 verifier (no real keys)."""
    chain = actors.admin.chain
    mock = chain.deploy(actors.artifacts["MockHalo2Verifier"])
    words = [keccak(text=f"vka word {i}") for i in range(8)]
    row = [keccak(text=f"row vka word {i}") for i in range(8)]
    version = encode_rule_version(RULE_VERSION)
    adapter = chain.deploy(
        actors.artifacts["EzklRoundVerifier"],
        mock.address,
        words,
        row,
        n,
        32,
        12345,
        version,
        name,
        description,
        NO_ROUND_VERIFIER,
    )
    if approve:
        chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    return adapter


def legacy_verifier(actors: Actors, tmp_path: Path) -> Contract:
    """The test verifier as deployed before names (no ``name()``), approved in the market."""
    artifacts = compile_contracts([LEGACY], tmp_path / "legacy.json")
    chain = actors.admin.chain
    verifier = chain.deploy(artifacts["LegacyRoundVerifier"], 32, encode_rule_version(RULE_VERSION))
    chain.transact(actors.admin.market.functions.setVerifierApproval(verifier.address, True))
    return verifier


def text(page: str) -> str:
    """The page's text as a reader sees it: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# ---------------------------------------------------------------------------- contracts


def test_the_test_verifier_declares_that_it_proves_nothing(actors: Actors) -> None:
    label = read_verifier_label(actors.admin.chain, actors.deployment.address("TestRoundVerifier"))
    assert label.name == TEST_NAME and label.title == TEST_NAME
    assert label.proves_nothing and label.proof_system == "test-hash"
    assert label.description is not None and "proves nothing" in label.description


def test_a_zk_verifier_carries_the_name_and_description_it_was_deployed_with(actors: Actors) -> None:
    name, description = ezkl_verifier_text(16, 32, RULE_VERSION, "ab" * 32, development_srs=True)
    assert name == "ezkl verifier: 16 trainers x 32-wide sketches, development SRS"
    assert "up to 16 trainers" in description and "32-wide sketches" in description
    assert "development SRS" in description and "can forge proofs" in description
    ceremony = ezkl_verifier_text(4, 64, RULE_VERSION, "cd" * 32, development_srs=False)
    assert ceremony[0].endswith("ceremony SRS") and f"ceremony SRS (sha256 {'cd' * 32})" in ceremony[1]
    longest = ezkl_verifier_text(64, 256, RULE_VERSION, "ef" * 32, development_srs=True)
    assert len(longest[0].encode()) <= 80 and len(longest[1].encode()) <= 1024  # the constructor's bounds

    adapter = zk_verifier(actors, name, description, n=16)
    chain = actors.admin.chain
    assert chain.call(adapter.functions.name()) == name
    assert chain.call(adapter.functions.description()) == description
    assert chain.call(adapter.functions.provesNothing()) is False
    label = read_verifier_label(chain, adapter.address)
    assert (label.name, label.description, label.proves_nothing) == (name, description, False)


def test_a_zk_verifier_refuses_an_empty_or_overlong_name_or_description(actors: Actors) -> None:
    for name, description in [("", "d"), ("n" * 81, "d"), ("n", ""), ("n", "d" * 1025)]:
        with reverts("InvalidSetup"):
            zk_verifier(actors, name, description, approve=False)
    zk_verifier(actors, "n" * 80, "d" * 1024, approve=False)  # the bounds themselves are fine


def test_a_verifier_deployed_before_names_reads_as_unnamed(actors: Actors, tmp_path: Path) -> None:
    verifier = legacy_verifier(actors, tmp_path)
    label = read_verifier_label(actors.admin.chain, verifier.address)
    assert label.name is None and label.title == UNNAMED and label.description is None
    assert label.proves_nothing  # its proofSystem() is the test verifier's


def test_declared_texts_are_shown_on_one_line_and_bounded() -> None:
    assert clean_text("a\nb\u202e c\x00", 80) == "a b c"
    assert clean_text("x" * 100, 10) == "x" * 9 + "…"


# ---------------------------------------------------------------------------- web pages


def test_the_job_form_names_the_verifiers_and_prefers_one_that_proves_something(
    client: TestClient, actors: Actors
) -> None:
    form = client.get("/projects/new").text
    test_verifier = actors.deployment.address("TestRoundVerifier")
    assert f'value="{test_verifier}" selected>' in form  # the only one: chosen, and labelled
    assert TEST_NAME in html.unescape(form)
    zk = zk_verifier(actors, "ezkl verifier: 4 trainers x 32-wide sketches, development SRS", "proves scores")
    form = client.get("/projects/new").text
    assert f'value="{zk.address}" selected>' in form
    assert f'value="{test_verifier}" selected>' not in form
    options = re.findall(r"<option [^>]*value=\"(0x[0-9a-fA-F]{40})\"[^>]*>([^<]*)</option>", form)
    assert [a for a, _ in options] == [zk.address, test_verifier]  # what proves something first
    shown = dict(options)
    assert html.unescape(shown[zk.address]).startswith("ezkl verifier: 4 trainers x 32-wide sketches")
    assert html.unescape(shown[test_verifier]).startswith(TEST_NAME)
    assert zk.address not in shown[zk.address]  # a name, not the bare address (shortened after it)


def test_the_review_step_names_the_verifier_and_warns_when_it_proves_nothing(
    client: TestClient, actors: Actors
) -> None:
    form = {
        "model_name": "mlp", "initial_model_cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        "rounds": "1", "min_trainers": "2", "max_trainers": "2", "min_reliability_pct": "0", "budget_eth": "1",
        "aggregator_fee_eth": "0.1", "stake_eth": "0.1", "slash_pct": "50", "aggregator": actors.aggregator.address,
        "verifier": actors.deployment.address("TestRoundVerifier"), "join_period_minutes": "60",
        "submission_period_minutes": "10", "reveal_period_minutes": "10", "aggregation_period_minutes": "10",
    }  # fmt: skip
    review = client.post("/projects/new", data=form, headers={"HX-Request": "true"})
    assert review.status_code == 200, review.text
    shown = text(review.text)
    assert f"Verifier {TEST_NAME} (proves nothing: its results are not checked)" in shown
    assert "accepted without any proof: the test verifier proves nothing" in shown
    zk = zk_verifier(actors, "zk 4x32", "Zero-knowledge proof of the scores of up to 4 trainers")
    review = client.post("/projects/new", data={**form, "verifier": zk.address}, headers={"HX-Request": "true"})
    shown = text(review.text)
    assert f"Verifier zk 4x32 {zk.address} Zero-knowledge proof of the scores of up to 4 trainers" in shown
    assert "proves nothing" not in shown


def test_project_and_join_pages_name_the_verifier(client: TestClient, actors: Actors, tmp_path: Path) -> None:
    pid = actors.create()
    for path in (f"/projects/{pid}", f"/projects/{pid}/join"):
        shown = text(client.get(path).text)
        assert f"{TEST_NAME} (proves nothing: its results are not checked)" in shown, path
    legacy = legacy_verifier(actors, tmp_path)
    old = actors.create(verifier=legacy.address)
    shown = text(client.get(f"/projects/{old}").text)
    assert f"Verifier {UNNAMED} (proves nothing: its results are not checked) {legacy.address}" in shown
    listed = client.get("/projects").text  # the project list labels them too
    for project_id in (pid, old):
        row = listed.split(f'data-project-id="{project_id}"')[1].split("</tr>")[0]
        assert "verifier-proves-nothing" in row, project_id


def test_a_verify_result_names_its_verifier_and_never_says_valid_for_one_that_proves_nothing(
    client: TestClient, finished_project: FinishedProject
) -> None:
    answer = client.post(f"/projects/{finished_project.project_id}/rounds/0/verify")
    shown = text(answer.text)
    assert "accepted by the test verifier, which proves nothing" in shown
    assert "proof valid" not in shown
    templates = build_templates()
    named = VerifierLabel("0x" + "11" * 20, "zk 4x32", "d", proves_nothing=False, proof_system="ezkl-halo2-kzg")
    result = VerifyResult(project_id=1, round=0, verifier=named.address, valid=True, gas_estimate=123_456)
    rendered = templates.env.get_template("_verify_result.html").render(result=result, error=None, verifier=named)
    assert "✓ proof valid — checked by zk 4x32" in text(rendered) and "123,456 gas" in rendered
    rejected = result.model_copy(update={"valid": False, "error": "the verifier returned false"})
    rendered = templates.env.get_template("_verify_result.html").render(result=rejected, error=None, verifier=named)
    assert "✗ proof rejected by zk 4x32: the verifier returned false" in text(rendered)
