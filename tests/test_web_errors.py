"""Errors in words: every custom error of the contracts and every invalid input has a sentence that names the
field or the action, the answer carries the field at fault, and neither the raw error ("ZeroAddress()",
"WrongStatus(projectId=1, expected=0, actual=2)", "{'code': -32003, ...}") nor the validation library's wording
("input should be less than 79228162514264337593543950336") reaches anyone (issue 15)."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, keccak
from fastapi.testclient import TestClient

from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.errors import RevertDecoder
from marketplace.adapters.chain.market import encode_rule_version
from marketplace.rule import RULE_VERSION
from marketplace.web.errors import CUSTOM_ERRORS, VALIDATION_WORDS, Attempt, invalid_value, revert_words
from marketplace.web.forms import LABELS, MAX_BUDGET_WEI
from marketplace.web.schemas import eth
from marketplace.web.templating import build_templates
from tests.market_fixtures import ETH, Actors
from tests.test_web_api import form, job
from tests.web_fixtures import client, ipfs_node, web_app, web_settings  # noqa: F401

#: An EzklRoundVerifier's `roundVerifier` when rounds go through the (mock) reusable verifier.
NO_ROUND_VERIFIER = "0x" + "00" * 20

#: What must never reach people: a raw custom error, a JSON-RPC error object, the validation library's words.
LEAKS = re.compile(
    r"\b[A-Z][A-Za-z]+\([a-zA-Z]*=|[A-Z][a-z]+[A-Z]\w*\(\)|\{'code'|nput should|Value error|decode error"
)


def sample(kind: str) -> Any:
    """A value of ABI type ``kind`` for an error's argument."""
    if kind == "address":
        return "0x" + "ab" * 20
    if kind == "string":
        return "budget"
    if kind.startswith("bytes"):
        return b"\x01" * int(kind[5:] or 32)
    if kind.startswith("int"):
        return -5
    if kind == "bool":
        return True
    return 1_700_000_000 if kind == "uint256" else 1  # uint8: an enum (Status)


def abi_errors() -> dict[str, list[dict[str, Any]]]:
    """Every custom error of every contract the project compiles, by name (its ABI entries: one per signature)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for artifact in compile_contracts().values():
        for entry in artifact.abi:
            if entry.get("type") == "error" and entry not in found.get(entry["name"], []):
                found.setdefault(entry["name"], []).append(entry)
    return found


def test_every_custom_error_in_the_abis_has_a_sentence() -> None:
    """The table holds exactly the contracts' custom errors, and each, decoded from real revert data with sample
    arguments, becomes a sentence: its code is the error's name, its words hold none of the raw form."""
    errors = abi_errors()
    assert set(CUSTOM_ERRORS) == set(errors), (set(errors) - set(CUSTOM_ERRORS), set(CUSTOM_ERRORS) - set(errors))
    for name, entries in errors.items():
        for entry in entries:
            types = [i["type"] for i in entry["inputs"]]
            raw = function_signature_to_4byte_selector(f"{name}({','.join(types)})") + encode(
                types, [sample(t) for t in types]
            )
            revert = RevertDecoder([[entry]]).decode(raw)
            assert revert.name == name
            words = revert_words(revert, Attempt("join project 7", 7))
            assert words.code == name and len(words.sentence) > 10, name
            assert f"{name}(" not in words.sentence and not LEAKS.search(words.sentence), (name, words.sentence)
            detail = words.detail(Attempt("join project 7", 7))
            assert detail.startswith("The chain would refuse to join project 7: ") and detail.endswith("."), detail


def test_the_chains_refusals_name_the_field_of_a_new_project_they_are_about() -> None:
    """A refusal of ``createProject`` names the config field at fault (the form highlights it)."""
    decoder = RevertDecoder([compile_contracts()["TrainingMarket"].abi])

    def field_of(signature: str, *args: Any) -> str | None:
        types = signature[signature.index("(") + 1 : -1]
        raw = function_signature_to_4byte_selector(signature) + encode([t for t in types.split(",") if t], list(args))
        return revert_words(decoder.decode(raw), Attempt("create this project")).field

    assert field_of("ZeroAddress()") == "aggregator"
    assert field_of("VerifierNotApproved(address)", "0x" + "ab" * 20) == "verifier"
    assert field_of("VerifierTooSmall(uint256,uint256)", 8, 4) == "max_trainers"
    assert field_of("InvalidConfig(string)", "budget") == "reward_budget"
    assert field_of("InvalidConfig(string)", "periods") == "submission_period"
    assert field_of("InvalidCid()") == "initial_model_cid"
    assert field_of("ModelNameTooLong(uint256,uint256)", 70, 64) == "model_name"
    assert field_of("WrongStatus(uint256,uint8,uint8)", 1, 0, 2) is None


def test_validation_errors_are_put_in_our_words() -> None:
    contexts = {"gt": 0, "ge": 300, "lt": 2**96, "le": 4_294_967_295, "expected": "'open' or 'closed'",
                "min_length": 1, "max_length": 64}  # fmt: skip
    for kind in VALIDATION_WORDS:
        words = invalid_value({"type": kind, "ctx": contexts, "msg": "Input should be whatever"})
        assert words.startswith(("must", "is")) and not LEAKS.search(words), (kind, words)
    assert invalid_value({"type": "less_than_equal", "ctx": {"le": 4_294_967_295}}) == "must be at most 4,294,967,295"
    assert (
        invalid_value({"type": "value_error", "ctx": {"error": ValueError("is 70 bytes long")}}) == "is 70 bytes long"
    )
    assert invalid_value({"type": "some_new_type", "msg": "Input should be new"}) == "is invalid"


# ---------------------------------------------------------------------------- what issue 15 saw


def test_the_zero_address_is_refused_on_its_field(client: TestClient, actors: Actors) -> None:
    """ "ZeroAddress()" reached the user: now the aggregator field says why, in the API and on the form."""
    zero = "0x" + "00" * 20
    refused = client.post(
        "/api/tx/create-project", json={**job(actors, aggregator=zero), "sender": actors.owner.address}
    )
    assert refused.status_code == 422 and refused.json()["field"] == "aggregator"
    assert refused.json()["errors"] == {"aggregator": "is the zero address (0x0000…0000), which nobody controls"}
    page = client.post("/projects/new", data=form(actors, aggregator=zero), headers={"HX-Request": "true"})
    assert page.status_code == 422 and 'data-field="aggregator"' in page.text
    assert "Aggregator address is the zero address" in page.text and not LEAKS.search(page.text)


def test_too_many_decimals_are_refused_on_the_field_that_has_them(client: TestClient, actors: Actors) -> None:
    """A 30-decimal stake highlighted the budget field: now the stake's own field, whichever amount it is."""
    thirty = "0." + "1" * 30
    for field in ("stake_eth", "aggregator_fee_eth", "budget_eth"):
        page = client.post("/projects/new", data=form(actors, **{field: thirty}), headers={"HX-Request": "true"})
        assert page.status_code == 422
        assert re.findall(r'data-field="(\w+)"', page.text) == [field], field
        assert "has more than 18 decimals" in page.text
    api = client.post("/api/tx/create-project", json=job(actors, stake_eth=thirty))
    assert api.json()["field"] == "stake_eth" and api.json()["errors"]["stake_eth"].startswith(
        "has more than 18 decimals"
    )


def test_an_amount_over_what_the_market_holds_is_refused_in_words(client: TestClient, actors: Actors) -> None:
    """ "input should be less than 79228162514264337593543950336" leaked: now the limit, in ETH."""
    most = eth(MAX_BUDGET_WEI)
    for typed in ("79228162514264337593543950336", "77675000000", "1e30"):
        page = client.post("/projects/new", data=form(actors, budget_eth=typed), headers={"HX-Request": "true"})
        assert page.status_code == 422 and 'data-field="budget_eth"' in page.text, typed
        assert f"Reward budget is more than the market can hold (at most {most} ETH)" in page.text
        assert not LEAKS.search(page.text) and "79228162514264337593543950336" not in page.text.replace(typed, "")
    api = client.post("/api/tx/create-project", json=job(actors, reward_budget_eth="1e30"))
    assert api.json()["errors"] == {"reward_budget_eth": f"is more than the market can hold (at most {most} ETH)"}
    # the largest budget the form takes is one the market takes, protocol fee included
    ok = client.post(
        "/api/tx/create-project", json=job(actors, reward_budget=str(MAX_BUDGET_WEI), reward_budget_eth=None)
    )
    assert ok.status_code == 200, ok.text


def test_a_refusal_without_a_field_does_not_ask_to_correct_one(client: TestClient, actors: Actors) -> None:
    """The simulation's refusal that is about no field (a wallet that cannot pay) is said as it is, in words."""
    poor = "0x" + "42" * 20
    page = client.post("/projects/new", data=form(actors, sender=poor), headers={"HX-Request": "true"})
    assert page.status_code == 422 and "data-field=" not in page.text
    assert "The chain would refuse to create this project: the sending wallet cannot pay the 1.63 ETH" in page.text
    assert not LEAKS.search(page.text) and "-32003" not in page.text


def test_a_verifier_too_small_for_the_job_highlights_the_maximum_trainers(client: TestClient, actors: Actors) -> None:
    """The chain's own refusal of a field (a verifier with 4 slots for a job of 5 trainers) lands on that field."""
    chain = actors.admin.chain
    mock = chain.deploy(actors.artifacts["MockHalo2Verifier"])
    words = [keccak(text=f"vka word {i}") for i in range(8)]
    version = encode_rule_version(RULE_VERSION)
    row_words = [keccak(text=f"row vka word {i}") for i in range(8)]
    label = ("zk 4x32", "a 4x32 circuit")
    zk4 = chain.deploy(
        actors.artifacts["EzklRoundVerifier"],
        mock.address,
        words,
        row_words,
        4,
        32,
        12345,
        version,
        *label,
        NO_ROUND_VERIFIER,
    )
    chain.transact(actors.admin.market.functions.setVerifierApproval(zk4.address, True))
    sender = actors.owner.address
    page = client.post(
        "/projects/new", data=form(actors, max_trainers="5", verifier=zk4.address, sender=sender),
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert page.status_code == 422 and re.findall(r'data-field="(\w+)"', page.text) == ["max_trainers"]
    assert "the verifier proves rounds of at most 4 trainers and this job allows 5" in page.text
    api = client.post(
        "/api/tx/create-project", json={**job(actors, max_trainers=5, verifier=zk4.address), "sender": sender}
    )
    assert api.status_code == 422 and api.json()["code"] == "VerifierTooSmall"
    assert api.json()["field"] == "max_trainers" and not LEAKS.search(api.text)
    assert api.json()["errors"] == {
        "max_trainers": "is refused by the market: the verifier proves rounds of at most 4 trainers and this job "
        "allows 5: choose a larger verifier or fewer trainers"
    }


def test_a_failed_transaction_says_why_in_words(
    client: TestClient, actors: Actors, accounts: list[LocalAccount]
) -> None:
    """A mined transaction that reverted: its status names the custom error (``code``) and says why."""
    pid = actors.training_project(2)
    stranger = accounts[11]
    w3 = actors.chain.w3
    tx = {
        "from": stranger.address, "to": actors.deployment.address("TrainingMarket"), "value": ETH // 10,
        "data": actors.chain.calldata(actors.owner.market.functions.join(pid)), "gas": 300_000,
        "nonce": w3.eth.get_transaction_count(stranger.address), "chainId": actors.chain.chain_id,
        **actors.chain.fees(),
    }  # fmt: skip
    sent = w3.eth.send_raw_transaction(stranger.sign_transaction(tx).raw_transaction).to_0x_hex()
    w3.eth.wait_for_transaction_receipt(sent)
    status = client.get(f"/api/tx/{sent}").json()
    assert status["status"] == "failed" and status["code"] == "WrongStatus"
    assert status["error"] == f"project {pid} is training, and that is possible only while it is open"


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "words"),
    [
        ("GET", "/api/projects?limit=0", None, "limit", "must be at least 1"),
        ("GET", "/api/projects?min_budget=1.5", None, "min_budget", "must be a whole number written in digits"),
        (
            "GET",
            "/api/projects?sort=cheapest",
            None,
            "sort",
            "must be one of: newest, oldest, budget, rounds, trainers or reliability",
        ),
        ("POST", "/api/tx/join", {"project_id": "7"}, "project_id", "must be a whole number"),
        ("POST", "/api/tx/join", {}, "project_id", "is required"),
        ("POST", "/api/tx/join", {"project_id": 1, "extra": 1}, None, None),
        ("POST", "/api/models/mlp/init", {"seed": 2**40}, "seed", "must be at most 4,294,967,295"),
        ("POST", "/api/tx/create-project", {"rounds": 2}, "min_trainers", "is required"),
    ],
)
def test_bad_requests_are_answered_in_words(
    client: TestClient, method: str, path: str, body: Any, field: str | None, words: str | None
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code in (200, 404, 422), response.text
    problem = response.json()
    assert not LEAKS.search(response.text), response.text
    if field is not None:
        assert response.status_code == 422 and problem["field"] == field and problem["errors"][field] == words
        assert problem["code"] == "InvalidInput" and field in problem["detail"]


def test_a_body_that_is_not_json_is_said_so(client: TestClient) -> None:
    broken = client.post("/api/tx/join", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["errors"] == {"body": "is not valid JSON"}
    assert broken.json()["field"] == "body" and not LEAKS.search(broken.text)


def test_only_an_error_on_a_field_of_the_form_asks_to_correct_it(client: TestClient, actors: Actors) -> None:
    """ "Please correct the highlighted field" followed errors that highlight none. A form-level error alone (a
    malformed wallet, the chain's refusal about no field) is said in the alert box and nothing asks to correct a
    field; an error about a value the form does not show (the wallet) is said there with its label, and is not
    counted as a highlighted field."""
    for sender in ("0x1234", "0x" + "42" * 20):  # not an address; an address that cannot pay
        page = client.post("/projects/new", data=form(actors, sender=sender), headers={"HX-Request": "true"})
        assert page.status_code == 422 and 'role="alert"' in page.text, sender
        assert "Please correct" not in page.text and 'aria-invalid="true"' not in page.text, sender
    env = build_templates().env
    context = {
        "values": {}, "labels": LABELS, "models": {"mlp": "an MLP"}, "verifiers": [], "protocol_fee_bps": 200,
        "settings": SimpleNamespace(ipfs_api=None),
    }  # fmt: skip
    hidden = env.get_template("_job_form.html").render(**context, errors={"sender": "is not an Ethereum address"})
    assert "Please correct" not in hidden and 'aria-invalid="true"' not in hidden
    assert "Wallet is not an Ethereum address" in hidden  # said, with its label
    errors = {"": "Refused.", "budget_eth": "must be a number"}
    both = env.get_template("_job_form.html").render(**context, errors=errors)
    assert "Refused." in both and "Please correct the highlighted field." in both
    assert re.findall(r'aria-invalid="true"', both) == ['aria-invalid="true"']
