"""The local IPFS node answers like Kubo 0.22 where users' own tools look (issue 14, "Kubo RPC fidelity").

Each test sends what a Kubo client sends (multipart bodies as go-ipfs-cmds and kubo-rpc-client
write them) to the real node and checks Kubo's answer, from Kubo 0.22's sources:
``core/commands/add.go`` (one JSON line per added file, ``Name`` from the part's filename),
boxo ``files/multipartfile.go`` (filename URL-unescaped and cleaned), ``core/commands/pin/pin.go``
and boxo ``pinning/pinner/dspinner`` (pin types; recursive wins over indirect; pins are indexed
by the CID's bytes, so the CIDv1 form of a CIDv0 pin is a different, unpinned CID). Where the
node cannot do what Kubo does, it must refuse with 400 and Kubo's error shape, never ignore.
"""
# ruff: noqa: F811  (the fixtures imported from tests.ipfs_fixtures are used as test arguments)

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from multiformats import CID

from marketplace.adapters.ipfs.cid import compute_cid
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.pin_record import RECORD_NAME
from marketplace.adapters.ipfs.unixfs import CHUNK_SIZE
from tests.ipfs_fixtures import ipfs_node  # noqa: F401


def _multipart(parts: list[tuple[str, bytes]], content_type: str = "application/octet-stream") -> tuple[str, bytes]:
    """A multipart/form-data body with one part per (Content-Disposition filename value, bytes)."""
    boundary = uuid.uuid4().hex
    body = b""
    for disposition, data in parts:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n'.encode()
        body += f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def _post(
    node: LocalIpfsNode, endpoint: str, params: dict[str, Any] | list[tuple[str, str]], **kw: Any
) -> httpx.Response:
    return httpx.post(f"{node.api_url}/api/v0/{endpoint}", params=params, timeout=60, **kw)


def _add(node: LocalIpfsNode, parts: list[tuple[str, bytes]], **params: str) -> httpx.Response:
    content_type, body = _multipart(parts)
    return _post(node, "add", params, content=body, headers={"Content-Type": content_type})


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def _pin_ls(node: LocalIpfsNode, *args: str, kind: str = "all") -> dict[str, str]:
    params = [("type", kind)] + [("arg", a) for a in args]
    keys = _lines(_post(node, "pin/ls", params))[0].get("Keys", {})
    return {cid: entry["Type"] for cid, entry in keys.items()}


def _kubo_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"Message", "Code", "Type"} and answer["Type"] == "error"
    assert answer["Code"] == (1 if status == 400 else 0)
    for fragment in fragments:
        assert fragment in answer["Message"]


# --- add -----------------------------------------------------------------------------------------


def test_add_with_pin_false_keeps_the_existing_pin(ipfs_node: LocalIpfsNode) -> None:
    data = os.urandom(300_000)
    (first,) = _lines(_add(ipfs_node, [('filename="kept.bin"', data)]))
    assert _pin_ls(ipfs_node, first["Hash"]) == {first["Hash"]: "recursive"}
    (again,) = _lines(_add(ipfs_node, [('filename="kept.bin"', data)], pin="false"))
    assert again["Hash"] == first["Hash"]
    assert _pin_ls(ipfs_node, first["Hash"]) == {first["Hash"]: "recursive"}  # Kubo leaves pins alone
    fresh = os.urandom(300_000)
    (loose,) = _lines(_add(ipfs_node, [('filename="loose.bin"', fresh)], pin="false"))
    assert loose["Hash"] not in _pin_ls(ipfs_node, kind="recursive")
    cat = _post(ipfs_node, "cat", {"arg": loose["Hash"]})
    assert cat.status_code == 200 and cat.content == fresh  # stored, only not pinned


def test_add_of_several_files_answers_one_line_per_file(ipfs_node: LocalIpfsNode) -> None:
    files = [("a.txt", b"first " + os.urandom(10)), ("b.bin", os.urandom(700_000)), ("", b"")]
    lines = _lines(_add(ipfs_node, [(f'filename="{name}"', data) for name, data in files]))
    cids = [compute_cid(data) for _, data in files]
    # Kubo: Name is the part's file name (the CID when it has none), Size the DAG's cumulative size.
    assert [line["Name"] for line in lines] == ["a.txt", "b.bin", cids[2]]
    assert [line["Hash"] for line in lines] == cids
    assert int(lines[1]["Size"]) > 700_000 and lines[2]["Size"] == "6"
    pinned = _pin_ls(ipfs_node, kind="recursive")
    for cid, (_, data) in zip(cids, files, strict=True):
        assert pinned.get(cid) == "recursive"
        assert _post(ipfs_node, "cat", {"arg": cid}).content == data


def test_add_of_several_files_without_pin_pins_none(ipfs_node: LocalIpfsNode) -> None:
    files = [os.urandom(1000), os.urandom(1000)]
    lines = _lines(_add(ipfs_node, [(f'filename="f{i}"', d) for i, d in enumerate(files)], pin="false"))
    assert [line["Hash"] for line in lines] == [compute_cid(d) for d in files]
    assert not {line["Hash"] for line in lines} & set(_pin_ls(ipfs_node))


def test_directory_entries_are_refused_and_nothing_is_added(ipfs_node: LocalIpfsNode) -> None:
    plain = os.urandom(2000)
    nested = os.urandom(2000)
    response = _add(ipfs_node, [('filename="plain.bin"', plain), ('filename="dir%2Fnested.bin"', nested)])
    _kubo_error(response, 400, "dir/nested.bin", "directory", "files only")
    for data in (plain, nested):
        assert _post(ipfs_node, "cat", {"arg": compute_cid(data)}).status_code == 500  # never stored
    content_type, body = _multipart([('filename="d"', b"")], content_type="application/x-directory")
    refused = _post(ipfs_node, "add", {}, content=body, headers={"Content-Type": content_type})
    _kubo_error(refused, 400, "directory")


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("trickle", "trickle=true is not supported"),
        ("inline", "inline=true is not supported"),
        ("nocopy", "nocopy=true is not supported"),
        ("only-hash", "only-hash=true is not supported"),
        ("wrap-with-directory", "wrap-with-directory=true is not supported"),
    ],
)
def test_options_that_change_the_dag_are_refused(ipfs_node: LocalIpfsNode, option: str, words: str) -> None:
    data = os.urandom(CHUNK_SIZE * 3)  # trickle would give this another CID than the balanced layout
    _kubo_error(_add(ipfs_node, [('filename="t.bin"', data)], **{option: "true"}), 400, words)
    assert _post(ipfs_node, "cat", {"arg": compute_cid(data)}).status_code == 500  # not added either
    (line,) = _lines(_add(ipfs_node, [('filename="t.bin"', data)], **{option: "false"}))
    assert line["Hash"] == compute_cid(data)


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ('filename="my%20file%20%C3%BC.txt"', "my file ü.txt"),  # what kubo-rpc-client sends
        ('filename="a+b.txt"', "a b.txt"),  # Go's url.QueryUnescape turns '+' into a space
        ('filename="100%.txt"', "100%.txt"),  # a malformed escape leaves the name as it is
        ('filename="/../x.txt"', "x.txt"),  # path.Clean("/" + name), relative
        ("filename*=UTF-8''caf%C3%A9.txt", "café.txt"),  # RFC 2231
    ],
)
def test_add_name_is_decoded_like_kubo(ipfs_node: LocalIpfsNode, disposition: str, name: str) -> None:
    data = os.urandom(64)
    (line,) = _lines(_add(ipfs_node, [(disposition, data)]))
    assert line == {
        "Name": name,
        "Hash": compute_cid(data),
        "Size": str(len(data) + 8),
    }  # leaf block: 8 bytes of dag-pb and UnixFS framing


def test_add_output_options(ipfs_node: LocalIpfsNode) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 5)
    cid = compute_cid(data)
    lines = _lines(_add(ipfs_node, [('filename="p.bin"', data)], progress="true"))
    # Kubo: progress events {"Name", "Bytes"} every 256 KiB read and at the end, then the entry.
    assert [line.get("Bytes") for line in lines[:-1]] == [CHUNK_SIZE, 2 * CHUNK_SIZE, len(data)]
    assert lines[-1]["Hash"] == cid and lines[-1]["Name"] == "p.bin"
    assert _add(ipfs_node, [('filename="p.bin"', data)], silent="true").text == ""
    (v1,) = _lines(_add(ipfs_node, [('filename="p.bin"', data)], **{"cid-base": "base32"}))
    assert v1["Hash"] == str(CID.decode(cid).set(version=1).set(base="base32"))


# --- pins ----------------------------------------------------------------------------------------


def test_a_file_that_is_also_a_block_of_another_pin_stays_recursive(ipfs_node: LocalIpfsNode) -> None:
    small = os.urandom(CHUNK_SIZE)  # one chunk: its CID is also the first leaf of `big`
    big = small + os.urandom(CHUNK_SIZE * 2)
    (big_line,) = _lines(_add(ipfs_node, [('filename="big"', big)]))
    (small_line,) = _lines(_add(ipfs_node, [('filename="small"', small)]))
    big_cid, small_cid = big_line["Hash"], small_line["Hash"]
    assert _pin_ls(ipfs_node)[small_cid] == "recursive"  # Kubo: recursive wins over indirect
    assert _pin_ls(ipfs_node, small_cid) == {small_cid: "recursive"}
    assert _pin_ls(ipfs_node, small_cid, kind="indirect") == {small_cid: f"indirect through {big_cid}"}
    assert _lines(_post(ipfs_node, "pin/rm", {"arg": small_cid})) == [{"Pins": [small_cid]}]
    assert _pin_ls(ipfs_node)[small_cid] == "indirect"
    assert _pin_ls(ipfs_node, small_cid) == {small_cid: f"indirect through {big_cid}"}
    _kubo_error(_post(ipfs_node, "pin/rm", {"arg": small_cid}), 500, "not pinned or pinned indirectly")
    _kubo_error(_post(ipfs_node, "pin/ls", {"arg": small_cid, "type": "recursive"}), 500, "is not pinned")
    assert _pin_ls(ipfs_node, big_cid) == {big_cid: "recursive"}


def test_pin_types_survive_a_restart_and_a_lost_record(tmp_path: Path) -> None:
    small = os.urandom(CHUNK_SIZE)
    big = small + os.urandom(CHUNK_SIZE)
    small_cid, big_cid = compute_cid(small), compute_cid(big)
    repo = tmp_path / "repo"
    with LocalIpfsNode(repo) as node:
        _lines(_add(node, [('filename="big"', big), ('filename="small"', small)]))
        assert _pin_ls(node, kind="recursive") == {small_cid: "recursive", big_cid: "recursive"}
    assert set(json.loads((repo / RECORD_NAME).read_text())["recursive"]) == {small_cid, big_cid}
    with LocalIpfsNode(repo) as node:
        assert _pin_ls(node, kind="recursive") == {small_cid: "recursive", big_cid: "recursive"}
    (repo / RECORD_NAME).unlink()  # a repo from before the record: types are found again
    with LocalIpfsNode(repo) as node:
        pins = _pin_ls(node)
        assert pins[small_cid] == pins[big_cid] == "recursive"
        assert list(pins.values()).count("indirect") == 1  # big's second leaf
        assert _post(node, "cat", {"arg": small_cid}).content == small


def test_cidv1_form_of_a_v0_pin_is_another_cid_like_in_kubo(ipfs_node: LocalIpfsNode) -> None:
    """Kubo 0.22 indexes pins by the CID's bytes (boxo dspinner ``c.KeyString()``, ``Cid.Equals``).

    So ``pin ls <CIDv1 of a v0 pin>`` is "not pinned" there too, while the blocks (indexed by
    multihash) are read under either form; ``pin add`` of the v1 form makes a second pin.
    """
    data = os.urandom(5000)
    (line,) = _lines(_add(ipfs_node, [('filename="v0"', data)]))
    v0 = line["Hash"]
    v1 = str(CID.decode(v0).set(version=1).set(base="base32"))
    _kubo_error(_post(ipfs_node, "pin/ls", {"arg": v1}), 500, f"path '{v1}' is not pinned")
    assert _post(ipfs_node, "cat", {"arg": v1}).content == data
    assert _lines(_post(ipfs_node, "pin/add", {"arg": v1})) == [{"Pins": [v1]}]
    assert _pin_ls(ipfs_node, v0, v1) == {v0: "recursive", v1: "recursive"}
    _lines(_post(ipfs_node, "pin/rm", {"arg": v0}))
    assert _pin_ls(ipfs_node, v1) == {v1: "recursive"}
    _kubo_error(_post(ipfs_node, "pin/ls", {"arg": v0}), 500, f"path '{v0}' is not pinned")


def test_pin_ls_and_rm_take_several_args_and_stream(ipfs_node: LocalIpfsNode) -> None:
    lines = _lines(_add(ipfs_node, [('filename="x"', os.urandom(100)), ('filename="y"', os.urandom(100))]))
    x, y = (line["Hash"] for line in lines)
    missing = compute_cid(os.urandom(100))
    assert _pin_ls(ipfs_node, x, f"/ipfs/{y}") == {x: "recursive", y: "recursive"}
    _kubo_error(_post(ipfs_node, "pin/ls", [("arg", x), ("arg", missing)]), 500, f"path '{missing}' is not pinned")
    streamed = _lines(_post(ipfs_node, "pin/ls", [("arg", x), ("arg", y), ("stream", "true")]))
    assert streamed == [{"Cid": x, "Type": "recursive"}, {"Cid": y, "Type": "recursive"}]
    everything = _lines(_post(ipfs_node, "pin/ls", {"stream": "true", "type": "recursive"}))
    assert {"Cid": x, "Type": "recursive"} in everything and all(set(e) == {"Cid", "Type"} for e in everything)
    assert _lines(_post(ipfs_node, "pin/ls", {"type": "direct"})) == [{}]  # Kubo omits empty Keys
    _kubo_error(_post(ipfs_node, "pin/rm", {"arg": x, "recursive": "false"}), 500, f"{x} is pinned recursively")
    assert _lines(_post(ipfs_node, "pin/rm", [("arg", x), ("arg", y)])) == [{"Pins": [x, y]}]
    assert not {x, y} & set(_pin_ls(ipfs_node))
