# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
"""A job's model card (issue 15, beyond the anchors): what is being trained (task, data, metric, license), typed
into the job form, checked there (lengths, no HTML, no control characters), put into the initial weights'
safetensors header on IPFS (the contract does not grow: it keeps the weights' CID) and shown on the project page.
Every card read back from IPFS is untrusted: script tags are shown as text, huge strings are cut, wrong types are
dropped, and weights without a readable card show "not described". On the session anvil and a real IPFS node."""

from __future__ import annotations

import html
import json
import re
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient

from marketplace.adapters.ipfs.errors import NotSafetensors
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import load_checked, read_metadata
from marketplace.protocol.model_card import (
    ELLIPSIS,
    FIELDS,
    MAX_CARD_BYTES,
    METADATA_KEY,
    InvalidCard,
    ModelCard,
    card_metadata,
    check_card,
    read_card,
)
from tests.market_fixtures import Actors
from tests.test_web_api import form, job
from tests.web_fixtures import INITIAL_CID, client, ipfs, ipfs_node, web_app, web_settings  # noqa: F401

CARD = {
    "card_task": "Classify handwritten digits 0-9",
    "card_data": "8x8 grey-scale digit images (scikit-learn digits),\nlabelled 0-9, ~200 per trainer",
    "card_metric": "accuracy on the aggregator's held-out test set",
    "card_license": "CC-BY-4.0",
}


def text(page: str) -> str:
    """A page's text, tags removed and whitespace collapsed (entities decoded)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def card_section(page: str) -> str:
    """The project page's "What is being trained" section, as HTML."""
    return page.split('id="model-card"')[1].split(">", 1)[1].split("</section>")[0]


def weights_with(ipfs: IpfsClient, metadata: dict[str, str]) -> str:
    """Pins small safetensors weights with ``metadata`` in their header; their CID."""
    return ModelStore(ipfs).put_tensors({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, metadata)


# ---------------------------------------------------------------------------- the card's two readings


def test_an_owners_card_is_plain_text_within_its_lengths() -> None:
    assert check_card({}) is None and check_card({"task": "  ", "data": "\r\n"}) is None
    card = check_card({"task": " Digits ", "data": "line one\r\nline two", "metric": "accuracy", "other": 1})
    assert card == ModelCard(task="Digits", data="line one\nline two", metric="accuracy")
    bad = {
        "task": "<b>digits</b>", "data": "x" * (FIELDS["data"] + 1), "metric": "accuracy\non two lines",
        "license": "MIT\x00",
    }  # fmt: skip
    with pytest.raises(InvalidCard) as caught:
        check_card(bad)
    assert caught.value.errors == {
        "task": "must not contain < or > (no HTML: the card is shown as plain text)",
        "data": f"must be at most {FIELDS['data']:,} characters (it has {FIELDS['data'] + 1:,})",
        "metric": "must be one line",
        "license": "must not contain control characters",
    }
    assert check_card({"task": "x" * FIELDS["task"]}) is not None  # exactly the limit is fine
    with pytest.raises(InvalidCard):
        check_card({"task": 5})
    assert read_card(card_metadata(card)) == card  # what is written is read back as it was


def test_a_card_read_from_weights_is_bounded_and_typed_whatever_they_hold() -> None:
    def read(document: object) -> ModelCard | None:
        raw = document if isinstance(document, str) else json.dumps(document)
        return read_card({METADATA_KEY: raw})

    script = "<script>document.title='pwned'</script>"
    card = read({"task": script, "data": "A" * 5_000, "metric": "acc\x07uracy\u202e", "license": 7})
    assert card is not None and card.task == script  # kept as text: the page escapes it
    assert card.data == "A" * (FIELDS["data"] - 1) + ELLIPSIS and card.metric == "accuracy" and card.license is None
    assert read({"task": 5, "data": ["x"], "metric": {"a": 1}, "license": None}) is None  # wrong types only
    assert read(["task"]) is None and read("not json {") is None and read('"just a string"') is None
    assert read({"task": "x" * MAX_CARD_BYTES}) is None  # a card larger than read at all
    assert read("[" * 100_000 + "]" * 100_000) is None  # nested deeper than a card ever is: refused before parsing
    assert read({"task": "\ud800 lone surrogate"}) == ModelCard(task="lone surrogate")
    assert read_card({}) is None and read_card({METADATA_KEY: 5}) is None


def test_only_the_header_is_read_for_the_card() -> None:
    data = json.dumps({"__metadata__": {"a": "b"}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    prefix = struct.pack("<Q", len(data)) + data.encode()
    assert read_metadata(prefix) == {"a": "b"}  # no tensor bytes needed
    for broken in (prefix[:-1], b"\x00" * 4, struct.pack("<Q", 10**9) + b"{}"):
        with pytest.raises(NotSafetensors):
            read_metadata(broken)


def test_a_prefix_of_an_object_is_read_without_the_rest(ipfs: IpfsClient) -> None:
    data = bytes(range(256)) * 2_000  # 512 KB: two chunks of the node's default 256 KiB
    cid = ipfs.add(data)
    assert ipfs.cat_prefix(cid, 10) == data[:10]
    assert ipfs.cat_prefix(cid, 300_000) == data[:300_000]  # across chunks
    assert ipfs.cat_prefix(cid, 10**7) == data and ipfs.cat_prefix(cid, 0) == b""


# ---------------------------------------------------------------------------- the form and the project page


def test_a_job_posted_with_a_card_carries_it_in_its_weights_and_shows_it(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    generated = client.post("/api/models/mlp/init", json={"seed": 3}).json()["cid"]
    before = ModelStore(ipfs, framework="numpy").get_tensors(generated)
    review = client.post(
        "/projects/new", data=form(actors, initial_model_cid=generated, **CARD), headers={"HX-Request": "true"}
    )
    assert review.status_code == 200, text(review.text)
    tx = json.loads(html.unescape(review.text.split("data-tx='")[1].split("'")[0]))
    described = re.search(r'id="job-weights"><code class="cid">(\w+)</code>', review.text)[1]  # type: ignore[index]
    assert described != generated and f"the weights of {generated} with the model card below" in text(review.text)
    assert "Classify handwritten digits 0-9" in text(review.text.split('id="job-card"')[1])
    assert described in text(review.text) and tx["data"]  # the transaction names the new CID
    after = load_checked(ipfs.cat(described, max_bytes=1 << 24))  # the same tensors, the card in the header
    assert after.metadata["model"] == "mlp" and after.metadata["seed"] == "3"  # the rest of the metadata is kept
    assert read_card(after.metadata) == ModelCard(**{k[5:]: v for k, v in CARD.items()})
    assert before.tensors.keys() == after.tensors.keys()
    assert all(np.array_equal(before.tensors[k], after.tensors[k]) for k in before.tensors)
    again = client.post(
        "/projects/new", data=form(actors, initial_model_cid=generated, **CARD), headers={"HX-Request": "true"}
    )
    assert described in again.text  # the same weights and card: the same CID

    pid = actors.create(initial_model_cid=described)
    page = client.get(f"/projects/{pid}")
    section = text(card_section(page.text))
    assert "What is being trained Task Classify handwritten digits 0-9 Data 8x8 grey-scale digit images" in section
    assert "Evaluation metric accuracy on the aggregator's held-out test set License CC-BY-4.0" in section
    assert "Model architecture mlp" in section and "2 rounds of federated training" in section
    api = client.get(f"/api/projects/{pid}").json()
    assert api["model_card_state"] == "described" and api["model_card"]["task"] == CARD["card_task"]

    old = actors.create()  # posted without a card (weights nobody serves here): "not described"
    section = text(card_section(client.get(f"/projects/{old}").text))
    assert section.startswith("What is being trained Not described") and "Model architecture mlp" in section
    assert client.get(f"/api/projects/{old}").json()["model_card"] is None


def test_the_form_refuses_a_card_with_html_or_too_long_and_pins_nothing(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    generated = client.post("/api/models/mlp/init", json={"seed": 4}).json()["cid"]
    pinned = set(ipfs.pin_ls())
    typed = {"card_task": "<img src=x onerror=alert(1)>", "card_data": "d" * 1001, "card_metric": "a\nb"}
    page = client.post(
        "/projects/new", data=form(actors, initial_model_cid=generated, **typed), headers={"HX-Request": "true"}
    )
    assert page.status_code == 422
    assert re.findall(r'data-field="(\w+)"', page.text) == ["card_task", "card_data", "card_metric"]
    shown = text(page.text)
    assert "Task must not contain < or > (no HTML: the card is shown as plain text)" in shown
    assert "Data description must be at most 1,000 characters (it has 1,001)" in shown
    assert "Evaluation metric must be one line" in shown and "Please correct the highlighted fields." in shown
    assert "<img src=x" not in page.text  # what was typed is put back escaped
    assert set(ipfs.pin_ls()) == pinned
    unserved = client.post(
        "/projects/new", data=form(actors, initial_model_cid=INITIAL_CID, card_task="digits"),
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert unserved.status_code == 422 and re.findall(r'data-field="(\w+)"', unserved.text) == ["initial_model_cid"]
    assert "could not be fetched from this server's IPFS node to add the model card" in text(unserved.text)


def test_a_malicious_card_is_shown_escaped_cut_or_as_not_described(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    script = "<script>document.title='pwned'</script>"
    hostile = weights_with(
        ipfs, {METADATA_KEY: json.dumps({"task": script, "data": "A" * 5_000, "metric": "<b>bold</b>", "license": 7})}
    )
    pid = actors.create(initial_model_cid=hostile)
    page = client.get(f"/projects/{pid}").text
    section = card_section(page)
    assert script not in page and "<b>bold</b>" not in page  # escaped, never markup
    assert f"Task {script} Data" in text(section)  # shown as the text it is
    data = re.search(r'class="card-data">([^<]*)<', section)[1]  # type: ignore[index]
    assert data == "A" * (FIELDS["data"] - 1) + ELLIPSIS  # cut to its length
    assert "License" not in text(section)  # a number is not a license
    api = client.get(f"/api/projects/{pid}").json()["model_card"]
    assert api["task"] == script and len(api["data"]) == FIELDS["data"] and api["license"] is None

    not_described = {
        "wrong types": weights_with(ipfs, {METADATA_KEY: json.dumps({"task": 5, "data": ["x"], "metric": {}})}),
        "not JSON": weights_with(ipfs, {METADATA_KEY: "<b>hi</b>"}),
        "too large": weights_with(ipfs, {METADATA_KEY: json.dumps({"task": "x" * (MAX_CARD_BYTES + 1)})}),
        "no card": weights_with(ipfs, {"kind": "model"}),
        "not weights": ipfs.add(b"<html><script>alert(1)</script></html>"),
        "huge header": weights_with(ipfs, {"padding": "p" * 200_000, METADATA_KEY: json.dumps({"task": "hidden"})}),
    }
    for case, cid in not_described.items():
        project = actors.create(initial_model_cid=cid)
        section = text(card_section(client.get(f"/projects/{project}").text))
        assert section.startswith("What is being trained Not described: the owner posted this job without"), case
        assert client.get(f"/api/projects/{project}").json()["model_card_state"] == "none", case


def test_the_api_puts_a_card_into_the_weights_it_names_and_refuses_a_bad_one(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    generated = client.post("/api/models/mlp/init", json={"seed": 5}).json()["cid"]
    card = {k[5:]: v for k, v in CARD.items()}
    tx = client.post("/api/tx/create-project", json=job(actors, initial_model_cid=generated, model_card=card))
    assert tx.status_code == 200, tx.text
    described = tx.json()["initial_model_cid"]
    assert described != generated
    assert read_card(load_checked(ipfs.cat(described, max_bytes=1 << 24)).metadata) == ModelCard(**card)
    assert described.encode().hex() in tx.json()["data"]  # the transaction names the described weights
    plain = client.post("/api/tx/create-project", json=job(actors, initial_model_cid=generated)).json()
    assert plain["initial_model_cid"] == generated  # no card: the weights as given

    pinned = set(ipfs.pin_ls())
    bad = client.post(
        "/api/tx/create-project",
        json=job(actors, initial_model_cid=generated, model_card={"task": "<b>x</b>", "metric": "a\nb"}),
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == {
        "model_card.task": "must not contain < or > (no HTML: the card is shown as plain text)",
        "model_card.metric": "must be one line",
    }
    assert set(ipfs.pin_ls()) == pinned  # nothing pinned for a refused card
    poor = {"sender": "0x" + "42" * 20, "model_card": {"task": "another task"}}
    refused = client.post("/api/tx/create-project", json=job(actors, initial_model_cid=generated, **poor))
    assert refused.status_code == 422 and refused.json()["code"] == "InsufficientFunds"  # the chain would refuse
    assert set(ipfs.pin_ls()) == pinned  # so the card was not pinned


def test_the_join_page_says_what_is_being_trained(client: TestClient, actors: Actors, ipfs: IpfsClient) -> None:
    described = weights_with(ipfs, card_metadata(ModelCard(task="Spot <cracks> in welds", license="MIT")))
    pid = actors.create(initial_model_cid=described)
    page = client.get(f"/projects/{pid}/join").text
    section = text(card_section(page))
    assert "What is being trained Task Spot <cracks> in welds" in section and "License MIT" in section
    assert "<cracks>" not in page  # escaped
    assert 'id="join-button"' in page and 'id="trainer-command"' in page  # the steps are still there
    old = actors.create()
    shown = text(card_section(client.get(f"/projects/{old}/join").text))
    assert shown.startswith("What is being trained Not described")
