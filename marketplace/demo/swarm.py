"""The demo's IPFS swarm: one node per participant, on loopback, in a private swarm made for the run.

Every participant (the owner, the aggregator, each trainer, the web server, the auditor) gets its own
embedded-Kubo node (:class:`~marketplace.adapters.ipfs.manager.LocalIpfsNode`) and talks only to its
own node's RPC API. The nodes share a swarm key generated for the run, so no other node can join.

Topology: the owner's and the aggregator's nodes (the *hubs*) start first, side by side, and connect
to each other; then every other node starts, all of them side by side, and once up connects to both
hubs (a connection carries data both ways). The nodes are connected through their APIs after they
started, not given the hubs as ``peers``: a connection that Kubo's peering makes while the node
starts can be missed by its bitswap, which then never asks that peer for anything (measured: with
the hubs as ``peers``, 7 of 128 node-to-hub pairs over 8 starts of 2 + 8 nodes could not fetch from
the hub; connected after the start, 0 of 128). The embedded node's own discovery then connects the
other nodes with each other too (every node ended up connected to every other in every run).
A node fetches only from the peers it is connected to (bitswap), so data moves as the job needs:
a trainer's node gets the initial model from the owner's node and each round's model from the
aggregator's; the aggregator's node gets each update from the node of the trainer who pinned it;
the web server's and the auditor's nodes get both from the hubs, which keep what they fetched.

Each node is an owned child process (it ends with this process, see
:mod:`marketplace.adapters.processes`); leaving :func:`demo_swarm` stops them all, side by side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode, NodeOptions, NodeStartError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.swarm import new_swarm_key, swarm_key_fingerprint

OWNER = "owner"
AGGREGATOR = "aggregator"
WEB = "web"
AUDITOR = "auditor"
HUBS = (OWNER, AGGREGATOR)
#: How long the nodes that start with the hubs as peers get to connect to both.
CONNECT_TIMEOUT = 30.0


def trainer_name(index: int) -> str:
    """The participant name of trainer ``index`` (0-based): ``trainer 3``."""
    return f"trainer {index}"


def participant_names(trainers: int, *, web: bool = False, auditor: bool = True) -> list[str]:
    """Every participant of a demo with ``trainers`` trainers, the hubs first: owner, aggregator, the
    trainers, then the web server (if ``web``) and the auditor (if ``auditor``)."""
    names = [*HUBS, *(trainer_name(i) for i in range(trainers))]
    return names + ([WEB] if web else []) + ([AUDITOR] if auditor else [])


@dataclass
class Participant:
    """A participant's own node and the store that talks to it (``store.client``: the node's API only)."""

    name: str
    node: LocalIpfsNode
    store: ModelStore

    @property
    def client(self) -> IpfsClient:
        """The client of this participant's node."""
        return self.store.client


@dataclass(frozen=True)
class NodeTraffic:
    """What one participant's node did in the swarm.

    ``peers``: the participants whose nodes it is connected to (peer IDs of nodes outside the demo as
    they are). ``fetched_bytes``: block bytes it got from its peers (``stats/swarm`` ``FetchedBytes``:
    exact, no protocol overhead). ``served_bytes``: bytes it sent on its swarm connections (``stats/bw``
    ``TotalOut``): an upper bound on what it served, as it includes libp2p's own traffic."""

    name: str
    peer_id: str
    peers: tuple[str, ...]
    fetched_bytes: int
    served_bytes: int


@dataclass(frozen=True)
class SwarmReport:
    """The swarm at one moment: each node's traffic, the number of nodes connected into one swarm with
    the owner's node (``size``, nodes of other parties included), and the connections between them."""

    nodes: list[NodeTraffic]
    size: int
    connections: int
    key_fingerprint: str

    def of(self, name: str) -> NodeTraffic:
        """The traffic of participant ``name``'s node (KeyError if it has none)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


class DemoSwarm:
    """The running nodes of :func:`demo_swarm`, by participant name."""

    def __init__(self, participants: dict[str, Participant], key_fingerprint: str, start_seconds: float) -> None:
        self.participants = participants
        self.key_fingerprint = key_fingerprint
        self.start_seconds = start_seconds

    def store(self, name: str) -> ModelStore:
        """The store of participant ``name``'s own node; ValueError if the swarm has no node for it."""
        try:
            return self.participants[name].store
        except KeyError:
            raise ValueError(f"the demo's swarm has no IPFS node for {name!r}") from None

    def report(self) -> SwarmReport:
        """Each node's peers and traffic now (asked of every node, side by side), and the swarm's size."""
        names = {p.node.peer_id: name for name, p in self.participants.items()}
        order = _participant_order(list(self.participants))

        def traffic(p: Participant) -> tuple[NodeTraffic, set[str]]:
            peer_ids = {peer.peer for peer in p.client.swarm_peers()}
            fetched = int(p.client.swarm_stats().get("FetchedBytes", 0))
            served = p.client.bandwidth().total_out
            peers = tuple(sorted((names.get(i, i) for i in peer_ids), key=order))
            return NodeTraffic(p.name, p.node.peer_id, peers, fetched, served), peer_ids

        with ThreadPoolExecutor(max_workers=min(len(self.participants), 16), thread_name_prefix="ipfs-stats") as pool:
            answers = list(pool.map(traffic, self.participants.values()))
        links = {node.peer_id: peer_ids for node, peer_ids in answers}
        size, connections = _component(links, self.participants[OWNER].node.peer_id)
        return SwarmReport([node for node, _ in answers], size, connections, self.key_fingerprint)


def _participant_order(names: list[str]) -> Callable[[str], tuple[int, str]]:
    """Sort key: participants in their order, then any other peer ID."""
    return lambda name: (names.index(name) if name in names else len(names), name)


def _component(links: dict[str, set[str]], start: str) -> tuple[int, int]:
    """Nodes reachable from ``start`` over the connections in ``links`` (each node's connected peer IDs,
    as far as known), and the connections among them (a connection seen from both ends counts once)."""
    seen, todo = {start}, [start]
    while todo:
        for peer in links.get(todo.pop(), ()):
            if peer not in seen:
                seen.add(peer)
                todo.append(peer)
    edges = {frozenset((a, b)) for a in seen for b in links.get(a, ()) if a != b}
    return len(seen), len(edges)


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def _start_all(nodes: Sequence[LocalIpfsNode], done: Callable[[], None]) -> None:
    """Starts ``nodes`` side by side (each takes seconds, mostly Python imports); ``done()`` after each.

    Returns once every node answers. On the first failure, or an interruption (Ctrl-C: a
    KeyboardInterrupt in the main thread), the nodes not started yet are not started and those
    starting are ended (SIGTERM, so their starts fail at once); it re-raises once no start is running
    (the caller stops the nodes that did start)."""
    cancelled = threading.Event()

    def start(node: LocalIpfsNode) -> None:
        if not cancelled.is_set():
            node.start()

    pool = ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="ipfs-start")
    futures = [pool.submit(start, node) for node in nodes]
    try:
        for future in as_completed(futures):
            future.result()
            done()
    except BaseException:
        cancelled.set()
        while not all(f.done() for f in futures):  # a process may still be spawned: end it too
            for node in nodes:
                if node.process is not None and node.process.poll() is None and not node.state:
                    node.process.terminate()
            time.sleep(0.05)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_all(nodes: Sequence[LocalIpfsNode]) -> None:
    """Stops ``nodes`` side by side (SIGTERM to each, SIGKILL if one lingers)."""
    with ThreadPoolExecutor(max_workers=max(len(nodes), 1), thread_name_prefix="ipfs-stop") as pool:
        list(pool.map(lambda node: node.stop(), nodes))


def _connect_to_hubs(participants: dict[str, Participant]) -> None:
    """Connects the aggregator's node to the owner's, and every other node to both (through their APIs)."""
    owner = participants[OWNER].node.swarm_addresses[0]
    participants[AGGREGATOR].client.swarm_connect(owner)
    hubs = [owner, participants[AGGREGATOR].node.swarm_addresses[0]]
    for name, p in participants.items():
        if name not in HUBS:
            for address in hubs:
                p.client.swarm_connect(address)


def _wait_connected(participants: dict[str, Participant], hubs: list[str], timeout: float) -> None:
    """Waits until every node other than the hubs is connected to both hubs; NodeStartError naming the
    first that is not after ``timeout`` seconds."""
    hub_ids = {participants[h].node.peer_id: h for h in hubs}
    deadline = time.monotonic() + timeout
    for name, p in participants.items():
        if name in hubs:
            continue
        while True:
            missing = set(hub_ids) - {peer.peer for peer in p.client.swarm_peers()}
            if not missing:
                break
            if time.monotonic() > deadline:
                which = " and ".join(f"the {hub_ids[i]}'s" for i in sorted(missing))
                raise NodeStartError(f"the {name}'s IPFS node did not connect to {which} in {timeout:.0f} s")
            time.sleep(0.1)


@contextmanager
def demo_swarm(
    workdir: Path,
    names: Sequence[str],
    console: Console | None = None,
    *,
    fetch_timeout: float | None = None,
) -> Iterator[DemoSwarm]:
    """Starts one node per participant of ``names`` (the first two are the hubs: the owner and the
    aggregator) in ``workdir``, in a private swarm whose key is generated into ``workdir/swarm.key``;
    shows the start's progress on ``console``; yields once every node is connected to both hubs; stops
    every node on exit (also on an error or Ctrl-C while they start). ``fetch_timeout`` bounds each
    node's fetches from the swarm (None: the node's default, 30 s)."""
    names = list(names)
    if names[:2] != list(HUBS) or len(set(names)) != len(names):
        raise ValueError(f"the participants must be distinct and start with {' and '.join(HUBS)}: {names}")
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "swarm.key"
    key.unlink(missing_ok=True)  # a fresh key every run
    fingerprint = swarm_key_fingerprint(new_swarm_key(key))
    nodes: dict[str, LocalIpfsNode] = {}
    participants: dict[str, Participant] = {}

    def node(name: str) -> LocalIpfsNode:
        nodes[name] = LocalIpfsNode(
            workdir / _slug(name), options=NodeOptions(swarm_key=key, fetch_timeout=fetch_timeout)
        )
        return nodes[name]

    with ExitStack() as stack:
        stack.callback(lambda: _stop_all(list(nodes.values())))  # registered before any node starts
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console, transient=True, disable=console is None) as progress:
            task = progress.add_task("IPFS: starting the owner's and the aggregator's nodes", total=len(names))
            _start_all([node(h) for h in HUBS], lambda: progress.advance(task))
            progress.update(task, description=f"IPFS: starting {len(names) - 2} more nodes")
            others = [node(name) for name in names[2:]]
            if others:
                _start_all(others, lambda: progress.advance(task))
            for name in names:
                participants[name] = Participant(name, nodes[name], ModelStore(nodes[name].client()))
                stack.callback(participants[name].client.close)
            progress.update(task, description="IPFS: connecting every node to the owner's and the aggregator's")
            _connect_to_hubs(participants)
            _wait_connected(participants, list(HUBS), CONNECT_TIMEOUT)
        yield DemoSwarm(participants, fingerprint, time.monotonic() - t0)


def _peers_text(node: NodeTraffic, everyone: Sequence[str]) -> str:
    """The node's peers: ``all 11 others`` when it is connected to every other participant, else their names."""
    others = [n for n in everyone if n != node.name]
    if others and set(others) <= set(node.peers) and len(node.peers) == len(others):
        return f"all {len(others)} others"
    return ", ".join(_short_peer(p) for p in node.peers) or "none"


def _short_peer(peer: str) -> str:
    """A participant's name as it is; a foreign peer ID shortened."""
    return peer if len(peer) < 20 else f"{peer[:8]}…"


def _kb(n: int) -> str:
    return f"{n / 1000:,.1f}"


def swarm_table(report: SwarmReport) -> Table:
    """The swarm's size and, per participant's node, its peers, the bytes it fetched from the swarm and the
    bytes it sent (an upper bound on what it served)."""
    everyone = [n.name for n in report.nodes]
    table = Table(
        title=(
            f"IPFS swarm: {report.size} nodes, {report.connections} connections "
            f"(private, swarm key fingerprint {report.key_fingerprint[:16]}…)"
        ),
        title_justify="left",
        caption=(
            "fetched: block bytes the node got from its peers (exact). served: bytes it sent on its swarm "
            "connections (Kubo's stats/bw TotalOut), an upper bound: it includes libp2p's own traffic "
            "(encryption, framing, want-lists)."
        ),
        caption_justify="left",
    )
    for col in ["node of", "peer id", "peers", "fetched kB", "served kB (upper bound)"]:
        table.add_column(col, justify="right" if "kB" in col else "left")
    for node in report.nodes:
        table.add_row(
            node.name, f"{node.peer_id[:10]}…", _peers_text(node, everyone), _kb(node.fetched_bytes),
            _kb(node.served_bytes),
        )  # fmt: skip
    total_fetched = sum(n.fetched_bytes for n in report.nodes)
    total_sent = sum(n.served_bytes for n in report.nodes)
    table.add_row("[bold]total[/bold]", "", "", f"[bold]{_kb(total_fetched)}[/bold]", f"[bold]{_kb(total_sent)}[/bold]")
    return table
