"""An SQLite cache of the market's and registry's events, rebuilt from the chain whenever needed.

The chain is the source of truth; this index only makes listing, filtering and history pages
cheap. :meth:`Indexer.sync` fetches the logs of both contracts since the last indexed block and
stores them in typed tables. The database is keyed by chain id and contract addresses: a file
made for another chain or deployment, of another schema version, or that SQLite cannot read is
thrown away and rebuilt from the deployment block.

Reorgs: the hash of every synced head is kept (the last :data:`KEPT_HEADS`). Each sync first
checks them against the chain, newest first; everything above the newest head still on the
chain is deleted and re-read. If none matches (a reorg deeper than that, or an ``evm_revert``
on a dev chain), the index is rebuilt.

Events are decoded leniently (:mod:`marketplace.adapters.chain.lenient_abi`): a CID or model name that is not
UTF-8 is stored with U+FFFD instead of failing every sync; a log that still cannot be decoded is
logged and skipped.

Project parameters that no event carries (rounds, stake, trainer bounds, minimum reliability,
periods) are immutable after creation and read once with ``MarketLens.getProject`` when the project is
indexed.

Each finalized round's proof document (on IPFS, see :mod:`marketplace.web.proof_docs`) is read once,
after the logs, at most :data:`DOCS_PER_SYNC` per sync; its ``doc_state`` becomes ``ok`` (its
accuracy is shown), ``invalid`` (not a proof document, or an accuracy that is not a finite fraction:
skipped, never fatal to a sync) or ``missing`` (the node did not deliver it; the rest wait for a later
sync). A reader that fails in any other way is logged and the document recorded as invalid: no
document can stop the index.

Each project's model card (in its initial weights' header on IPFS, see :mod:`marketplace.web.model_cards`) is
read once the same way, newest project first, at most :data:`CARDS_PER_SYNC` per sync and no more once a sync spent
:data:`CARDS_SECONDS_PER_SYNC` on them (a slow node delays one sync by one read, not by every project's):
``described`` (the card, already bounded and plain text, is kept as JSON), ``none`` (the weights carry no card
that can be read) or ``missing`` (the node did not deliver them). No state is read again.

``SubmissionRejected`` events are kept per round (:meth:`Indexer.rejections`): the trainers whose update
the aggregator declared unavailable or not matching its commitment.

Disputes: before finalizing, the aggregator announces the rejections it will make (``RejectionAnnounced``, one
per trainer, with the end of the dispute window); a rejected trainer may publish its committed row until then
(``RejectionDisputed``). :meth:`Indexer.disputes` derives each announced or rejected trainer's
:class:`Dispute` state per round. The published row itself is not kept (it is on chain); it is checked to be
a row the market could have accepted (at most :data:`MAX_ROW_LENGTH` values, inside the committed rows' box).
A proof document's reasons for its rejections (``rejected`` and ``published``: the aggregator's word, bounded
to :data:`MAX_REASON_CHARS` printable characters) are kept with the round's accuracy, and so are the trainers it
says are in the new model unpaid (``admitted``) and those whose update the owner's reference kept out of it, paid
as scored (``screened``): addresses only, the aggregator's word; ``marketplace audit`` recomputes both.

Concurrency: one connection, its queries guarded by a lock; :meth:`Indexer.sync` takes that lock only to read
and write the database, never while it waits on the chain or on IPFS (the logs, the blocks, ``getProject`` of a
new project and the proof documents are fetched first), so a sync in one thread does not hold up the queries of
the others. Syncs themselves run one at a time. :attr:`Indexer.version` changes whenever a sync changed what
the queries answer; :attr:`Indexer.head_number` and :attr:`Indexer.head_timestamp` are the block the index is
synced to and its time.

Event data is untrusted: every handler checks the types and bounds of what it stores (an integer beyond
SQLite's 64 bits, an address that is not one) and runs in its own savepoint. An event that fails its checks,
or a log that cannot be decoded, is skipped, logged and recorded (:meth:`Indexer.skipped_events`); it never
stops a sync.

Commit-reveal: each round a trainer first commits a seal (``UpdateCommitted``: the seal and its arrival
position, which is the round's order; the trainer's opaque note is not kept), then reveals its CID and
commitment (``UpdateSubmitted``, in the ``submissions`` table with the same arrival). A trainer that committed
and did not reveal is named by ``RevealMissed`` when the round is finalized (:meth:`Indexer.reveals_missed`).

Rejection bonds (``MarketDisputes``, at the market's address): ``BondPosted`` (the aggregator's bonds for a round's
announced rejections), ``BondAwarded`` (a disputing trainer reimbursed its dispute's gas out of its bond),
``BondReturned`` (what was left of a round's bonds credited back to the aggregator) and ``BondWithdrawn`` (an
account withdrew its credits, over every project) are kept in one ``bonds`` table (:meth:`Indexer.bonds`,
:meth:`Indexer.bond_withdrawals`).

Stale challenges (``MarketDisputes``): ``StaleChallenged`` (anyone showed that a trainer's revealed row of the open
round nearly copies a row revealed in an earlier round of the project: the submission is rejected beyond dispute and
the challenger credited its gas out of the trainer's stake) is kept in the ``stale`` table
(:meth:`Indexer.stale_challenges`, :meth:`Indexer.stale_rounds_of`). Its values are checked as the market could have
emitted them: an earlier round before the challenged one, a challenged trainer that is a member of the project, an
author that is a member's index or ``REFERENCE_AUTHOR`` (the owner's reference, stored as NULL), a 32-byte earlier
commitment, an award no larger than the project's stake.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from eth_abi.exceptions import DecodingError
from eth_utils import event_abi_to_log_topic, is_address, is_checksum_address, to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import BlockNotFound, MismatchedABI
from web3.types import FilterParams

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.lenient_abi import lenient_contract
from marketplace.adapters.chain.market import REFERENCE_AUTHOR, round_records
from marketplace.protocol.commitment import InvalidPublishedRow, row_from_ints
from marketplace.protocol.model_card import ModelCard
from marketplace.protocol.proof_document import ProofDocument
from marketplace.web.model_cards import CardReader, CardUnavailable
from marketplace.web.proof_docs import ProofDocReader, ProofDocUnavailable

#: 2: ``rejections`` (``SubmissionRejected``); 3: commit-reveal (``commits``, ``reveals_missed``, the
#: arrival of a submission, the reveal period of a project); 4: disputes (``announcements``
#: (``RejectionAnnounced``), ``disputes`` (``RejectionDisputed``), the rejection reasons of a round's proof
#: document, ``skipped`` events); 5: indexes by project on the per-project tables; 6: ``cards`` (the model card
#: of each project's initial weights); 7: ``reliability`` rows from the registry's ``RoundRecorded`` (one event per
#: round, one row per trainer in it); 8: the admitted (in the model, unpaid) trainers of a round's proof document;
#: 9: ``bonds`` (the rejection bonds' events); 10: the screened (kept out of the model by the owner's reference,
#: paid as scored) trainers of a round's proof document; 11: ``stale`` (``StaleChallenged``). An index of an older
#: version is rebuilt.
SCHEMA_VERSION = 11
KEPT_HEADS = 32
#: Proof documents read from IPFS per sync at most (the rest on later syncs).
DOCS_PER_SYNC = 16
#: Model cards read from IPFS per sync at most (the rest on later syncs).
CARDS_PER_SYNC = 16
#: Seconds a sync spends reading model cards before it leaves the rest to later syncs.
CARDS_SECONDS_PER_SYNC = 2.0
#: Longest published row accepted from a ``RejectionDisputed`` (K + 2 values, K at most 1024).
MAX_ROW_LENGTH = 1026
#: Largest integer stored from an event (SQLite's INTEGER is 64-bit signed).
MAX_STORED_INT = 2**63 - 1
#: Longest rejection reason kept from a proof document, in characters.
MAX_REASON_CHARS = 160

DisputeState = Literal["announced", "disputed", "upheld", "withdrawn"]
#: A row of the ``bonds`` table: ``BondPosted``, ``BondAwarded``, ``BondReturned`` or ``BondWithdrawn``.
BondKind = Literal["posted", "awarded", "returned", "withdrawn"]
CardState = Literal["described", "none", "missing", "unread"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE heads (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE projects (
    project_id INTEGER PRIMARY KEY, owner TEXT, aggregator TEXT, verifier TEXT,
    reward_budget TEXT, aggregator_fee TEXT, model_name TEXT, initial_model_cid TEXT,
    stake TEXT, rounds INTEGER, min_trainers INTEGER, max_trainers INTEGER,
    min_reliability_bps INTEGER, slash_bps INTEGER, join_deadline INTEGER,
    submission_period INTEGER, reveal_period INTEGER, aggregation_period INTEGER,
    block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE lifecycle (
    project_id INTEGER, kind TEXT, data TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE trainers (
    project_id INTEGER, trainer TEXT, idx INTEGER, stake TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT,
    PRIMARY KEY (project_id, trainer)
);
CREATE TABLE commits (
    project_id INTEGER, round INTEGER, trainer TEXT, seal TEXT, arrival INTEGER,
    block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE submissions (
    project_id INTEGER, round INTEGER, trainer TEXT, cid TEXT, commitment TEXT, arrival INTEGER,
    block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE reveals_missed (
    project_id INTEGER, round INTEGER, trainer TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE rounds (
    project_id INTEGER, round INTEGER, model_cid TEXT, proof_cid TEXT, scores TEXT, flags TEXT, rewards TEXT,
    block INTEGER, log_index INTEGER, tx_hash TEXT, accuracy REAL, doc_state TEXT, reasons TEXT, admitted TEXT,
    screened TEXT, PRIMARY KEY (project_id, round)
);
CREATE TABLE rejections (
    project_id INTEGER, round INTEGER, trainer TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE announcements (
    project_id INTEGER, round INTEGER, trainer TEXT, dispute_deadline INTEGER,
    block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE disputes (
    project_id INTEGER, round INTEGER, trainer TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE skipped (name TEXT, reason TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT);
CREATE TABLE slashes (
    project_id INTEGER, round INTEGER, trainer TEXT, amount TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE withdrawals (
    project_id INTEGER, account TEXT, amount TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE bonds (
    kind TEXT, project_id INTEGER, round INTEGER, account TEXT, amount TEXT, block INTEGER, log_index INTEGER,
    tx_hash TEXT
);
CREATE TABLE stale (
    project_id INTEGER, round INTEGER, trainer TEXT, challenger TEXT, earlier_round INTEGER, author INTEGER,
    earlier TEXT, award TEXT, block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE reliability (
    trainer TEXT, market TEXT, project_id INTEGER, round INTEGER, outcome INTEGER, reliability_bps INTEGER,
    block INTEGER, log_index INTEGER, tx_hash TEXT
);
CREATE TABLE verifiers (verifier TEXT PRIMARY KEY, approved INTEGER, block INTEGER, log_index INTEGER);
CREATE TABLE cards (project_id INTEGER PRIMARY KEY, state TEXT NOT NULL, card TEXT, block INTEGER);
CREATE INDEX commits_by_round ON commits (project_id, round);
CREATE INDEX submissions_by_round ON submissions (project_id, round);
CREATE INDEX reliability_by_trainer ON reliability (trainer);
CREATE INDEX trainers_by_address ON trainers (trainer);
CREATE INDEX lifecycle_by_project ON lifecycle (project_id);
CREATE INDEX reveals_missed_by_project ON reveals_missed (project_id);
CREATE INDEX rejections_by_project ON rejections (project_id);
CREATE INDEX announcements_by_project ON announcements (project_id);
CREATE INDEX disputes_by_project ON disputes (project_id);
CREATE INDEX slashes_by_project ON slashes (project_id);
CREATE INDEX withdrawals_by_project ON withdrawals (project_id);
CREATE INDEX bonds_by_project ON bonds (project_id);
CREATE INDEX bonds_by_account ON bonds (account);
CREATE INDEX stale_by_project ON stale (project_id);
CREATE INDEX stale_by_trainer ON stale (trainer);
"""
_EVENT_TABLES = (
    "projects", "lifecycle", "trainers", "commits", "submissions", "reveals_missed", "rounds", "rejections",
    "announcements", "disputes", "skipped", "slashes", "withdrawals", "reliability", "verifiers", "cards", "bonds",
    "stale",
)  # fmt: skip


class MalformedEvent(ValueError):
    """An event whose values this market could not have emitted (wrong type, out of bounds): skipped."""


@dataclass(frozen=True)
class Dispute:
    """Where one trainer's rejection in one round stands.

    ``state`` is ``announced`` (the aggregator announced the rejection; the trainer has not disputed it and the
    round is not finalized: the window is open until ``deadline``, or closed and the rejection will stand),
    ``disputed`` (the trainer published its committed row: it is scored on that row, its update stays out of
    the model), ``upheld`` (the round was finalized with the submission rejected: flagged, unpaid) or
    ``withdrawn`` (announced, not disputed, and the round finalized without rejecting it). ``deadline`` is the
    end of the dispute window, None for a rejection no announcement of which is indexed (an older market);
    ``tx_hash`` is the transaction of the event that decided the state."""

    state: DisputeState
    deadline: int | None
    tx_hash: str


#: The status a lifecycle event puts a project in.
STATUS_OF_KIND = {
    "created": "open",
    "started": "training",
    "finished": "finished",
    "cancelled": "cancelled",
    "abandoned": "cancelled",
}


class Indexer:
    """Event index of one market + registry deployment, stored in an SQLite file.

    Thread-safe: one connection guarded by a lock (the web app calls it from worker threads).
    """

    def __init__(
        self,
        db_path: Path | str,
        chain: ChainClient,
        market: Contract,
        registry: Contract,
        lens: Contract,
        start_block: int = 0,
        proof_docs: ProofDocReader | None = None,
        model_cards: CardReader | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.chain = chain
        self.market = lenient_contract(market)
        self.registry = lenient_contract(registry)
        self.lens = lens  # the market's MarketLens (getProject)
        self.start_block = max(0, start_block)
        self.proof_docs = proof_docs
        self.model_cards = model_cards
        self._lock = threading.RLock()
        self._topics = {
            (contract.address, HexBytes(event_abi_to_log_topic(abi))): (contract, abi["name"])
            for contract in (self.market, self.registry)
            for abi in contract.abi
            if abi.get("type") == "event"
        }
        self.rebuilds = 0
        self._sync_lock = threading.Lock()
        self._version = 0
        self._event_version = 0
        self._head: tuple[int, str, int] | None = None  # number, hash, timestamp of the last synced head
        self._project_views: dict[int, dict[str, Any]] = {}  # getProject of the projects being indexed
        self._db = self._open()

    # ------------------------------------------------------------------ database file

    @property
    def identity(self) -> dict[str, str]:
        """What the database must have been built for."""
        return {
            "schema": str(SCHEMA_VERSION),
            "chain_id": str(self.chain.chain_id),
            "market": self.market.address,
            "registry": self.registry.address,
            "start_block": str(self.start_block),
        }

    def _open(self) -> sqlite3.Connection:
        if str(self.db_path) != ":memory:":
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if all(meta.get(k) == v for k, v in self.identity.items()) and "last_block" in meta:
                return db
            db.close()
        except sqlite3.DatabaseError:  # no tables yet, or not an SQLite file at all
            pass
        return self._create()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.db_path), check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _create(self) -> sqlite3.Connection:
        """A fresh, empty database (any previous file is deleted)."""
        if str(self.db_path) != ":memory:":
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        db = self._connect()
        db.executescript(_SCHEMA)
        rows = [*self.identity.items(), ("last_block", str(self.start_block - 1))]
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
        return db

    def rebuild(self) -> None:
        """Forget everything; the next :meth:`sync` re-reads the chain from the deployment block."""
        with self._lock:
            self._db.close()
            self._db = self._create()
            self.rebuilds += 1
            self._version += 1
            self._event_version += 1

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def last_block(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key = 'last_block'").fetchone()[0])

    @property
    def version(self) -> int:
        """A number that changes whenever a sync (or a rebuild) changed what the queries answer: new events,
        a rollback, a proof document read (a new block without events changes only :attr:`head_number`)."""
        return self._version

    @property
    def head_number(self) -> int | None:
        """The number of the block the index was last synced to (None before the first sync)."""
        head = self._head
        return head[0] if head is not None else None

    @property
    def event_version(self) -> int:
        """A number that changes whenever a sync applied events, rolled some back or rebuilt the index: the
        contracts' state may have changed (they change it only in transactions, which emit events)."""
        return self._event_version

    @property
    def head_timestamp(self) -> int | None:
        """The timestamp of the block the index was last synced to (None before the first sync)."""
        head = self._head
        return head[2] if head is not None else None

    # ------------------------------------------------------------------ sync

    def sync(self) -> int:
        """Index everything up to the chain's latest block; returns the number of new logs.

        The blocks are read from the deployment block on, :attr:`ChainClient.log_block_range` blocks at a time
        (the client pages and narrows further if the provider asks it to), each range stored in its own
        transaction: a sync that fails part way keeps what it read. The database lock is held only while
        reading or writing it (see the module docstring)."""
        with self._sync_lock:
            head = self.chain.get_block("latest")
            head_number, head_hash = int(head["number"]), HexBytes(head["hash"]).to_0x_hex()
            last = self._rewind_to_canonical()
            if last > head_number:  # the chain is behind us: rebuilt or reverted
                self.rebuild()
                last = self.start_block - 1
            count = 0
            start = last + 1
            while start <= head_number:
                end = min(head_number, start + self.chain.log_block_range - 1)
                logs = self._logs(start, end)
                self._project_views = self._prefetch_projects(logs)
                with self._lock, self._db:
                    self._db.execute("BEGIN")
                    for item in logs:
                        self._apply(item)
                    self._set_last_block(end)
                self._project_views = {}
                count += len(logs)
                start = end + 1
            with self._lock, self._db:
                self._db.execute("BEGIN")
                self._db.execute("INSERT OR REPLACE INTO heads (number, hash) VALUES (?, ?)", (head_number, head_hash))
                self._db.execute(
                    "DELETE FROM heads WHERE number NOT IN (SELECT number FROM heads ORDER BY number DESC LIMIT ?)",
                    (KEPT_HEADS,),
                )
                self._set_last_block(max(last, head_number))
            docs = self._read_proof_docs()
            cards = self._read_model_cards()
            new_head = (head_number, head_hash, int(head["timestamp"]))
            if count:
                self._event_version += 1
            if count or docs or cards:
                self._version += 1
            self._head = new_head
            return count

    def _set_last_block(self, number: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'last_block'", (str(number),))

    def _rewind_to_canonical(self) -> int:
        """Drops whatever sits above the newest synced head still on the chain; returns the new last block."""
        with self._lock:
            last = int(self._db.execute("SELECT value FROM meta WHERE key = 'last_block'").fetchone()[0])
            heads = self._db.execute("SELECT number, hash FROM heads ORDER BY number DESC").fetchall()
        if not heads:
            return last
        for number, stored_hash in heads:
            try:
                block = self.chain.get_block(number)
            except BlockNotFound:
                continue
            if HexBytes(block["hash"]).to_0x_hex() == stored_hash:
                if number < last:
                    self._rollback(number)
                return number
        self.rebuild()
        return self.start_block - 1

    def _rollback(self, keep_up_to: int) -> None:
        self._version += 1
        self._event_version += 1
        with self._lock, self._db:
            self._db.execute("BEGIN")
            for table in _EVENT_TABLES:
                self._db.execute(f"DELETE FROM {table} WHERE block > ?", (keep_up_to,))
            self._db.execute("DELETE FROM heads WHERE number > ?", (keep_up_to,))
            self._set_last_block(keep_up_to)

    def _logs(self, from_block: int, to_block: int) -> list[tuple[str, dict[str, Any]]]:
        """Decoded logs of both contracts in ``[from_block, to_block]``, in chain order (a log that cannot
        be decoded comes with an ``error`` instead of ``args``: :meth:`_apply` skips and records it)."""
        params: FilterParams = {
            "fromBlock": from_block,
            "toBlock": to_block,
            "address": [self.market.address, self.registry.address],
        }
        raw = self.chain.get_logs_raw(params)
        decoded = []
        for entry in raw:
            if not entry["topics"]:
                continue
            key = (to_checksum_address(entry["address"]), HexBytes(entry["topics"][0]))
            if key not in self._topics:
                continue
            contract, name = self._topics[key]
            try:
                event = contract.events[name]().process_log(entry)
                found: dict[str, Any] = {"args": dict(event["args"])}
            except (DecodingError, MismatchedABI, ValueError) as exc:
                found = {"error": f"cannot be decoded: {exc}"}
            found.update(
                block=int(entry["blockNumber"]),
                log_index=int(entry["logIndex"]),
                tx_hash=HexBytes(entry["transactionHash"]).to_0x_hex(),
            )
            decoded.append((name, found))
        decoded.sort(key=lambda item: (item[1]["block"], item[1]["log_index"]))
        return decoded

    # ------------------------------------------------------------------ applying events

    def _apply(self, item: tuple[str, dict[str, Any]]) -> None:
        """Stores one event, in a savepoint: an event that cannot be decoded or fails its handler's checks
        leaves nothing behind but its entry in ``skipped`` (and a warning in the log)."""
        name, ev = item
        where = (ev["block"], ev["log_index"], ev["tx_hash"])
        if "error" in ev:
            self._skip(name, ev["error"], where)
            return
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            return
        self._db.execute("SAVEPOINT event")
        try:
            handler(ev["args"], where)
        except (ValueError, TypeError, KeyError, OverflowError, sqlite3.IntegrityError) as exc:
            self._db.execute("ROLLBACK TO SAVEPOINT event")
            self._db.execute("RELEASE SAVEPOINT event")
            self._skip(name, str(exc), where)
            return
        self._db.execute("RELEASE SAVEPOINT event")

    def _skip(self, name: str, reason: str, where: tuple[int, int, str]) -> None:
        log.warning("%s at block %d, log %d skipped: %s", name, where[0], where[1], reason[:300])
        self._db.execute("INSERT INTO skipped VALUES (?, ?, ?, ?, ?)", (name, reason[:300], *where))

    def _lifecycle(self, pid: int, kind: str, data: Any, where: tuple[int, int, str]) -> None:
        self._db.execute("INSERT INTO lifecycle VALUES (?, ?, ?, ?, ?, ?)", (pid, kind, json.dumps(data), *where))

    def _on_VerifierApprovalChanged(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO verifiers VALUES (?, ?, ?, ?)", (a["verifier"], int(a["approved"]), *where[:2])
        )

    def _on_ProjectCreated(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        pid = int(a["projectId"])
        v = self._project_view(pid)
        self._db.execute(
            "INSERT OR REPLACE INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pid, a["owner"], a["aggregator"], a["verifier"], str(a["rewardBudget"]), str(a["aggregatorFee"]),
                a["modelName"], a["initialModelCid"], str(v["stake"]), int(v["rounds"]), int(v["minTrainers"]),
                int(v["maxTrainers"]), int(v["minReliabilityBps"]), int(v["slashBps"]), int(v["joinDeadline"]),
                int(v["submissionPeriod"]), int(v["revealPeriod"]), int(v["aggregationPeriod"]), *where,
            ),
        )  # fmt: skip
        self._lifecycle(pid, "created", None, where)

    def _prefetch_projects(self, logs: list[tuple[str, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
        """``getProject`` of every project created in ``logs``, read before the database is locked (a project
        whose view cannot be read now is read again when its event is applied, and skipped if that fails)."""
        views = {}
        for name, ev in logs:
            if name != "ProjectCreated" or "args" not in ev:
                continue
            try:
                pid = int(ev["args"]["projectId"])
                views[pid] = self._read_project_view(pid)
            except (ValueError, TypeError, KeyError, OverflowError):
                continue
        return views

    def _project_view(self, pid: int) -> dict[str, Any]:
        """``getProject(pid)`` by field name: prefetched (:meth:`_prefetch_projects`), else read now."""
        view = self._project_views.get(pid)
        return view if view is not None else self._read_project_view(pid)

    def _read_project_view(self, pid: int) -> dict[str, Any]:
        """``getProject(pid)`` by field name (a tuple by position drifts whenever the struct grows)."""
        (output,) = next(f for f in self.lens.abi if f.get("name") == "getProject")["outputs"]
        values = self.chain.call(self.lens.functions.getProject(pid))
        return dict(zip((c["name"] for c in output["components"]), values, strict=True))

    def _on_TrainerJoined(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        pid = int(a["projectId"])
        (idx,) = self._db.execute("SELECT COUNT(*) FROM trainers WHERE project_id = ?", (pid,)).fetchone()
        self._db.execute(
            "INSERT OR REPLACE INTO trainers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pid, a["trainer"], idx, str(a["stake"]), *where),
        )

    def _on_TrainingStarted(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        data = {"trainer_count": int(a["trainerCount"]), "submission_deadline": int(a["submissionDeadline"])}
        self._lifecycle(int(a["projectId"]), "started", data, where)

    def _on_ProjectFinished(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._lifecycle(int(a["projectId"]), "finished", {"final_model_cid": a["finalModelCid"]}, where)

    def _on_ProjectCancelled(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._lifecycle(int(a["projectId"]), "cancelled", {"by": a["by"]}, where)

    def _on_ProjectAbandoned(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        data = {"round": int(a["round"]), "submitters": int(a["submitters"]), "reward_each": str(a["rewardEach"])}
        self._lifecycle(int(a["projectId"]), "abandoned", data, where)

    def _on_UpdateCommitted(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(a["projectId"]), int(a["round"]), a["trainer"], "0x" + bytes(a["seal"]).hex(), int(a["arrival"]),
                *where,
            ),
        )  # fmt: skip

    def _on_UpdateSubmitted(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(a["projectId"]), int(a["round"]), a["trainer"], a["cid"], "0x" + bytes(a["commitment"]).hex(),
                int(a["arrival"]), *where,
            ),
        )  # fmt: skip

    def _on_RevealMissed(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT INTO reveals_missed VALUES (?, ?, ?, ?, ?, ?)",
            (int(a["projectId"]), int(a["round"]), a["trainer"], *where),
        )

    def _on_RoundFinalized(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL)",
            (
                int(a["projectId"]), int(a["round"]), a["modelCid"], a["proofCid"],
                json.dumps([str(s) for s in a["scores"]]), json.dumps([bool(f) for f in a["flags"]]),
                json.dumps([str(r) for r in a["rewards"]]), *where,
            ),
        )  # fmt: skip

    def _on_SubmissionRejected(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?)",
            (int(a["projectId"]), int(a["round"]), a["trainer"], *where),
        )

    def _on_RejectionAnnounced(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        values = (
            _stored_int(a["projectId"], "projectId"), _stored_int(a["round"], "round"), _address(a["trainer"]),
            _stored_int(a["disputeDeadline"], "disputeDeadline"),
        )  # fmt: skip
        self._db.execute("INSERT INTO announcements VALUES (?, ?, ?, ?, ?, ?, ?)", (*values, *where))

    def _on_RejectionDisputed(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        values = (_stored_int(a["projectId"], "projectId"), _stored_int(a["round"], "round"), _address(a["trainer"]))
        _check_row(a["row"])
        self._db.execute("INSERT INTO disputes VALUES (?, ?, ?, ?, ?, ?)", (*values, *where))

    def _on_StakeSlashed(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT INTO slashes VALUES (?, ?, ?, ?, ?, ?, ?)",
            (int(a["projectId"]), int(a["round"]), a["trainer"], str(a["amount"]), *where),
        )

    def _on_Withdrawn(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._db.execute(
            "INSERT INTO withdrawals VALUES (?, ?, ?, ?, ?, ?)",
            (int(a["projectId"]), a["account"], str(a["amount"]), *where),
        )

    def _bond(self, kind: BondKind, a: dict[str, Any], who: str, where: tuple[int, int, str]) -> None:
        """Stores a bond event of a project's round: its ``projectId``, ``round``, the account ``a[who]`` (the
        aggregator, or the awarded trainer) and its ``amount`` (:class:`MalformedEvent` if any is out of bounds)."""
        values = (
            kind, _stored_int(a["projectId"], "projectId"), _stored_int(a["round"], "round"), _address(a[who]),
            str(_amount(a["amount"])),
        )  # fmt: skip
        self._db.execute("INSERT INTO bonds VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*values, *where))

    def _on_BondPosted(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._bond("posted", a, "aggregator", where)

    def _on_BondAwarded(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._bond("awarded", a, "trainer", where)

    def _on_BondReturned(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        self._bond("returned", a, "aggregator", where)

    def _on_BondWithdrawn(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        values = ("withdrawn", None, None, _address(a["account"]), str(_amount(a["amount"])))
        self._db.execute("INSERT INTO bonds VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*values, *where))

    def _on_StaleChallenged(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        """Stores a stale challenge once its values are what the market could have emitted (:class:`MalformedEvent`
        otherwise: the event is skipped)."""
        pid, round_ = _stored_int(a["projectId"], "projectId"), _stored_int(a["round"], "round")
        trainer, earlier_round = _address(a["trainer"]), _stored_int(a["earlierRound"], "earlierRound")
        if earlier_round >= round_:
            raise MalformedEvent(f"earlierRound {earlier_round} is not before the challenged round {round_}")
        members = [r[0] for r in self._db.execute("SELECT trainer FROM trainers WHERE project_id = ?", (pid,))]
        if trainer not in members:
            raise MalformedEvent(f"{trainer} is not a trainer of project {pid}")
        author = _stale_author(a["author"], len(members))
        stake = self._db.execute("SELECT stake FROM projects WHERE project_id = ?", (pid,)).fetchone()
        award = _amount(a["award"])
        if stake is None or award > int(stake[0]):
            raise MalformedEvent(f"award {award} is more than project {pid}'s stake")
        values = (pid, round_, trainer, _address(a["challenger"]), earlier_round, author, _bytes32(a["earlier"]))
        self._db.execute("INSERT INTO stale VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, str(award), *where))

    def _on_RoundRecorded(self, a: dict[str, Any], where: tuple[int, int, str]) -> None:
        for what in ("projectId", "round"):
            _stored_int(a[what], what)  # raises MalformedEvent (the event is skipped)
        self._db.executemany(
            "INSERT INTO reliability VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.trainer, r.market, r.project_id, r.round, int(r.outcome), r.reliability_bps, *where)
                for r in round_records(a)
            ],
        )

    # ------------------------------------------------------------------ proof documents (IPFS)

    def _read_proof_docs(self) -> int:
        """Reads the accuracy the aggregator published in each new round's proof document, if any; returns how
        many rounds' document states it recorded."""
        if self.proof_docs is None:
            return 0
        with self._lock:
            pending = self._db.execute(
                "SELECT project_id, round, proof_cid FROM rounds WHERE doc_state IS NULL ORDER BY block LIMIT ?",
                (DOCS_PER_SYNC,),
            ).fetchall()
        for done, (pid, round_, cid) in enumerate(pending, start=1):
            try:
                doc = self.proof_docs(cid)
            except ProofDocUnavailable:
                self._set_doc_state(pid, round_, "missing", None)
                return done  # IPFS is unreachable or slow: do not stall this sync on every round
            except Exception:  # a document must not be able to stop the index, whatever the reader does
                log.exception("round %d of project %d: reading proof document %s failed, skipped", round_, pid, cid)
                doc = None
            if doc is None or not _is_fraction(doc.accuracy):
                log.info("round %d of project %d: proof document %s is invalid, skipped", round_, pid, cid)
                self._set_doc_state(pid, round_, "invalid", None)
            else:
                named = _addresses(doc, "admitted"), _addresses(doc, "screened")
                self._set_doc_state(pid, round_, "ok", doc.accuracy, _reasons(doc), *named)
        return len(pending)

    def _set_doc_state(
        self,
        pid: int,
        round_: int,
        state: str,
        accuracy: float | None,
        reasons: dict[str, str] | None = None,
        admitted: list[str] | None = None,
        screened: list[str] | None = None,
    ) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE rounds SET accuracy = ?, doc_state = ?, reasons = ?, admitted = ?, screened = ? "
                "WHERE project_id = ? AND round = ?",
                (
                    accuracy, state, json.dumps(reasons or {}), json.dumps(admitted or []),
                    json.dumps(screened or []), pid, round_,
                ),
            )  # fmt: skip

    # ------------------------------------------------------------------ model cards (IPFS)

    def _read_model_cards(self) -> int:
        """Reads the model card of each new project's initial weights, newest project first; returns how many
        projects' card states it recorded."""
        if self.model_cards is None:
            return 0
        with self._lock:
            pending = self._db.execute(
                """SELECT project_id, initial_model_cid, block FROM projects
                   WHERE project_id NOT IN (SELECT project_id FROM cards) ORDER BY project_id DESC LIMIT ?""",
                (CARDS_PER_SYNC,),
            ).fetchall()
        started = time.monotonic()
        for done, (pid, cid, block) in enumerate(pending, start=1):
            try:
                card = self.model_cards(cid)
                state = "described" if card is not None else "none"
            except CardUnavailable:
                card, state = None, "missing"
            except Exception:  # weights must not be able to stop the index, whatever the reader does
                log.exception("project %d: reading the model card of %s failed, skipped", pid, cid)
                card, state = None, "none"
            self._set_card(pid, state, card, block)
            if time.monotonic() - started > CARDS_SECONDS_PER_SYNC:
                return done  # IPFS is slow: do not stall this sync on every project
        return len(pending)

    def _set_card(self, pid: int, state: str, card: ModelCard | None, block: int) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO cards VALUES (?, ?, ?, ?)",
                (pid, state, card.model_dump_json() if card is not None else None, block),
            )

    # ------------------------------------------------------------------ queries

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, tuple(params)).fetchall()]

    def projects(self, project_id: int | None = None) -> list[dict[str, Any]]:
        """Every project (or the one with ``project_id``) with its derived state: status, rounds done, trainers
        joined, latest model."""
        where, params = ("WHERE p.project_id = ?", (project_id,)) if project_id is not None else ("", ())
        rows = self._rows(
            f"""
            SELECT p.*,
              (SELECT kind FROM lifecycle l WHERE l.project_id = p.project_id
                 ORDER BY block DESC, log_index DESC LIMIT 1) AS last_kind,
              (SELECT COUNT(*) FROM rounds r WHERE r.project_id = p.project_id) AS rounds_done,
              (SELECT COUNT(*) FROM trainers t WHERE t.project_id = p.project_id) AS trainer_count,
              (SELECT model_cid FROM rounds r WHERE r.project_id = p.project_id
                 ORDER BY round DESC LIMIT 1) AS latest_round_model
            FROM projects p {where} ORDER BY p.project_id
            """,
            params,
        )
        for row in rows:
            row["status"] = STATUS_OF_KIND.get(row.pop("last_kind") or "created", "open")
            row["latest_model_cid"] = row.pop("latest_round_model") or row["initial_model_cid"]
        return rows

    def project(self, project_id: int) -> dict[str, Any] | None:
        """One project as :meth:`projects` shows it, or None."""
        if not -(2**63) <= project_id <= MAX_STORED_INT:  # SQLite's integers: no such project
            return None
        rows = self.projects(project_id)
        return rows[0] if rows else None

    def lifecycle(self, project_id: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM lifecycle WHERE project_id = ? ORDER BY block, log_index", (project_id,))
        for row in rows:
            row["data"] = json.loads(row["data"])
        return rows

    def trainers(self, project_id: int) -> list[dict[str, Any]]:
        """Members in the contract's trainer order."""
        return self._rows("SELECT * FROM trainers WHERE project_id = ? ORDER BY idx", (project_id,))

    def commits(self, project_id: int, round_: int | None = None) -> list[dict[str, Any]]:
        """``UpdateCommitted`` of a project (one round, or all), in chain order (within a round: arrival order)."""
        return self._of_rounds("commits", project_id, round_)

    def submissions(self, project_id: int, round_: int | None = None) -> list[dict[str, Any]]:
        """``UpdateSubmitted`` (the reveals) of a project (one round, or all), in chain order."""
        return self._of_rounds("submissions", project_id, round_)

    def _of_rounds(self, table: str, project_id: int, round_: int | None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {table} WHERE project_id = ?"
        params: list[Any] = [project_id]
        if round_ is not None:
            sql += " AND round = ?"
            params.append(round_)
        return self._rows(sql + " ORDER BY block, log_index", params)

    def rounds(self, project_id: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM rounds WHERE project_id = ? ORDER BY round", (project_id,))
        for row in rows:
            row["scores"] = [int(s) for s in json.loads(row["scores"])]
            row["flags"] = json.loads(row["flags"])
            row["rewards"] = [int(r) for r in json.loads(row["rewards"])]
            row["reasons"] = json.loads(row["reasons"] or "{}")
            row["admitted"] = json.loads(row["admitted"] or "[]")
            row["screened"] = json.loads(row["screened"] or "[]")
        return rows

    def rejections(self, project_id: int) -> dict[int, set[str]]:
        """Round -> the trainers whose update of that round the aggregator rejected (``SubmissionRejected``)."""
        out: dict[int, set[str]] = {}
        for row in self._rows("SELECT round, trainer FROM rejections WHERE project_id = ?", (project_id,)):
            out.setdefault(row["round"], set()).add(row["trainer"])
        return out

    def disputes(self, project_id: int) -> dict[int, dict[str, Dispute]]:
        """Round -> trainer -> :class:`Dispute`, for every trainer whose submission the aggregator announced as
        rejected (``RejectionAnnounced``) or rejected (``SubmissionRejected``) in that round."""
        finalized = {r["round"] for r in self._rows("SELECT round FROM rounds WHERE project_id = ?", (project_id,))}
        announced = {
            (r["round"], r["trainer"]): (r["dispute_deadline"], r["tx_hash"])
            for r in self._of_rounds("announcements", project_id, None)
        }
        disputed = {(r["round"], r["trainer"]): r["tx_hash"] for r in self._of_rounds("disputes", project_id, None)}
        rejected = {(r["round"], r["trainer"]): r["tx_hash"] for r in self._of_rounds("rejections", project_id, None)}
        out: dict[int, dict[str, Dispute]] = {}
        for key in sorted(announced.keys() | disputed.keys() | rejected.keys()):
            round_, trainer = key
            deadline, announced_tx = announced.get(key, (None, ""))
            state: DisputeState
            if key in rejected:
                state, tx = "upheld", rejected[key]
            elif key in disputed:
                state, tx = "disputed", disputed[key]
            elif round_ in finalized:
                state, tx = "withdrawn", announced_tx
            else:
                state, tx = "announced", announced_tx
            out.setdefault(round_, {})[trainer] = Dispute(state, deadline, tx)
        return out

    def skipped_events(self) -> list[dict[str, Any]]:
        """Events skipped because they could not be decoded or failed their checks, oldest first: ``name``,
        ``reason``, ``block``, ``log_index``, ``tx_hash``."""
        return self._rows("SELECT * FROM skipped ORDER BY block, log_index")

    def reveals_missed(self, project_id: int) -> dict[int, set[str]]:
        """Round -> the trainers that committed in that round and did not reveal (``RevealMissed``)."""
        out: dict[int, set[str]] = {}
        for row in self._rows("SELECT round, trainer FROM reveals_missed WHERE project_id = ?", (project_id,)):
            out.setdefault(row["round"], set()).add(row["trainer"])
        return out

    def slashes(self, project_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM slashes WHERE project_id = ? ORDER BY block, log_index", (project_id,))

    def withdrawals(self, project_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM withdrawals WHERE project_id = ? ORDER BY block, log_index", (project_id,))

    def bonds(self, project_id: int) -> list[dict[str, Any]]:
        """The rejection bonds' events of a project's rounds in chain order: ``kind`` (``posted``, ``awarded``,
        ``returned``), ``round``, ``account`` (the aggregator; the trainer for ``awarded``), ``amount`` (wei, a
        decimal string), ``block``, ``log_index``, ``tx_hash``."""
        return self._rows("SELECT * FROM bonds WHERE project_id = ? ORDER BY block, log_index", (project_id,))

    def bonds_of(self, account: str) -> list[dict[str, Any]]:
        """The rejection bonds' events of every project's rounds that name ``account`` (posted and returned to it as
        an aggregator, awarded to it as a disputing trainer), in chain order, as :meth:`bonds` gives them."""
        return self._rows(
            "SELECT * FROM bonds WHERE account = ? AND kind != 'withdrawn' ORDER BY block, log_index",
            (to_checksum_address(account),),
        )

    def bond_withdrawals(self, account: str) -> list[dict[str, Any]]:
        """``BondWithdrawn`` of ``account`` (its bond credits withdrawn, over every project), oldest first."""
        return self._rows(
            "SELECT * FROM bonds WHERE kind = 'withdrawn' AND account = ? ORDER BY block, log_index",
            (to_checksum_address(account),),
        )

    def stale_challenges(self, project_id: int) -> dict[int, dict[str, dict[str, Any]]]:
        """Round -> trainer -> its stale challenge (``StaleChallenged``, the first in chain order): ``challenger``,
        ``earlier_round``, ``author`` (the index of the earlier row's trainer; None: the owner's reference),
        ``earlier`` (that row's commitment, hex), ``award`` (wei out of the trainer's stake, a decimal string),
        ``block``, ``log_index``, ``tx_hash``."""
        out: dict[int, dict[str, dict[str, Any]]] = {}
        for row in self._of_rounds("stale", project_id, None):
            out.setdefault(row["round"], {}).setdefault(row["trainer"], row)
        return out

    def stale_rounds_of(self, trainer: str) -> set[tuple[int, int]]:
        """(project id, round) of every submission of ``trainer`` shown stale (this market's projects)."""
        rows = self._rows("SELECT project_id, round FROM stale WHERE trainer = ?", (to_checksum_address(trainer),))
        return {(r["project_id"], r["round"]) for r in rows}

    def reliability_history(self, trainer: str) -> list[dict[str, Any]]:
        """Every round the registry recorded for ``trainer`` (``RoundRecorded``, any market), oldest first."""
        return self._rows(
            "SELECT * FROM reliability WHERE trainer = ? ORDER BY block, log_index", (to_checksum_address(trainer),)
        )

    def projects_of(self, trainer: str) -> list[dict[str, Any]]:
        """The projects ``trainer`` joined, with its index and stake."""
        return self._rows(
            "SELECT * FROM trainers WHERE trainer = ? ORDER BY project_id", (to_checksum_address(trainer),)
        )

    def model_card(self, project_id: int) -> tuple[CardState, ModelCard | None]:
        """The model card of a project's initial weights and where reading it stands: ``described`` (with the
        card), ``none`` (they carry none that can be read), ``missing`` (IPFS did not deliver them), ``unread``
        (not read yet, or this index reads no IPFS node)."""
        rows = self._rows("SELECT state, card FROM cards WHERE project_id = ?", (project_id,))
        if not rows:
            return "unread", None
        state, card = rows[0]["state"], rows[0]["card"]
        if state == "described" and card:
            return "described", ModelCard.model_validate_json(card)
        return ("missing" if state == "missing" else "none"), None

    def verifiers(self) -> list[str]:
        """Verifiers currently approved by the market admin."""
        return [r["verifier"] for r in self._rows("SELECT verifier FROM verifiers WHERE approved = 1 ORDER BY block")]


def _is_fraction(value: object) -> bool:
    """None (no accuracy published) or a finite number in [0, 1]: what the index stores and charts show."""
    if value is None:
        return True
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _stored_int(value: object, what: str) -> int:
    """``value`` if it is an integer SQLite stores (0 to 2**63 - 1), else :class:`MalformedEvent`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_STORED_INT:
        raise MalformedEvent(f"{what} {str(value)[:80]!r} is not an integer in [0, 2**63)")
    return value


def _amount(value: object) -> int:
    """``value`` if it is a uint256 amount (as decoded from an event), else :class:`MalformedEvent`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise MalformedEvent(f"amount {str(value)[:80]!r} is not a uint256")
    return value


def _address(value: object) -> str:
    """``value`` if it is a checksummed address (as decoded from an event), else :class:`MalformedEvent`."""
    if not isinstance(value, str) or not is_checksum_address(value):
        raise MalformedEvent(f"{str(value)[:80]!r} is not an address")
    return value


def _bytes32(value: object) -> str:
    """``value`` as 0x-hex if it is 32 bytes (a decoded ``bytes32``), else :class:`MalformedEvent`."""
    if not isinstance(value, bytes) or len(value) != 32:
        raise MalformedEvent(f"{str(value)[:80]!r} is not 32 bytes")
    return "0x" + value.hex()


def _stale_author(value: object, members: int) -> int | None:
    """A stale challenge's ``author``: None for ``REFERENCE_AUTHOR`` (the owner's reference), else the index of one
    of the project's ``members`` trainers; :class:`MalformedEvent` for anything else."""
    if value == REFERENCE_AUTHOR and isinstance(value, int) and not isinstance(value, bool):
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < members:
        raise MalformedEvent(f"author {str(value)[:80]!r} is neither a trainer's index (< {members}) nor the reference")
    return value


def _check_row(row: object) -> None:
    """A published row the market could have accepted: a sequence of at most :data:`MAX_ROW_LENGTH` integers
    (K + 2, K >= 1) inside the committed rows' box (:func:`row_from_ints`); else :class:`MalformedEvent`."""
    if not isinstance(row, list | tuple):
        raise MalformedEvent(f"the row is a {type(row).__name__}, not a list of integers")
    if not 3 <= len(row) <= MAX_ROW_LENGTH:
        raise MalformedEvent(f"a row of {len(row)} values (a published row has 3 to {MAX_ROW_LENGTH})")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in row):
        raise MalformedEvent("the row holds values that are not integers")
    try:
        row_from_ints(row, len(row) - 2)
    except InvalidPublishedRow as exc:
        raise MalformedEvent(str(exc)) from None


def _addresses(doc: ProofDocument, field: Literal["admitted", "screened"]) -> list[str]:
    """The trainers the proof document names in ``field`` (the aggregator's word): ``admitted``, in the new model
    unpaid; ``screened``, kept out of it by the owner's reference, paid as scored. As checksummed addresses, each
    once, in the document's order, at most 1024; entries that are not addresses are dropped."""
    out: list[str] = []
    given = getattr(doc, field, None)
    for trainer in given[:1024] if isinstance(given, list) else []:
        if isinstance(trainer, str) and is_address(trainer) and to_checksum_address(trainer) not in out:
            out.append(to_checksum_address(trainer))
    return out


def _reasons(doc: ProofDocument) -> dict[str, str]:
    """The proof document's reasons for its rejections (``rejected``, then ``published``: the aggregator's
    word), by checksummed trainer address; keys that are not addresses are dropped, reasons keep at most
    :data:`MAX_REASON_CHARS` printable characters."""
    out: dict[str, str] = {}
    for field in ("rejected", "published"):
        given = getattr(doc, field, None)
        if not isinstance(given, dict):
            continue
        for trainer, reason in list(given.items())[:1024]:
            if isinstance(trainer, str) and is_address(trainer) and isinstance(reason, str):
                text = "".join(ch for ch in reason if ch.isprintable()).strip()[:MAX_REASON_CHARS]
                out[to_checksum_address(trainer)] = text
    return out
