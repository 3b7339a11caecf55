# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
"""The IPFS fetches visitors' requests make the server's node start are cached and bounded (attack review of issue
14, finding 1: a web UI sharing the aggregator's node let visitors hold its 16 swarm-fetch slots with CIDs nobody
serves, and nothing was remembered, so they could do it again and again).

The app runs on the session anvil with a node of its own (the "shared" node: the aggregator's, say) peered with
the session's node, so that a CID nobody serves makes it search its swarm, as a node with peers does; its
``stats/swarm`` counters say what reached it: ``Fetches`` (fetches started), ``Unavailable`` (requests answered
"not available").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.adapters.chain.market import Finalization
from marketplace.adapters.ipfs.cid import compute_cid, parse_cid
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode, NodeOptions
from marketplace.adapters.ipfs.unixfs import CIDV1_RAW_LEAVES
from marketplace.round.collect import collect_round  # noqa: F401  (torch imported now, not inside a timed request)
from marketplace.web.main import create_app
from marketplace.web.server import serve_in_background
from marketplace.web.services.errors import Unavailable
from marketplace.web.services.ipfs_fetches import FailureMemory, FetchSlots, ObjectCache, WebFetches
from marketplace.web.settings import WebSettings
from tests.market_fixtures import Actors, commit, commitment_for, reveal_update
from tests.test_web_api import form
from tests.web_fixtures import ipfs, ipfs_node, proof_document, web_settings  # noqa: F401

FETCH_TIMEOUT = 5.0  # the web's per-fetch timeout in these tests (the node's own is 30 s)
TTL = 60.0


@pytest.fixture
def shared(tmp_path: Path, ipfs_node: LocalIpfsNode) -> Iterator[LocalIpfsNode]:
    """The web server's node, peered with the session's node (a node with peers searches for what it lacks)."""
    with LocalIpfsNode(
        tmp_path / "shared-ipfs", options=NodeOptions(peers=ipfs_node.swarm_addresses, fetch_timeout=30)
    ) as node:
        client = IpfsClient(node.api_url, timeout=10.0, retries=0)
        deadline = time.monotonic() + 30
        while client.swarm_stats().get("Peers", 0) < 1:
            assert time.monotonic() < deadline, "the shared node did not connect to its peer"
            time.sleep(0.1)
        yield node


def stats(node: LocalIpfsNode) -> dict[str, Any]:
    with IpfsClient(node.api_url, timeout=10.0, retries=0) as client:
        return client.swarm_stats()


def finalize_rounds(actors: Actors, node: IpfsClient, pid: int, model_cids: list[str]) -> None:
    """Finalizes a round per model CID; each round's proof document is pinned on ``node`` (the indexer reads it)."""
    scores, flags = [500_000, 300_000, 200_000], [False, False, True]
    for round_, model_cid in enumerate(model_cids):
        actors.submit_all(pid, round_)
        doc = proof_document(actors, pid, round_, scores, flags, 0.5).model_copy(update={"model_cid": model_cid})
        proof_cid = node.add(doc.to_bytes())
        result = Finalization(model_cid, proof_cid, scores, flags, doc.proof_bytes)
        actors.aggregator.finalize_round(pid, round_, result)


def nobody_serves(label: str) -> str:
    """A well-formed CID of content no node holds."""
    return compute_cid(f"content nobody serves: {label} {time.time_ns()}".encode())


@pytest.fixture
def app_on(web_settings: WebSettings, shared: LocalIpfsNode) -> Iterator[Callable[..., FastAPI]]:
    """Starts the app on the shared node with small limits (or ``limits``); its index is synced once, at startup
    (what the tests read is on chain by then)."""

    def start(**limits: Any) -> FastAPI:
        settings = web_settings.model_copy(
            update={
                "ipfs_api": shared.api_url,
                "sync_interval": 3600.0,  # requests do not sync: all is on chain before the app starts
                "ipfs_fetches": 2,
                "ipfs_fetches_per_client": 1,
                "ipfs_fetch_timeout": FETCH_TIMEOUT,
                "ipfs_failure_ttl": TTL,
                **limits,
            }
        )
        app = create_app(settings)
        runner = TestClient(app, raise_server_exceptions=False)
        runner.__enter__()  # the lifespan: the first sync
        started.append(runner)
        return app

    started: list[TestClient] = []
    yield start
    for runner in started:
        runner.__exit__(None, None, None)


def visitor(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=(address, 40000))


def test_visitors_asking_for_cids_nobody_serves_hold_at_most_the_web_limit_of_node_fetches(
    actors: Actors, shared: LocalIpfsNode, app_on: Callable[..., FastAPI]
) -> None:
    """Eight visitors ask at once for eight models nobody serves: the node starts at most ``ipfs_fetches`` (2)
    fetches for them, the others are answered 503 at once with Retry-After, in words (before the fix it started
    all eight, and 16 such visitors took every slot the aggregator needs). A visitor whose fetch runs gets 503 for
    a second one, the flag causes' recomputation included."""
    pid = actors.training_project(3, rounds=10)
    models = [nobody_serves(f"round {r}") for r in range(10)]
    with IpfsClient(shared.api_url, timeout=30.0) as node:
        finalize_rounds(actors, node, pid, models)
    app = app_on()
    before = stats(shared)

    answers: list[httpx.Response] = []
    start = threading.Barrier(8)

    def ask(i: int) -> None:
        client = visitor(app, f"10.0.0.{i + 1}")
        start.wait()
        answers.append(client.get(f"/projects/{pid}/rounds/{i}/model"))

    askers = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(8)]
    for asker in askers:
        asker.start()
    most = 0
    while any(a.is_alive() for a in askers):
        most = max(most, stats(shared)["Fetches"] - before["Fetches"])
        time.sleep(0.05)
    after = stats(shared)
    most = max(most, after["Fetches"] - before["Fetches"])
    print(f"node fetches started for 8 visitors: {most}; abandoned {after['Abandoned']}, restarts {after['Restarts']}")
    assert len(answers) == 8 and all(a.status_code == 503 for a in answers), [a.status_code for a in answers]
    assert 1 <= most <= 2, f"the node started {most} fetches for the visitors (the web allows 2)"
    busy = [a for a in answers if "at most 2 IPFS fetches at a time for its visitors" in a.text]
    fetched = [a for a in answers if "did not deliver" in a.text]
    assert len(busy) >= 6 and len(fetched) == most, [a.text[-400:] for a in answers]
    for answer in busy:
        wait = int(answer.headers["Retry-After"])
        assert 1 <= wait <= FETCH_TIMEOUT + 1 and f"try again in {wait} seconds" in answer.text
    for answer in fetched:
        assert int(answer.headers["Retry-After"]) == TTL

    # One visitor, one fetch at a time: its second download and the flag causes wait for the first.
    one = visitor(app, "10.0.1.1")
    first = threading.Thread(target=lambda: answers.append(one.get(f"/projects/{pid}/rounds/8/model")), daemon=True)
    first.start()
    fetches = app.state.services.fetches
    deadline = time.monotonic() + 30
    while fetches.slots.running < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second = one.get(f"/projects/{pid}/rounds/9/model")
    assert second.status_code == 503 and "yours is still running" in second.text
    causes = one.get(f"/projects/{pid}/rounds/9/flag-causes", headers={"HX-Request": "true"})
    assert causes.status_code == 503 and 1 <= int(causes.headers["Retry-After"]) <= FETCH_TIMEOUT + 1
    assert 'id="flag-causes-unavailable"' in causes.text and "yours is still running" in causes.text
    first.join(60)
    assert answers[-1].status_code == 503 and "did not deliver" in answers[-1].text


def test_a_cid_that_failed_is_not_asked_for_again_within_the_ttl_and_one_fetched_is_served_from_memory(
    actors: Actors, shared: LocalIpfsNode, ipfs: IpfsClient, app_on: Callable[..., FastAPI]
) -> None:
    """A model nobody serves: the first download asks the node (503 after the web's timeout, Retry-After the
    TTL); the second, within the TTL, is answered at once from memory and does not reach the node (before the fix
    it did, every time). A model the swarm serves is fetched once and then served from memory, even with the
    node gone."""
    pid = actors.training_project(3, rounds=2)
    weights = f"model weights of project {pid} round 1 ".encode() * 1000
    served = ipfs.add(weights)  # on the session node only: the shared node fetches it over the swarm
    missing = nobody_serves("round 0")
    with IpfsClient(shared.api_url, timeout=30.0) as node:
        finalize_rounds(actors, node, pid, [missing, served])
    app = app_on()
    client = visitor(app, "10.0.2.1")
    before = stats(shared)

    first = client.get(f"/projects/{pid}/rounds/0/model")
    assert first.status_code == 503 and f"did not deliver {missing}" in first.text
    asked = stats(shared)
    assert asked["Unavailable"] == before["Unavailable"] + 1  # the node searched and gave up

    started = time.monotonic()
    again = client.get(f"/projects/{pid}/rounds/0/model")
    took = time.monotonic() - started
    later = stats(shared)
    assert later["Unavailable"] == asked["Unavailable"], "the second request reached the node again"
    assert later["Fetches"] == asked["Fetches"]
    assert took < FETCH_TIMEOUT / 2, f"the second request took {took:.1f} s"
    assert int(first.headers["Retry-After"]) == TTL
    assert again.status_code == 503 and f"did not deliver {missing}" in again.text and "seconds ago" in again.text
    assert 1 <= int(again.headers["Retry-After"]) <= TTL

    downloaded = client.get(f"/projects/{pid}/rounds/1/model")
    assert downloaded.status_code == 200 and downloaded.content == weights
    shared.stop()  # the node is gone: what was fetched is still served, from memory
    for url in (f"/projects/{pid}/rounds/1/model", f"/projects/{pid}/model"):
        answer = visitor(app, "10.0.2.2").get(url)
        assert answer.status_code == 200 and answer.content == weights, url
    proof = client.get(f"/projects/{pid}/rounds/1/proof-document")
    assert proof.status_code == 503  # never fetched: the node is really gone


def test_a_round_whose_updates_cannot_be_fetched_is_not_recomputed_again_within_the_ttl(
    actors: Actors, shared: LocalIpfsNode, app_on: Callable[..., FastAPI]
) -> None:
    """The flag causes of a round whose revealed updates nobody serves: the first request fetches them (and says
    they cannot be read), the next one within the TTL answers from memory without asking the node again."""
    pid = actors.training_project(2, rounds=1)
    members = actors.owner.trainers(pid)
    trainers = [t for t in actors.trainers if t.address in members]
    updates = {t.address: nobody_serves(f"update of {t.address}") for t in trainers}
    for trainer in trainers:
        commit(trainer, pid, 0, updates[trainer.address], commitment_for(pid, 0, trainer.address))
    actors.open_reveals(pid)
    for trainer in trainers:
        reveal_update(trainer, pid, 0, updates[trainer.address], commitment_for(pid, 0, trainer.address))
    scores, flags = [600_000, 400_000], [False, True]
    doc = proof_document(actors, pid, 0, scores, flags, 0.5)
    with IpfsClient(shared.api_url, timeout=30.0) as node:
        proof_cid = node.add(doc.to_bytes())
    actors.aggregator.finalize_round(pid, 0, Finalization(doc.model_cid, proof_cid, scores, flags, doc.proof_bytes))
    app = app_on()
    client = visitor(app, "10.0.3.1")
    url = f"/projects/{pid}/rounds/0/flag-causes"
    before = stats(shared)

    first = client.get(url, headers={"HX-Request": "true"})
    assert first.status_code == 200 and "cannot be read by the public" in first.text
    asked = stats(shared)
    assert asked["Unavailable"] == before["Unavailable"] + 2  # both updates searched for

    started = time.monotonic()
    again = client.get(url, headers={"HX-Request": "true"})
    took = time.monotonic() - started
    assert stats(shared)["Unavailable"] == asked["Unavailable"], "the second request fetched the updates again"
    assert took < FETCH_TIMEOUT / 2, f"the second request took {took:.1f} s"
    assert again.status_code == 200 and "cannot be read by the public" in again.text
    assert "this server tries again in" in again.text


# ---------------------------------------------------------------------------- the parts, on a clock of their own


def test_fetch_slots_bound_fetches_in_all_and_per_client_and_say_when_one_frees() -> None:
    now = [100.0]
    slots = FetchSlots(total=2, per_client=1, hold=10.0, clock=lambda: now[0])
    with slots.take("a"):
        now[0] += 3
        with pytest.raises(Unavailable) as mine, slots.take("a"):
            pass
        assert mine.value.retry_after == 7 and "yours is still running" in str(mine.value)
        with slots.take("b"):
            with pytest.raises(Unavailable) as everyone, slots.take("c"):
                pass
            assert everyone.value.retry_after == 7 and "at most 2 IPFS fetches" in str(everyone.value)
        with slots.take("c"):  # b's slot is free again
            assert slots.running == 2
    assert slots.running == 0


def test_failures_are_forgotten_after_their_ttl_and_objects_within_the_byte_budget() -> None:
    now = [0.0]
    failures = FailureMemory(60.0, clock=lambda: now[0])
    failures.remember("cid", "ContentUnavailable: nobody sent it")
    now[0] = 45.5
    assert failures.recall("cid") == ("ContentUnavailable: nobody sent it", 45, 15)
    now[0] = 60.0
    assert failures.recall("cid") is None
    assert FailureMemory(0.0).recall("cid") is None

    cache = ObjectCache(max_bytes=10)
    cache.keep("a", b"aaaa")
    cache.keep("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # a is now the most recently used
    cache.keep("c", b"cccc")  # 12 bytes: b goes
    assert (cache.get("a"), cache.get("b"), cache.get("c"), cache.size) == (b"aaaa", None, b"cccc", 8)
    cache.keep("d", b"d" * 11)  # larger than the budget: not kept, nothing evicted
    assert cache.get("d") is None and cache.size == 8


def test_without_a_node_nothing_is_fetched() -> None:
    with pytest.raises(Unavailable, match="no IPFS node"):
        WebFetches(None).get_bytes(compute_cid(b"x"), 100, "a")


# ---------------------------------------------------------------------------- attack review of these bounds


def test_a_job_form_whose_card_waits_on_ipfs_does_not_hold_the_other_visitors(
    actors: Actors, web_settings: WebSettings, shared: LocalIpfsNode
) -> None:
    """Second attack review of issue 14, finding 2: the job form's review step fetches the initial weights (a CID
    the visitor chooses) to add the model card. It ran on the server's event loop, so while the node searched for a
    CID nobody serves (the web's fetch timeout) every other request of the server waited. Now it runs off the
    loop: a page is served at once meanwhile."""
    settings = web_settings.model_copy(
        update={"ipfs_api": shared.api_url, "sync_interval": 3600.0, "ipfs_fetch_timeout": FETCH_TIMEOUT}
    )
    posted: list[httpx.Response] = []
    with serve_in_background(create_app(settings)) as running:
        data = form(actors, initial_model_cid=nobody_serves("initial weights"), card_task="digits")
        poster = threading.Thread(
            target=lambda: posted.append(httpx.post(f"{running.url}/projects/new", data=data, timeout=60)), daemon=True
        )
        fetches_before = stats(shared)["Fetches"]
        poster.start()
        deadline = time.monotonic() + 30
        while stats(shared)["Fetches"] == fetches_before:  # the node is searching for the weights now
            assert time.monotonic() < deadline and poster.is_alive(), "the form did not make the node fetch"
            time.sleep(0.02)
        started = time.monotonic()
        page = httpx.get(f"{running.url}/projects", timeout=60)
        took = time.monotonic() - started
        searching = poster.is_alive()
        poster.join(60)
    assert page.status_code == 200
    assert searching, "the form's fetch ended before the page was asked for: the test saw nothing"
    assert took < FETCH_TIMEOUT / 2, f"the project list waited {took:.1f} s on another visitor's IPFS fetch"
    assert posted and posted[0].status_code == 422 and "could not be fetched" in posted[0].text


def test_a_failure_is_remembered_for_the_object_however_its_cid_is_written(shared: LocalIpfsNode) -> None:
    """Second attack review of issue 14, finding 5: the failure memory was keyed by the CID's text, so the same
    CID in another base reached the node again. Now every spelling is one object."""
    fetches = WebFetches(shared.api_url, total=2, per_client=1, timeout=FETCH_TIMEOUT, failure_ttl=TTL)
    missing = compute_cid(b"a v1 object nobody serves " + str(time.time_ns()).encode(), CIDV1_RAW_LEAVES)
    spellings = [missing, str(parse_cid(missing).set(base="base58btc")), str(parse_cid(missing).set(base="base36"))]
    assert len(set(spellings)) == 3
    with pytest.raises(Unavailable):
        fetches.get_bytes(spellings[0], 1 << 20, "10.0.4.1")
    asked = stats(shared)
    for spelling in spellings[1:]:
        with pytest.raises(Unavailable, match="seconds ago"):
            fetches.get_bytes(spelling, 1 << 20, "10.0.4.2")
    assert stats(shared)["Unavailable"] == asked["Unavailable"], "another spelling reached the node again"
