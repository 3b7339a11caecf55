"""Where the commit inbox listens and which URLs it gives out (found by tests/test_multihost_batching.py, issue 16):
an inbox on an IPv6 address is served and its URL has the address in brackets; an inbox on every address
(``0.0.0.0``, ``::``) gives out one URL per address of its host, never the wildcard, which no trainer can dial.
The wildcard of a real aggregator process is tested in its own network namespace by the multihost test."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

import pytest

from marketplace.adapters.host_interfaces import dialable_addresses
from marketplace.protocol.signed_commit import SignedCommitDocument, sign_commit
from marketplace.round.commit_inbox import CommitInbox, InboxServer, hand_over, inbox_url
from tests.market_fixtures import Actors, cid_for, commitment_for, own_seal
from tests.multihost import ROOT
from tests.netns import Hosts

ip = ipaddress.ip_address
HOST = [ipaddress.ip_interface(a) for a in ("127.0.0.1/8", "10.77.0.3/24", "::1/128", "fe80::1/64", "2001:db8::5/64")]


def test_a_wildcard_is_dialled_at_each_address_of_its_host_loopback_last() -> None:
    assert dialable_addresses(ip("0.0.0.0"), HOST) == [ip("10.77.0.3"), ip("127.0.0.1")]
    assert dialable_addresses(ip("::"), HOST) == [ip("2001:db8::5"), ip("::1")]  # no link-local
    assert dialable_addresses(ip("::"), HOST, dual_stack=True) == [
        *(ip("10.77.0.3"), ip("2001:db8::5")),
        *(ip("127.0.0.1"), ip("::1")),
    ]
    assert dialable_addresses(ip("10.77.0.3"), HOST) == [ip("10.77.0.3")]  # one address: itself
    assert dialable_addresses(ip("0.0.0.0"), []) == [ip("127.0.0.1")]  # nothing known: this machine's
    assert dialable_addresses(ip("0.0.0.0"), HOST + HOST[:2]) == [ip("10.77.0.3"), ip("127.0.0.1")]  # no repeats
    assert inbox_url(ip("::1"), 8600) == "http://[::1]:8600/commits"
    assert inbox_url(ip("10.77.0.3"), 8600) == "http://10.77.0.3:8600/commits"


_ADDRESSES = (
    "from ipaddress import ip_address as ip; from marketplace.adapters.host_interfaces import dialable_addresses; "
    "print(' '.join(map(str, dialable_addresses(ip('0.0.0.0')))))"
)


def test_the_addresses_of_a_host_are_read_from_its_interfaces() -> None:
    """On a host of its own (a network namespace: loopback and one address on the switch), what a wildcard is
    dialled at is that address, then loopback."""
    hosts = Hosts(["a"])
    with hosts:
        if hosts.mode != "netns":
            pytest.skip(f"network namespaces are not permitted here: {hosts.reason}")
        a = hosts["a"]
        out = a.run([sys.executable, "-c", _ADDRESSES], {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}).stdout
        assert out.split() == [a.address, "127.0.0.1"], out


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_inbox_on_an_ipv6_address_is_served_at_a_url_with_brackets(actors: Actors) -> None:
    pid = actors.training_project(2)
    trainer = actors.trainers[0]
    where = trainer.round_address(pid, 0)
    seal = own_seal(trainer, pid, 0, cid_for(pid, 0, trainer.address), commitment_for(pid, 0, trainer.address))
    document = SignedCommitDocument.of(where, sign_commit(trainer.chain.account, where, seal, b"note"))
    with InboxServer(CommitInbox(actors.aggregator), "::1", 0) as server:
        assert server.url == f"http://[::1]:{server.port}/commits" and server.urls() == [server.url]
        hand_over(server.url, document)
        assert [c.trainer for c in server.inbox.held(pid, 0)] == [trainer.address]
