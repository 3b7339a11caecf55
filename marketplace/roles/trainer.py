"""A trainer taking part in projects: each round it fetches the global model from IPFS, makes its
update, pins it, and submits the update's CID and its commitment (the Poseidon hash of the
committed row of its sketch, see :mod:`marketplace.protocol.commitment`) in two steps: during the
commit phase it commits a seal of them (:mod:`marketplace.protocol.seal`), and once the commit phase
has closed it reveals them. Its salt is derived from its own key and its CID and commitment travel
in its commit's encrypted note, so a trainer restarted between the two steps still reveals. The
update itself is added to IPFS only once the commit is on chain (its CID is computed locally first):
before that, nobody can fetch it and commit a copy ahead of it. (A trainer that crashes after its
commit is mined and before the update is added has nothing to reveal: it then misses the reveal.)

Where the update comes from is the trainer's :class:`UpdateSource`: the honest
:class:`LocalTraining` trains on the trainer's private data; the demo's simulated cheaters
(:mod:`marketplace.demo.adversaries`) are other sources. A source sees one :class:`UpdateContext`
per round and returns the flat update, or ``None`` when it has nothing to submit yet
(:attr:`StepOutcome.NOTHING_TO_COPY`; the trainer tries again at its next step).

In an encrypted project (its aggregator published an update key in ``UpdateKeys``) the trainer pins its update
encrypted to that key (:mod:`marketplace.protocol.envelope`): the seal and the reveal carry the CID of the
encrypted bytes, the commitment is the plaintext's as always. The key is read at each commit, so a key
published late applies from the trainer's next commit on. Its sender key is derived from its wallet, so a
restarted trainer still reads its own update (to dispute a rejection).

Who commits: the trainer itself, or first the aggregator, in one ``commitBatch`` for all its trainers (cheaper:
:mod:`marketplace.protocol.signed_commit`) when the node is given the aggregator's commit inbox (``commit_inbox``,
:mod:`marketplace.round.commit_inbox`). Then the trainer signs its commit (EIP-712) and hands it over; the update
is still added to IPFS only once the commit is on chain, whoever sent it. If the commit is not on chain by half
the commit period (the chain's clock, not the local one) it commits itself, so an aggregator that withholds the
batch costs it the gas of its own commit, never the round; an inbox that refuses or does not answer makes it
commit itself at once.

Who reveals (:class:`RevealVia`): the trainer itself (``SELF``), or first the aggregator, in one
``revealBatch`` for all its trainers (``AGGREGATOR``, cheaper: :mod:`marketplace.protocol.opening`). Then the
commit's note also points to the trainer's opening document, which the trainer adds to IPFS once the commit
phase has closed on chain (:meth:`TrainerNode.publish_opening` refuses before that, whatever the local clock
says); if it is still not revealed at ``revealOpens + revealPeriod / 2`` it reveals itself, so an aggregator that
withholds the batch costs it the gas of its own reveal, never the round.

If the aggregator announces that it rejects this trainer's submission, the trainer disputes the
rejection within the dispute window: it publishes its committed row on chain with a proof that the row
hashes to its commitment (:meth:`TrainerNode.step` returns :class:`Disputed`), so the round is scored
with its row and a false rejection takes neither its reward nor its stake. A submission whose row was published on
chain in an earlier round of the project (a replay) cannot be disputed: the market refuses, and the step returns
:class:`DisputeRefused` once.

:meth:`TrainerNode.step` does whatever is due now and returns at once; :meth:`TrainerNode.run`
loops over it until the project ends. Everything it needs to know comes from the chain, so a
restarted trainer carries on where it stopped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

import numpy as np
import torch

from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import Commit, MarketClient, Project, ProjectStatus
from marketplace.adapters.chain.update_keys import UpdateKeysClient, recorded_update_keys
from marketplace.adapters.ipfs.cid import compute_cid
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import TensorLike
from marketplace.fl.data import LocalData
from marketplace.fl.models import param_spec, tensors_to_vector, vector_to_state
from marketplace.fl.train import Progress, train_local
from marketplace.protocol.commitment import commit_update, published_row
from marketplace.protocol.constants import MAX_UPDATE_BYTES
from marketplace.protocol.envelope import (
    InvalidUpdateKey,
    UpdateOrigin,
    check_public_key,
    is_envelope,
    open_own,
    seal_update,
    sender_key,
)
from marketplace.protocol.opening import MAX_NOTE_BYTES, OpeningDocument, note_with_pointer, split_note
from marketplace.protocol.seal import InvalidNote, RoundAddress, derive_salt, open_note, seal, seal_note
from marketplace.protocol.signed_commit import SignedCommitDocument, sign_commit
from marketplace.round.collect import ObjectOpener, fetch_update
from marketplace.round.commit_inbox import CommitRefused, InboxUnavailable, hand_over
from marketplace.round.prove import row_prover_for

EMPTY = b"\0" * 32


@dataclass(frozen=True)
class TrainingSettings:
    """How this trainer trains locally."""

    epochs: int = 2
    lr: float = 0.1
    batch_size: int = 32
    seed: int = 0


@dataclass(frozen=True)
class UpdateContext:
    """What an :class:`UpdateSource` may use to make one round's update.

    ``global_state`` is the round's global model as fetched from IPFS (named arrays in the
    architecture's layout); ``market`` signs as this trainer and, with ``store``, lets a source
    read the round's other submissions; ``progress`` reports training steps.
    """

    project_id: int
    round: int
    model_name: str
    global_state: Mapping[str, TensorLike]
    market: MarketClient
    store: ModelStore
    progress: Progress | None = None

    @property
    def trainer(self) -> str:
        """This trainer's address."""
        return self.market.address


class UpdateSource(Protocol):
    """Makes the flat update (float32, the architecture's parameter order) a trainer submits."""

    def make_update(self, ctx: UpdateContext) -> np.ndarray | None:
        """The update for ``ctx.round``, or ``None`` if there is nothing to submit yet."""
        ...


@dataclass(frozen=True)
class LocalTraining:
    """The honest source: ``settings.epochs`` of local SGD on ``data`` from the global model,
    seeded by ``settings.seed * 1000 + round`` (deterministic per trainer and round)."""

    data: LocalData
    settings: TrainingSettings = field(default_factory=TrainingSettings)

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        s = self.settings
        spec = param_spec(ctx.model_name)
        state = OrderedDict((k, torch.from_numpy(np.array(ctx.global_state[k]))) for k in spec)
        update = train_local(
            ctx.model_name, state, self.data, s.epochs, s.lr, s.batch_size,
            seed=s.seed * 1_000 + ctx.round, progress=ctx.progress,
        )  # fmt: skip
        return tensors_to_vector(update, ctx.model_name)


class StepOutcome(StrEnum):
    ALREADY_SUBMITTED = "revealed; waiting for the round to be finalized"
    NOT_TRAINING = "not training yet"
    ROUND_CLOSED = "commit phase closed"
    WAITING_FOR_REVEAL = "committed; waiting for the reveal phase"
    REVEAL_CLOSED = "reveal phase closed"
    FINISHED = "project ended"
    NOTHING_TO_COPY = "nothing to copy yet"
    UNUSABLE_UPDATE_KEY = "the aggregator's update key cannot be encrypted to; not submitting"
    WAITING_FOR_AGGREGATOR = "opening published; waiting for the aggregator's reveal batch"
    WAITING_FOR_COMMIT_BATCH = "commit signed and handed to the aggregator; waiting for its commit batch"
    COMMITTED_ELSEWHERE = (
        "another signed commit of this trainer was committed (one handed over before a restart): revealing that one"
    )


class RevealVia(StrEnum):
    """Who reveals a trainer's commit: first the aggregator (in one batch for every trainer, from the opening
    the trainer publishes once the commit phase has closed; the trainer reveals itself if the batch has not
    revealed it by half the reveal period), or the trainer itself."""

    AGGREGATOR = "aggregator"
    SELF = "self"


class CommitVia(StrEnum):
    """Who sent a trainer's commit: the aggregator (its ``commitBatch`` of the commit the trainer signed and handed
    to its inbox) or the trainer itself."""

    AGGREGATOR = "aggregator"
    SELF = "self"


class OpeningTooEarly(RuntimeError):
    """The opening of a round whose commit phase is still open on chain: releasing it would let anyone commit
    a copy of the update before the phase closes."""


@dataclass(frozen=True)
class Committed:
    """What :meth:`TrainerNode.step` committed (sealed; revealed by a later step)."""

    project_id: int
    round: int
    cid: str
    commitment: bytes
    update_norm: float
    gas_used: int = 0  # of the commitUpdate transaction (0: the aggregator's batch committed it)
    #: seconds per phase: fetch (global model), train, commit (sketch + Poseidon), seal (commit mined or handed
    #: over), pin
    timings: dict[str, float] = field(default_factory=dict)
    committed_by: CommitVia = CommitVia.SELF
    #: why the aggregator's inbox did not take the signed commit, when this trainer then committed itself at once
    handover_error: str = ""


@dataclass(frozen=True)
class Submitted:
    """What :meth:`TrainerNode.step` revealed: the round's submission, now public."""

    project_id: int
    round: int
    cid: str
    commitment: bytes
    update_norm: float | None = None  # known if this node committed it (not after a restart)
    gas_used: int = 0  # of the commit (if this node made it) and reveal (if it made it) transactions
    #: seconds per phase: fetch, train, commit, pin, seal (if this node committed), submit (reveal mined)
    timings: dict[str, float] = field(default_factory=dict)
    revealed_by: RevealVia = RevealVia.SELF  # AGGREGATOR: its reveal batch revealed it (no reveal gas here)


@dataclass(frozen=True)
class Disputed:
    """What :meth:`TrainerNode.step` did when the aggregator rejected this trainer's submission: it
    published its committed row with a row proof (``disputeRejection``)."""

    project_id: int
    round: int
    row: list[int]  # the published row (integers at scale 2^13)
    gas_used: int = 0


@dataclass(frozen=True)
class DisputeRefused:
    """What :meth:`TrainerNode.step` did when the aggregator rejected this trainer's submission and the market
    refuses its dispute for good: the row behind the submission's commitment was published on chain in an earlier
    round of the project (``RowAlreadyPublished``: the submission replays a published row, a dispute's or the
    owner's reference). Nothing was sent (the gas estimate reverted) and the node does not try again in this round:
    the rejection stands (flagged, unpaid, slashed for the round)."""

    project_id: int
    round: int
    commitment: bytes  # the submission's commitment
    published_in: int  # the round the row behind it was first published in


class OwnRowMismatch(RuntimeError):
    """This trainer's own update (fetched by its revealed CID) does not hash to its on-chain commitment:
    it has no row it could publish."""


class TrainerNode:
    """One trainer (one wallet) submitting what its ``source`` makes (usually
    ``LocalTraining(data, settings)``: training on its private data). ``update_keys`` is the market's
    ``UpdateKeys`` (default: the one recorded beside the market in the deployment records, see
    :func:`recorded_update_keys`); without one the trainer cannot know that a project is encrypted and pins
    its updates in the clear. ``reveal_via`` says who reveals its commits first (:class:`RevealVia`);
    ``commit_inbox`` is the URL of the aggregator's commit inbox, which this trainer hands its signed commits to
    (None: it commits itself)."""

    def __init__(
        self,
        market: MarketClient,
        store: ModelStore,
        source: UpdateSource,
        *,
        now: Callable[[], int] | None = None,
        update_keys: UpdateKeysClient | None = None,
        reveal_via: RevealVia = RevealVia.SELF,
        commit_inbox: str | None = None,
    ) -> None:
        self.market = market
        self.reveal_via = reveal_via
        self.commit_inbox = commit_inbox
        self.store = store
        self.source = source
        self.update_keys = update_keys if update_keys is not None else recorded_update_keys(market)
        self._now = now or market.chain.timestamp
        self._committed: dict[tuple[int, int], Committed] = {}
        self._unpublished: dict[tuple[int, int], tuple[bytes, str]] = {}
        self._rows: dict[tuple[int, int], np.ndarray] = {}  # committed rows, by (project, round)
        self._refused: set[tuple[int, int]] = set()  # (project, round) whose dispute the market refuses for good
        self._openings: dict[tuple[int, int], tuple[bytes, str]] = {}  # opening documents not yet added
        #: commits handed to the aggregator's inbox and not seen on chain yet: (seal, note, what was committed)
        self._handed: dict[tuple[int, int], tuple[bytes, bytes, Committed]] = {}

    @property
    def address(self) -> str:
        return self.market.address

    def join(self, project_id: int) -> None:
        """Joins with the project's stake (reverts with a clear error if not allowed)."""
        self.market.join(project_id)

    def step(
        self, project_id: int, progress: Progress | None = None
    ) -> StepOutcome | Committed | Submitted | Disputed | DisputeRefused:
        """Does what is due in the open round: commits if this trainer has not yet and the commit phase
        is open, reveals if it committed and the reveal phase is open, disputes its rejection if the
        aggregator announced one (:class:`DisputeRefused`, once, if the market refuses the dispute for good); else
        says why not (:attr:`StepOutcome.UNUSABLE_UPDATE_KEY`: the project's
        update key is a point nothing can be encrypted to, so this trainer does not submit rather than publish
        its update)."""
        project = self.market.get_project(project_id)
        earlier = self._revealed_since_last_step(project)
        if earlier is not None:
            return earlier
        if project.status in (ProjectStatus.FINISHED, ProjectStatus.CANCELLED):
            return StepOutcome.FINISHED
        if project.status is not ProjectStatus.TRAINING:
            return StepOutcome.NOT_TRAINING
        round_ = project.current_round
        if self.market.commitment(project_id, round_, self.address) != EMPTY:
            disputed = self._dispute_if_rejected(project_id, round_)
            return disputed or self._revealed_by_batch(project_id, round_) or StepOutcome.ALREADY_SUBMITTED
        deadlines = self.market.round_deadlines(project_id)
        now = self._now()
        on_chain = self.market.committed_seal(project_id, round_, self.address)
        if on_chain == EMPTY:
            if now > deadlines.commit or project.commits == project.trainer_count:
                return StepOutcome.ROUND_CLOSED
            handed = self._handed.get((project_id, round_))
            if handed is None:
                return self._commit(project, progress)
            if self.market.chain.timestamp() < self._half_commit(project):
                return StepOutcome.WAITING_FOR_COMMIT_BATCH
            return self._send_commit(*handed)  # not batched by half the commit period: commit itself
        handed = self._handed.pop((project_id, round_), None)
        if handed is not None and handed[0] != on_chain:
            self._forget_unsent(project_id, round_)
            return StepOutcome.COMMITTED_ELSEWHERE
        if handed is not None:  # the aggregator's batch committed it
            self._publish(project_id, round_)
            self._committed[(project_id, round_)] = handed[2]
            return handed[2]
        self._publish(project_id, round_)  # the commit is on chain: the update may be fetched now
        if now < deadlines.reveal_opens:
            return StepOutcome.WAITING_FOR_REVEAL
        if now > deadlines.reveal:
            return StepOutcome.REVEAL_CLOSED
        handing_over = (
            self.reveal_via is RevealVia.AGGREGATOR and now < deadlines.reveal_opens + project.reveal_period // 2
        )
        try:
            if handing_over and self.publish_opening(project_id, round_):
                return StepOutcome.WAITING_FOR_AGGREGATOR
        except OpeningTooEarly:  # this node's clock is ahead of the chain's
            return StepOutcome.WAITING_FOR_REVEAL
        return self._reveal(project_id, round_)

    def _where(self, project_id: int, round_: int) -> RoundAddress:
        return self.market.round_address(project_id, round_)

    def _commit(self, project: Project, progress: Progress | None) -> StepOutcome | Committed:
        """Makes the update, pins it and commits its seal (with the encrypted note for the reveal)."""
        project_id, round_ = project.project_id, project.current_round
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[phase], clock = now - clock, now

        try:
            recipient = self._update_key(project_id)
        except InvalidUpdateKey:
            return StepOutcome.UNUSABLE_UPDATE_KEY
        spec = param_spec(project.model_name)
        global_state = self.store.get_tensors(project.latest_model_cid, expected=spec, max_bytes=MAX_UPDATE_BYTES)
        lap("fetch")
        ctx = UpdateContext(project_id, round_, project.model_name, global_state, self.market, self.store, progress)
        update = self.source.make_update(ctx)
        lap("train")
        if update is None:
            return StepOutcome.NOTHING_TO_COPY
        seed = self.market.sketch_seed(project_id)
        row, commitment = commit_update(update, seed, self.market.sketch_width(project_id))
        self._rows[(project_id, round_)] = row
        lap("commit")
        data, cid = self.store.prepare_tensors(
            vector_to_state(update, spec),
            {"kind": "update", "project": str(project_id), "round": str(round_), "trainer": self.address},
        )
        account, where = self.market.chain.account, self._where(project_id, round_)
        if recipient is not None:  # an encrypted project: what is pinned (and sealed) is the envelope
            data = seal_update(data, recipient, sender_key(account, where), UpdateOrigin(where, self.address))
            cid = compute_cid(data, self.store.client.profile)
        salt = derive_salt(account, where, commitment)
        sealed = seal(commitment, cid, self.address, where, salt)
        note = seal_note(account, where, commitment, cid)
        if self.reveal_via is RevealVia.AGGREGATOR:  # the note points to the opening, added once commits closed
            document = OpeningDocument.of(where, self.address, cid, commitment, salt).to_bytes()
            pointer = compute_cid(document, self.store.client.profile)
            if len(note_with_pointer(note, pointer)) <= MAX_NOTE_BYTES:
                note = note_with_pointer(note, pointer)
                self._openings[(project_id, round_)] = (document, pointer)
        # Published only once the commit is on chain: whoever fetches it then can commit a copy only after
        # this commit, and the rule keeps the earliest of near-identical updates. (Until then the CID is
        # secret: sealed. If the commit is still pending, or handed to the aggregator, a later step publishes it.)
        self._unpublished[(project_id, round_)] = (data, cid)
        committed = Committed(project_id, round_, cid, commitment, float(np.linalg.norm(update)), 0, timings)
        if self.commit_inbox is not None and self.market.chain.timestamp() < self._half_commit(project):
            signed = sign_commit(account, where, sealed, note)
            try:
                hand_over(self.commit_inbox, SignedCommitDocument.of(where, signed))
            except (CommitRefused, InboxUnavailable) as exc:  # commit itself at once
                committed = replace(committed, handover_error=str(exc))
            else:
                lap("seal")
                self._handed[(project_id, round_)] = (
                    sealed,
                    note,
                    replace(committed, committed_by=CommitVia.AGGREGATOR),
                )
                return StepOutcome.WAITING_FOR_COMMIT_BATCH
        return self._send_commit(sealed, note, committed)

    @staticmethod
    def _half_commit(project: Project) -> int:
        """When this trainer stops waiting for the aggregator's commit batch: half the commit period."""
        return project.round_start + project.submission_period // 2

    def _send_commit(self, sealed: bytes, note: bytes, committed: Committed) -> Committed | StepOutcome:
        """Commits ``sealed`` (with ``note``) itself and publishes the update once the commit is on chain; what it
        committed is ``committed`` with the gas (none if the aggregator's batch was mined first).
        :attr:`StepOutcome.COMMITTED_ELSEWHERE` if another commit of this trainer was mined first (see
        :meth:`_forget_unsent`)."""
        project_id, round_ = committed.project_id, committed.round
        self._handed.pop((project_id, round_), None)
        clock = time.perf_counter()
        try:
            gas, by = int(self.market.commit_update(project_id, round_, sealed, note)["gasUsed"]), CommitVia.SELF
        except ContractRevert as exc:
            if exc.name != "AlreadyCommitted":
                raise
            if self.market.committed_seal(project_id, round_, self.address) != sealed:
                self._forget_unsent(project_id, round_)
                return StepOutcome.COMMITTED_ELSEWHERE
            gas, by = 0, CommitVia.AGGREGATOR  # the batch was mined first
        committed.timings["seal"] = committed.timings.get("seal", 0.0) + time.perf_counter() - clock
        clock = time.perf_counter()
        if self.market.committed_seal(project_id, round_, self.address) == sealed:
            self._publish(project_id, round_)
        committed.timings["pin"] = time.perf_counter() - clock
        committed = replace(committed, gas_used=gas, committed_by=by)
        self._committed[(project_id, round_)] = committed
        return committed

    def _forget_unsent(self, project_id: int, round_: int) -> None:
        """Forgets the update and opening of this node's commit of ``round_``: another commit of this trainer is on
        chain instead, one it signed and handed over before a restart (a signed commit is valid until its round
        closes, and anyone holding it may commit it). Only that commit can be revealed now: a later step reads what
        it sealed from its note on chain (:meth:`_reveal`, :meth:`publish_opening`). The forgotten update is never
        published (it was committed by nobody), and the row stays remembered: it is the committed one if this
        node's update is the same as before the restart (only an envelope's nonce differed), for a dispute."""
        key = (project_id, round_)
        self._unpublished.pop(key, None)
        self._openings.pop(key, None)
        self._committed.pop(key, None)

    def _update_key(self, project_id: int) -> bytes | None:
        """The key this trainer encrypts its update of ``project_id`` to now (None: the project's updates are
        public); :class:`InvalidUpdateKey` if the published key cannot be encrypted to."""
        key = self.update_keys.key_of(project_id) if self.update_keys is not None else None
        return None if key is None else check_public_key(key)

    def _publish(self, project_id: int, round_: int) -> None:
        """Adds and pins this trainer's committed update of ``round_`` if it has not yet."""
        pending = self._unpublished.pop((project_id, round_), None)
        if pending is not None:
            self.store.publish(*pending)

    def publish_opening(self, project_id: int, round_: int) -> bool:
        """Adds this trainer's opening document of ``round_`` (the one its commit's note points to) to IPFS, for the
        aggregator's reveal batch; False if its note points to none (then only this trainer can reveal).

        Raises :class:`OpeningTooEarly` unless the chain says that the round's commit phase has closed (its
        latest block is at or after ``revealOpens``): the local clock is never trusted for this."""
        project = self.market.get_project(project_id)
        if round_ >= project.current_round and project.status is ProjectStatus.TRAINING:
            opens = self.market.round_deadlines(project_id).reveal_opens
            if round_ > project.current_round or self.market.chain.timestamp() < opens:
                raise OpeningTooEarly(f"the commit phase of round {round_} of project {project_id} is open on chain")
        elif round_ >= project.current_round:
            raise OpeningTooEarly(f"project {project_id} is not training round {round_}")
        key = (project_id, round_)
        if key not in self._openings:  # restarted since it committed: rebuild it from its note
            pointer, _ = split_note(self._own_commit(project_id, round_).note)
            if pointer is None:
                return False
            where = self._where(project_id, round_)
            commitment, cid = self._own_note(project_id, round_, where)
            salt = derive_salt(self.market.chain.account, where, commitment)
            document = OpeningDocument.of(where, self.address, cid, commitment, salt).to_bytes()
            if compute_cid(document, self.store.client.profile) != pointer:
                return False  # written by other code: the aggregator finds nothing it can use
            self._openings[key] = (document, pointer)
        document, pointer = self._openings[key]
        if self.store.put_bytes(document, name="opening.json") != pointer:
            raise StorageError(f"the node added the opening document under another CID than {pointer}")
        return True

    def _revealed_since_last_step(self, project: Project) -> Submitted | None:
        """Once, for a commit this node handed to the aggregator in a round that has closed since its last step
        (the batch revealed it and the round was finalized, or the project ended, in between): what the batch
        revealed. A commit of such a round that nobody revealed is forgotten (the reveal was missed)."""
        ended = project.status in (ProjectStatus.FINISHED, ProjectStatus.CANCELLED)
        for key in [k for k in self._handed if k[0] == project.project_id and (ended or k[1] < project.current_round)]:
            self._handed.pop(key)  # handed over and never committed: the round closed without it
            self._unpublished.pop(key, None)
        for project_id, round_ in sorted(self._committed):
            if project_id != project.project_id or not (ended or round_ < project.current_round):
                continue
            if self.market.commitment(project_id, round_, self.address) != EMPTY:
                return self._revealed_by_batch(project_id, round_)
            self._committed.pop((project_id, round_))
            self._openings.pop((project_id, round_), None)
        return None

    def _revealed_by_batch(self, project_id: int, round_: int) -> Submitted | None:
        """Once, for a commit this node made and did not reveal itself: what the aggregator's batch revealed."""
        committed = self._committed.pop((project_id, round_), None)
        self._openings.pop((project_id, round_), None)
        if committed is None:
            return None
        return Submitted(
            project_id, round_, committed.cid, committed.commitment, committed.update_norm, committed.gas_used,
            dict(committed.timings), revealed_by=RevealVia.AGGREGATOR,
        )  # fmt: skip

    def _reveal(self, project_id: int, round_: int) -> Submitted:
        """Reveals this trainer's commit of ``round_`` (found in memory, else in its commit's note). If a reveal batch
        sent late was mined first with this very commit (the race at half the reveal period), what the batch
        revealed: the trainer's own reveal reverted ``AlreadySubmitted`` and cost it nothing here."""
        clock = time.perf_counter()
        where = self._where(project_id, round_)
        committed = self._committed.pop((project_id, round_), None)
        if committed is None:  # restarted since it committed: its note on chain says what it sealed
            commitment, cid = self._own_note(project_id, round_, where)
        else:
            commitment, cid = committed.commitment, committed.cid
        salt = derive_salt(self.market.chain.account, where, commitment)
        norm, earlier_gas = (committed.update_norm, committed.gas_used) if committed else (None, 0)
        try:
            receipt = self.market.reveal_update(project_id, round_, cid, commitment, salt)
        except ContractRevert as exc:  # a reveal batch sent late was mined first: it revealed this very commit
            if exc.name != "AlreadySubmitted" or self.market.commitment(project_id, round_, self.address) != commitment:
                raise
            timings = {**(committed.timings if committed else {})}
            return Submitted(
                project_id, round_, cid, commitment, norm, earlier_gas, timings, revealed_by=RevealVia.AGGREGATOR
            )
        timings = {**(committed.timings if committed else {}), "submit": time.perf_counter() - clock}
        gas = int(receipt["gasUsed"]) + earlier_gas
        return Submitted(project_id, round_, cid, commitment, norm, gas, timings)

    def _dispute_if_rejected(self, project_id: int, round_: int) -> Disputed | DisputeRefused | None:
        """Disputes this trainer's announced rejection in ``round_`` while the window is open (None if
        there is nothing to dispute, or the market refused this round's dispute for good at an earlier step).
        A refusal for good (``RowAlreadyPublished``) is returned once as :class:`DisputeRefused`; any other revert
        is raised (the next step tries again)."""
        rejections = self.market.rejections(project_id)
        if self.address not in rejections.rejected or self._now() > rejections.dispute_deadline:
            return None
        if (project_id, round_) in self._refused:
            return None
        row = self._own_row(project_id, round_)
        proof = row_prover_for(self.market, project_id).prove_row(row)
        ints = published_row(row)
        try:
            receipt = self.market.dispute_rejection(project_id, round_, ints, proof)
        except ContractRevert as exc:
            if exc.name != "RowAlreadyPublished":
                raise
            self._refused.add((project_id, round_))
            return DisputeRefused(project_id, round_, bytes(exc.args["commitment"]), int(exc.args["round"]))
        return Disputed(project_id, round_, ints, int(receipt["gasUsed"]))

    def _own_row(self, project_id: int, round_: int) -> np.ndarray:
        """The row this trainer committed in ``round_``: remembered since its commit, else recomputed from
        its own update (fetched by the CID it revealed) and checked against its on-chain commitment."""
        commitment = self.market.commitment(project_id, round_, self.address)
        row = self._rows.get((project_id, round_))
        if row is None:
            project = self.market.get_project(project_id)
            mine = [s for s in self.market.submissions(project_id, round_) if s.trainer == self.address]
            if not mine:
                raise OwnRowMismatch(f"{self.address} revealed nothing in round {round_} of project {project_id}")
            update = fetch_update(
                self.store, mine[0].cid, param_spec(project.model_name), self._own_opener(project_id, round_)
            )
            row, recomputed = commit_update(
                update, self.market.sketch_seed(project_id), self.market.sketch_width(project_id)
            )
            if recomputed != commitment:
                raise OwnRowMismatch(f"the update at {mine[0].cid} does not hash to {self.address}'s commitment")
        return row

    def _own_opener(self, project_id: int, round_: int) -> ObjectOpener | None:
        """How this trainer reads its own pinned update of ``round_`` again: in an encrypted project its envelope
        is opened with its derived sender key (an update pinned in the clear before the key was published is
        read as it is); None in a project whose updates are public."""
        key = self.update_keys.key_of(project_id) if self.update_keys is not None else None
        if key is None:
            return None
        where = self._where(project_id, round_)
        secret, origin = sender_key(self.market.chain.account, where), UpdateOrigin(where, self.address)

        def open_update(data: bytes) -> bytes:
            return open_own(data, key, secret, origin) if is_envelope(data) else data

        return open_update

    def _own_commit(self, project_id: int, round_: int) -> Commit:
        for commit in self.market.commits(project_id, round_):
            if commit.trainer == self.address:
                return commit
        raise InvalidNote(f"no commit of {self.address} in round {round_} of project {project_id}")

    def _own_note(self, project_id: int, round_: int, where: RoundAddress) -> tuple[bytes, str]:
        """(commitment, cid) from this trainer's own note of ``round_`` (behind the pointer to its opening, if any)."""
        note = self._own_commit(project_id, round_).note
        pointer, inner = split_note(note)
        account = self.market.chain.account
        if pointer is not None:
            try:
                return open_note(account, where, inner)
            except InvalidNote:
                pass  # an older note that happens to start like a pointer
        return open_note(account, where, note)

    def run(self, project_id: int, poll_seconds: float = 2.0, on_event: Callable[[object], None] | None = None) -> None:
        """Steps until the project is finished or cancelled, sleeping ``poll_seconds`` between checks.

        ``on_event`` hears every change: each new outcome of :meth:`step`, and each :class:`StorageError`
        that stopped a step (one that repeats unchanged, poll after poll, is heard once). Such an error
        never stops the loop: the step is tried again at the next poll, which is all that can help.

        - The IPFS node did not answer or does not have the object, or sent bytes that are not the CID's
          (:class:`IpfsError`, :class:`CidMismatch`): transient, the next poll may succeed.
        - The round's global model is not a model of the project's architecture (its CID is not a CID, the
          object is too large, not safetensors, other tensors: any other :class:`StorageError`): final for
          that model, so it is reported once; it stays the round's model until the round is finalized
          without this trainer (the next poll trains on the new model) or the project ends (and so does
          this loop).

        A project whose model name is no architecture of this code raises :class:`ValueError` out of the
        step: this trainer can never train there.
        """
        last: object = None
        while True:
            try:
                outcome: object = self.step(project_id)
            except StorageError as exc:  # IpfsError and CidMismatch: transient; else the model is bad
                outcome = exc
            seen = (type(outcome), str(outcome)) if isinstance(outcome, Exception) else outcome
            if seen != last and on_event is not None:
                on_event(outcome)
            last = seen
            if outcome is StepOutcome.FINISHED:
                return
            if not isinstance(outcome, Submitted | Committed):  # after a commit, try the reveal at once
                time.sleep(poll_seconds)
