"""Bad input to the web app: schemathesis fuzzes every JSON API operation from the app's own OpenAPI
schema, and the HTML endpoints (the "post a job" form among them) from a schema written here, against
the real app on the session anvil and a real IPFS node.

No generated request may get a 5xx, every JSON response must match the schema (status code, content
type, headers, body), requests that break the schema must be refused with 4xx, and the index must list
the same projects, rounds and payouts afterwards.

Generated ids and addresses almost never name something that exists, so a valid case keeps each
generated value or, about half the time, takes one that exists on the chain (a project in each state,
its rounds, members, transactions): that is what reaches the chain calls, simulations and proof checks
behind the 404s. The cases come from schemathesis' Hypothesis strategies (``operation.as_strategy``),
one test per operation and generation mode with a bounded number of examples: schemathesis' own pytest
runner (``schemathesis.pytest.from_fixture``) does not run on pytest 9 (it writes ``Node._nodeid``).
"""

# ruff: noqa: F811  (ipfs_node from tests.ipfs_fixtures is used as a fixture argument)
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts
from marketplace.adapters.chain.deploy import Deployment, market_client
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.web.main import create_app
from marketplace.web.routes import api_router
from marketplace.web.settings import WebSettings
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import ETH, Actors, cid_for, commit, commitment_for
from tests.web_fixtures import INITIAL_CID, make_finished_project

#: Examples per operation and generation mode (the whole file stays under a minute on 2 busy cores).
MAX_EXAMPLES = 12
#: Building a model and pinning it to IPFS is slower: fewer examples there; the job form gets more.
EXAMPLES = {("POST", "/api/models/{name}/init"): 6, ("POST", "/projects/new"): 30}

FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def api_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """Every JSON API operation (method, path) of the API's own OpenAPI schema (built without a chain)."""
    app = FastAPI()
    app.include_router(api_router)
    paths = app.openapi()["paths"]
    return {(method.upper(), path): op for path, ops in paths.items() for method, op in ops.items()}


def _negatable(operation: dict[str, Any]) -> bool:
    """Whether schemathesis can make invalid input for the operation: a body, or a parameter that is not any
    string."""
    plain_string = {"type": "string"}
    params = [{k: v for k, v in p["schema"].items() if k != "title"} for p in operation.get("parameters", [])]
    return "requestBody" in operation or any(schema != plain_string for schema in params)


#: Every JSON API operation, read from the API's schema (so a new endpoint is fuzzed without editing this file),
#: with the generation modes that apply.
API_CASES = sorted(
    (method, path, mode)
    for (method, path), operation in api_operations().items()
    for mode in (["valid", "invalid"] if _negatable(operation) else ["valid"])
)
MODES = {"valid": GenerationMode.POSITIVE, "invalid": GenerationMode.NEGATIVE}

#: What people type into number fields besides numbers.
ODD_NUMBERS = ["nan", "inf", "-inf", "1e999", "-1", "1e-30", "9" * 80, "0x10", "1_000", " 2 ", "٣", "²", "1,5", ""]
#: Number fields of a job typed as text: the form's, and the JSON API's amounts (decimal strings).
JOB_NUMBERS = [
    "rounds", "min_trainers", "max_trainers", "budget_eth", "aggregator_fee_eth", "stake_eth", "join_period_minutes",
    "submission_period_minutes", "reveal_period_minutes", "aggregation_period_minutes", "min_reliability_pct",
    "slash_pct", "reward_budget_eth", "reward_budget", "aggregator_fee", "stake",
]  # fmt: skip

#: What every API response must satisfy. Not ``positive_data_acceptance``: a schema-valid string is not
#: necessarily an address, a CID or an existing project, and the API rightly answers 404/409/422 then.
API_CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class World:
    """The app's settings on a chain with one project in each state, what exists there (by parameter
    name, typed as the JSON API takes them) and what the index showed before any fuzzing."""

    settings: WebSettings
    known: dict[str, list[Any]]
    before: dict[str, Any]


def index_view(client: TestClient) -> dict[str, Any]:
    """What the index shows: the project list and every project's detail (rounds, scores, payouts)."""
    projects = client.get("/api/projects").json()["items"]
    details = {p["project_id"]: client.get(f"/api/projects/{p['project_id']}").json() for p in projects}
    return {"projects": projects, "details": details}


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    anvil: AnvilNode,
    deployment: Deployment,
    artifacts: Artifacts,
    accounts: list[LocalAccount],
    ipfs_node: LocalIpfsNode,
) -> Iterator[World]:
    """A finished, an open and a training project on the session chain (reverted afterwards)."""
    admin = ChainClient(anvil.url, accounts[0])
    snapshot = admin.snapshot()
    base = market_client(admin, deployment, artifacts)
    actors = Actors(
        admin=base, owner=base.as_account(accounts[1]), aggregator=base.as_account(accounts[2]),
        trainers=[base.as_account(a) for a in accounts[3:11]], stranger=base.as_account(accounts[11]),
        deployment=deployment, artifacts=artifacts,
    )  # fmt: skip
    with IpfsClient(ipfs_node.api_url, timeout=30.0) as ipfs:
        finished = make_finished_project(actors, ipfs)
    open_id = actors.create(reward_budget=ETH // 10)
    training_id = actors.training_project(3)
    first = actors.trainers[0]  # one commit in the open round: its page shows the commit phase, half done
    commit(first, training_id, 0, cid_for(training_id, 0, first.address), commitment_for(training_id, 0, first.address))
    web_settings = WebSettings(
        rpc_url=anvil.url, deployment=deployment, db_path=Path(tmp_path_factory.mktemp("web")) / "index.sqlite",
        ipfs_api=ipfs_node.api_url, sync_interval=0,
    )  # fmt: skip
    with TestClient(create_app(web_settings), raise_server_exceptions=False) as client:
        before = index_view(client)
    assert [p["project_id"] for p in before["projects"]] == [training_id, open_id, finished.project_id]
    rounds = before["details"][finished.project_id]["rounds"]
    people = [*finished.trainers, actors.owner.address, actors.aggregator.address, actors.stranger.address]
    known: dict[str, list[Any]] = {
        "project_id": [finished.project_id, open_id, training_id], "round_": [0, 1],
        "account": people, "sender": people, "address": people, "q": [actors.owner.address, "mlp", str(open_id)],
        "tx_hash": [r["tx_hash"] for r in rounds] + [p["created_tx"] for p in before["projects"]],
        "name": ["mlp"], "model": ["mlp"], "min_budget_eth": [0.0, 1.5, 1e300], "min_budget": ["0", str(10**30)],
        "max_reliability_bps": [0, 10_000], "limit": [1, 50], "offset": [0, 1, 2**62],
        # a job: the API's (POST /api/tx/create-project: wei or ETH, basis points, seconds)
        "model_name": ["mlp", "cnn"], "rounds": [2], "min_trainers": [2], "max_trainers": [3],
        "reward_budget_eth": ["1.5", "0.000000000000000001"], "reward_budget": [str(ETH)],
        "aggregator_fee_eth": ["0.1"], "stake_eth": ["0.05"], "stake": ["0", str(ETH // 20)],
        "aggregator": [actors.aggregator.address], "verifier": [deployment.address("TestRoundVerifier")],
        "join_period": [3_600], "submission_period": [600], "reveal_period": [600], "aggregation_period": [600],
        "min_reliability_bps": [0, 5_000], "slash_bps": [5_000], "initial_model_cid": [INITIAL_CID],
        # and the form's (POST /projects/new: ETH, percent, minutes)
        "budget_eth": ["1.5", "0.000000000000000001"], "join_period_minutes": [60], "submission_period_minutes": [10],
        "reveal_period_minutes": [10], "aggregation_period_minutes": [10], "min_reliability_pct": ["0", "50"],
        "slash_pct": ["50"], "max_reliability_pct": [0.0, 100.0],
    }  # fmt: skip
    yield World(web_settings, known, before)
    admin.revert(snapshot)


class WithoutLifespan:
    """The app for schemathesis' ASGI client: its pytest plugin ends an app's lifespan after every test, and the
    app closes its index when its lifespan ends (as a server does when it stops). The fixture opens and closes it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture(scope="module")
def app(world: World) -> Iterator[WithoutLifespan]:
    """One app for all the fuzzing, its index synced once (nothing changes on chain while it runs)."""
    app = create_app(world.settings.model_copy(update={"sync_interval": 3600}))
    app.state.services.context.refresh(force=True)
    yield WithoutLifespan(app)
    app.state.services.context.close()


@pytest.fixture(scope="module")
def api_schema(app: WithoutLifespan) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


def body_fields(schema: schemathesis.BaseSchema, operation: schemathesis.APIOperation) -> list[str]:
    """The property names of an operation's request body (following ``$ref``, ``anyOf`` and ``oneOf``)."""
    names: list[str] = []
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    stack = [media.get("schema", {}) for media in content.values()]
    while stack:
        node = stack.pop()
        if "$ref" in node:
            target: Any = schema.raw_schema
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        names += [n for n in node.get("properties", {}) if n not in names]
        stack += [*node.get("anyOf", []), *node.get("oneOf", [])]
    return names


Values = Mapping[str, Sequence[Any]]


def steered(
    strategy: st.SearchStrategy[schemathesis.Case], known: Values, odd: Values, query_names: Sequence[str],
    body_names: Sequence[str],
) -> st.SearchStrategy[schemathesis.Case]:  # fmt: skip
    """Valid cases steered towards what exists (``known``) and what people get wrong (``odd``).

    Each path and query parameter keeps its generated value or takes a known or odd one (optional query
    parameters of ``query_names`` are added too). A body is either the generated one or a known-good one
    (every field of ``body_names``) with up to three fields spoilt by a generated or odd value: a form
    with one bad field gets past the other fields' checks to where that field matters.
    """

    def pick(name: str, value: Any) -> st.SearchStrategy[Any]:
        return st.one_of(st.just(value), *(st.sampled_from(v[name]) for v in (known, odd) if name in v))

    def fields(values: Mapping[str, Any], extra: Sequence[str] = ()) -> st.SearchStrategy[dict[str, Any]]:
        missing = {n: st.sampled_from(known[n]) for n in extra if n in known and n not in values}
        return st.fixed_dictionaries({k: pick(k, v) for k, v in values.items()}, optional=missing)

    def body(generated: Any) -> st.SearchStrategy[Any]:
        good = {n: st.sampled_from(known[n]) for n in body_names if n in known}
        if not isinstance(generated, dict) or not good:
            return st.just(generated)
        spoilable = sorted(set(generated) | {n for n in body_names if n in odd})

        def spoil(names: set[str]) -> st.SearchStrategy[dict[str, Any]]:
            return st.fixed_dictionaries({
                n: st.one_of(*([st.just(generated[n])] if n in generated else []),
                             *([st.sampled_from(odd[n])] if n in odd else []))
                for n in sorted(names)
            })  # fmt: skip

        spoilt = st.tuples(st.fixed_dictionaries(good), st.sets(st.sampled_from(spoilable), max_size=3).flatmap(spoil))
        return st.one_of(st.just(generated), spoilt.map(lambda parts: {**parts[0], **parts[1]}))

    def steer(case: schemathesis.Case) -> st.SearchStrategy[schemathesis.Case]:
        def apply(parts: tuple[dict[str, Any], dict[str, Any], Any]) -> schemathesis.Case:
            for name, value in zip(("path_parameters", "query", "body"), parts, strict=True):
                if value != getattr(case, name):  # (setting marks the part for re-validation)
                    setattr(case, name, value)
            return case

        return st.tuples(fields(case.path_parameters), fields(case.query, query_names), body(case.body)).map(apply)

    return strategy.flatmap(steer)


def fuzz(
    schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode, checks: list[CheckFunction],
    known: Values, odd: Values,
) -> None:  # fmt: skip
    """Sends generated requests to one operation and runs ``checks`` on every response."""
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    if mode == GenerationMode.POSITIVE:  # (known and odd values are schema-valid: the cases stay valid)
        strategy = steered(strategy, known, odd, [p.name for p in operation.query], body_fields(schema, operation))

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES.get((method, path), MAX_EXAMPLES))
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks)

    run()


@pytest.mark.parametrize(("method", "path", "mode"), API_CASES, ids=[" ".join(c) for c in API_CASES])
def test_api_operation_survives_fuzzing(
    api_schema: schemathesis.BaseSchema, world: World, method: str, path: str, mode: str
) -> None:
    fuzz(api_schema, method, path, MODES[mode], API_CHECKS, world.known, dict.fromkeys(JOB_NUMBERS, ODD_NUMBERS))


# ---------------------------------------------------------------------------- the HTML pages and the job form

#: Form fields of "post a job" (``POST /projects/new``), as the browser sends them: strings.
JOB_FIELDS = [
    "model_name", "rounds", "min_trainers", "max_trainers", "budget_eth", "aggregator_fee_eth", "stake_eth",
    "aggregator", "verifier", "join_period_minutes", "submission_period_minutes", "reveal_period_minutes",
    "aggregation_period_minutes", "min_reliability_pct", "slash_pct", "initial_model_cid", "sender",
]  # fmt: skip
PAGE_CASES = [
    ("GET", "/projects"), ("GET", "/projects/new"), ("POST", "/projects/new"), ("GET", "/projects/{project_id}"),
    ("GET", "/projects/{project_id}/join"), ("POST", "/projects/{project_id}/rounds/{round_}/verify"),
    ("GET", "/trainers"), ("GET", "/trainers/{address}"),
]  # fmt: skip
FORM = "application/x-www-form-urlencoded"
HTML_CHECKS: list[CheckFunction] = [not_a_server_error, status_code_conformance, content_type_conformance]


def pages_openapi() -> dict[str, Any]:
    """An OpenAPI description of the HTML endpoints (the app leaves them out of its own schema)."""
    html = {"text/html": {"schema": {"type": "string"}}}
    answers = {str(code): {"description": "a page", "content": html} for code in (200, 404, 422)}
    text = {"type": "string"}

    def query(name: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": text}

    def path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": schema}

    project_id, round_ = path("project_id", {"type": "integer"}), path("round_", {"type": "integer"})
    htmx = [
        {"name": "HX-Request", "in": "header", "required": False, "schema": {"type": "string", "enum": ["true"]}},
        {"name": "HX-Target", "in": "header", "required": False, "schema": {"enum": ["project-table", "other"]}},
    ]
    form = {"type": "object", "properties": dict.fromkeys(JOB_FIELDS, text), "additionalProperties": text}
    listing = ["status", "model", "min_budget_eth", "max_reliability_pct", "q", "sort"]
    return {
        "openapi": "3.0.3",
        "info": {"title": "marketplace pages", "version": "1"},
        "paths": {
            "/projects": {"get": {"parameters": [*map(query, listing), *htmx], "responses": answers}},
            "/projects/new": {
                "get": {"responses": answers},
                "post": {
                    "parameters": htmx[:1],
                    "requestBody": {"required": True, "content": {FORM: {"schema": form}}},
                    "responses": answers,
                },
            },
            "/projects/{project_id}": {"get": {"parameters": [project_id], "responses": answers}},
            "/projects/{project_id}/join": {"get": {"parameters": [project_id], "responses": answers}},
            "/projects/{project_id}/rounds/{round_}/verify": {
                "post": {"parameters": [project_id, round_], "responses": answers}
            },
            "/trainers": {"get": {"parameters": [query("address")], "responses": answers}},
            "/trainers/{address}": {"get": {"parameters": [path("address", text)], "responses": answers}},
        },
    }


@pytest.fixture(scope="module")
def pages_schema(app: WithoutLifespan) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(pages_openapi())
    schema.app = app
    return schema


def as_text(known: Values) -> dict[str, list[Any]]:
    """Known values as the pages take them: strings, except the integer path parameters."""
    text = {k: [v if k in ("project_id", "round_") else str(v) for v in vs] for k, vs in known.items()}
    return {**text, "status": ["open", "training", "finished", "cancelled"], "sort": ["budget", "reliability"]}


@pytest.mark.parametrize(("method", "path"), PAGE_CASES, ids=[f"{m} {p}" for m, p in PAGE_CASES])
def test_page_survives_fuzzing(pages_schema: schemathesis.BaseSchema, world: World, method: str, path: str) -> None:
    """Pages and the job form answer every input with a page (200, or 404/422 with a message), never a 5xx."""
    odd = {n: ODD_NUMBERS for n in [*JOB_NUMBERS, "min_budget_eth", "max_reliability_pct"]}
    fuzz(pages_schema, method, path, GenerationMode.POSITIVE, HTML_CHECKS, as_text(world.known), odd)


# ---------------------------------------------------------------------------- what the fuzzing found


def test_huge_or_non_finite_budget_filters_do_not_crash(app: WithoutLifespan) -> None:
    """``int(1e300 * 10**18)`` overflowed (500); "nan" and "1e999" on the page did the same."""
    client = TestClient(app.app)

    def total(query: str) -> int:
        page = client.get(f"/api/projects?{query}").json()
        assert len(page["items"]) == page["total"]
        return int(page["total"])

    assert total("min_budget_eth=1e300") == 0
    assert total("min_budget_eth=0.0") == 3
    assert total("min_budget_eth=0.1") == 3 == total(f"min_budget={ETH // 10}")  # the open project's 0.1 ETH
    assert total("min_budget_eth=0.10000000000000002") == 2 == total(f"min_budget={ETH // 10 + 1}")
    for bad in ["inf", "nan", "-inf"]:
        refused = client.get(f"/api/projects?min_budget_eth={bad}")
        assert refused.status_code == 422 and refused.json()["errors"] == {"min_budget_eth": "must be a finite number"}
    assert client.get("/api/projects?max_reliability_bps=nan").json()["errors"] == {
        "max_reliability_bps": "must be a whole number"
    }
    for odd in ["nan", "1e999", "inf"]:
        page = client.get(f"/projects?min_budget_eth={odd}&max_reliability_pct={odd}")
        assert page.status_code == 200 and "not a number" in page.text, odd
    assert "<tr" not in client.get("/projects?min_budget_eth=1e300").text.split("<tbody", 1)[-1]


def test_a_body_that_is_not_utf8_is_a_documented_400(app: WithoutLifespan, api_schema: schemathesis.BaseSchema) -> None:
    """FastAPI answers 400 to a body it cannot decode; the schema promised only 404/422/503 (and 409)."""
    client = TestClient(app.app)
    bodies = {
        "/api/tx/join": "/api/tx/join", "/api/tx/create-project": "/api/tx/create-project",
        "/api/tx/cancel": "/api/tx/{action}", "/api/models/mlp/init": "/api/models/{name}/init",
    }  # fmt: skip
    for url, path in bodies.items():
        response = client.post(url, content=b"\xff\xfe{", headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["detail"], url
        assert "400" in api_schema.raw_schema["paths"][path]["post"]["responses"], path


def test_json_bodies_are_taken_as_typed(app: WithoutLifespan, world: World) -> None:
    """``{"project_id": true}`` was the project with id 1 (and ``{"seed": "7"}`` the seed 7)."""
    client = TestClient(app.app)
    open_id = world.known["project_id"][1]
    assert client.post("/api/tx/join", json={"project_id": open_id}).status_code == 200
    for body in [{"project_id": True}, {"project_id": str(open_id)}, {"project_id": float(open_id)}]:
        refused = client.post("/api/tx/join", json=body)
        assert refused.status_code == 422 and refused.json()["errors"] == {"project_id": "must be a whole number"}
    assert client.post("/api/tx/start", json={"project_id": True}).status_code == 422
    seed = client.post("/api/models/nope/init", json={"seed": "7"})
    assert seed.status_code == 422 and seed.json()["errors"] == {"seed": "must be a whole number"}


def test_job_form_with_a_malformed_wallet_keeps_the_form(app: WithoutLifespan, world: World) -> None:
    """A malformed ``sender`` answered the form with the 404 page (the typed job lost); now the form says why."""
    form = {name: str(world.known[name][0]) for name in JOB_FIELDS if name != "sender"}
    client = TestClient(app.app)
    assert client.post("/projects/new", data=form).status_code == 200
    page = client.post("/projects/new", data={**form, "sender": "0x1234"})
    assert page.status_code == 422 and "is not an Ethereum address" in page.text
    assert f'value="{form["initial_model_cid"]}"' in page.text


def test_fuzzing_lost_nothing(world: World, app: WithoutLifespan) -> None:
    """After all the fuzzing the fuzzed app's index lists the same projects, rounds and payouts as before, and so
    do a restarted app on that index and an app on a new index."""
    assert index_view(TestClient(app.app)) == world.before
    with TestClient(create_app(world.settings), raise_server_exceptions=False) as client:
        assert index_view(client) == world.before
    fresh = world.settings.model_copy(update={"db_path": world.settings.db_path.with_name("fresh.sqlite")})
    with TestClient(create_app(fresh), raise_server_exceptions=False) as client:
        assert index_view(client) == world.before
