"""The aggregator: for every project it serves, when a round is due (all trainers submitted or the
submission deadline passed) it fetches the updates from IPFS, rejects bad ones, flags outliers
and scores contributions on the committed rows (the Gram rule), averages the paid trainers' full updates
into the new global model, pins it, proves the scores and finalizes the round on chain.

Rejections are announced first (``rejectSubmissions``) and finalized only after the dispute window:
a rejected trainer that publishes its committed row on chain in that window is scored on it like any
other (:func:`~marketplace.round.collect.apply_published_rows`), its update staying out of the model.

In an encrypted project (its aggregator published an update key in ``UpdateKeys``: :func:`publish_update_key`)
the trainers' updates are encrypted to that key; the node derives the secret key from its wallet
(:func:`~marketplace.protocol.envelope.update_key`) and opens every fetched update before checking it, for the
submission that revealed it. An update that does not open, or was sealed for another trainer or round (a
replayed envelope), is rejected like any other bad update (its trainer may dispute with its row).

Commits can be batched too: given a :class:`~marketplace.round.commit_inbox.CommitInbox` (served over HTTP by
``aggregator run --commit-inbox``), the node commits the signed commits its trainers handed in with one
``commitBatch`` (:meth:`AggregatorNode.commit_signed`), each checked first with an ``eth_call``; a trainer whose
commit is not on chain by half the commit period commits itself.

Reveals are batched: once the commit phase has closed, the node collects the openings the trainers published
(:func:`~marketplace.round.openings.find_openings`: found through their commits' notes, fetched over IPFS,
each checked off chain against its trainer's seal) and reveals them in one ``revealBatch``
(:meth:`AggregatorNode.reveal_openings`). A trainer whose opening is missing or bad is left out, and reveals
itself by half the reveal period; a batch never fails a round.

The project owner's reference row (docs/design/robust-reference.md), when the owner revealed one in the round
(``revealReference``), is read from its event and checked against the commitment the market recorded
(:func:`~marketplace.round.reference.revealed_reference`); the round is scored with the reference-aware rule and
proven with the row (the market hands the verifier its commitment); the round's report says whom the reference
unpaid or added (:class:`~marketplace.round.score.ReferenceEffect`). A round waits for a committed reference until
the reveal deadline, as the market does.

Restartable: everything is derived from the chain and IPFS, and the computation is
deterministic, so after a crash the same round is recomputed to the same CIDs and proof; a
round that was already finalized is recognized from the chain and not posted twice. The rows of earlier rounds that
a round's rows are checked against for stale copies (``challengeStale``) are kept in memory as rounds are finalized;
a node started mid-project rebuilds them once from the chain and IPFS (:meth:`AggregatorNode.stale_history`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marketplace.adapters.chain.errors import ChainError, ContractRevert
from marketplace.adapters.chain.market import Finalization, MarketClient, Project, ProjectStatus
from marketplace.adapters.chain.update_keys import UpdateKeysClient, recorded_update_keys
from marketplace.adapters.ezkl.errors import ProvingFailed
from marketplace.adapters.ipfs.errors import CidMismatch, IpfsError, StorageError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.data import LocalData
from marketplace.fl.models import available_models, param_spec, tensors_to_vector, vector_to_state
from marketplace.fl.train import evaluate
from marketplace.protocol.commitment import InvalidPublishedRow, commitment_bytes
from marketplace.protocol.constants import MAX_UPDATE_BYTES
from marketplace.protocol.envelope import UpdateKey, UpdateOrigin, is_envelope, update_key
from marketplace.protocol.ordering import verifier_inputs
from marketplace.protocol.proof_document import ProofDocument
from marketplace.round.collect import (
    PublishedRowMismatch,
    RoundInputs,
    UpdateOpener,
    apply_published_rows,
    collect_round,
    mark_stale,
)
from marketplace.round.commit_inbox import CommitInbox
from marketplace.round.openings import find_openings, opening_store
from marketplace.round.prove import ProverSelectionError, RoundProver, RowProver, prover_for, round_tag
from marketplace.round.reference import ReferenceMismatch, revealed_reference
from marketplace.round.score import ReferenceEffect, new_model, score_round
from marketplace.round.stale import EarlierRow, earlier_rows, find_stale, project_history, shown_stale, stale_evidence

log = logging.getLogger(__name__)


@dataclass
class RoundReport:
    """What happened in one finalized round."""

    project_id: int
    round: int
    trainers: list[str]
    submitted: list[bool]
    flags: list[bool]
    scores: list[float]  # shares in [0, 1]
    chain_scores: list[int]
    rejected: dict[str, str]  # trainer -> why its update was rejected
    model_cid: str
    proof_cid: str
    accuracy: float | None = None
    loss: float | None = None
    tx_hash: str = ""
    gas_used: int = 0
    prover: str = ""
    already_finalized: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: trainer -> why its update was rejected, for rejected trainers that published their row (scored on it)
    published: dict[str, str] = field(default_factory=dict)
    #: what the owner's revealed reference row changed (None: the owner revealed none, the rule without it)
    reference: ReferenceEffect | None = None
    #: per trainer, unpaid and its update in the new model all the same (it agrees with the paid ones; clipped)
    admitted: list[bool] = field(default_factory=list)
    #: per trainer, its update kept out of the new model by the owner's reference (pay unchanged: it points against
    #: the reference, ``ScoredRound.screened``)
    screened: list[bool] = field(default_factory=list)
    #: wei of rejection bonds credited back to the aggregator for the round: the undisputed rejections' bonds and
    #: what the disputed ones' left after reimbursing the disputes' gas (its
    #: ``withdraw`` pays them out with the project's fee)
    bonds_returned: int = 0


@dataclass(frozen=True)
class RejectionsAnnounced:
    """What :meth:`AggregatorNode.step` did instead of finalizing a round with rejected submissions: it
    announced them (``rejectSubmissions``); the round is finalized after ``dispute_deadline`` (or once every
    rejected trainer has published its row)."""

    project_id: int
    round: int
    rejected: dict[str, str]  # trainer -> why its update is rejected
    dispute_deadline: int  # unix seconds
    tx_hash: str = ""


@dataclass(frozen=True)
class CommitsBatched:
    """What :meth:`AggregatorNode.commit_signed` did: one ``commitBatch`` of the signed commits its inbox held."""

    project_id: int
    round: int
    committed: list[str]  # the trainers the batch committed, in batch order (their arrival order)
    dropped: list[str]  # trainers whose held commit would not land (checked with an eth_call): they commit themselves
    tx_hash: str = ""
    gas_used: int = 0


@dataclass(frozen=True)
class RevealsBatched:
    """What :meth:`AggregatorNode.reveal_openings` did: one ``revealBatch`` of the openings it found."""

    project_id: int
    round: int
    revealed: list[str]  # the trainers the batch revealed, in batch order
    missing: dict[str, str]  # trainer -> why it was left out (it reveals itself)
    tx_hash: str = ""
    gas_used: int = 0


class UpdateKeyMismatch(RuntimeError):
    """The key a project's updates are encrypted to is not the one this wallet derives for it: this node cannot
    read the project's updates (a key published by hand, or derived by another version of this code)."""


def project_update_key(market: MarketClient, project_id: int) -> UpdateKey:
    """The update key pair ``market``'s account derives for ``project_id`` (the one it publishes as its
    aggregator): see :func:`~marketplace.protocol.envelope.update_key`."""
    return update_key(market.chain.account, market.chain.chain_id, market.market.address, project_id)


def publish_update_key(market: MarketClient, keys: UpdateKeysClient, project_id: int) -> bytes:
    """Publishes the update key of ``project_id`` (derived from ``market``'s account, which must be the
    project's aggregator) in ``keys``; from then on the project's trainers encrypt their updates to it. Returns
    the public key. Reverts (``NotTheAggregator``, ``KeyAlreadyPublished``, ``ProjectNotActive``) as the
    contract says."""
    public = project_update_key(market, project_id).public
    keys.publish_key(project_id, public)
    return public


class AggregatorNode:
    """Serves projects whose aggregator is this client's account. ``update_keys`` is the market's
    ``UpdateKeys`` (default: the one recorded beside the market in the deployment records, see
    :func:`recorded_update_keys`; without one, no project can be encrypted). ``commit_inbox`` holds the signed
    commits its trainers handed over (None: they commit themselves)."""

    def __init__(
        self,
        market: MarketClient,
        store: ModelStore,
        *,
        prover: RoundProver | None = None,
        srs: Path | None = None,
        evaluation: LocalData | None = None,
        now: Callable[[], int] | None = None,
        update_keys: UpdateKeysClient | None = None,
        commit_inbox: CommitInbox | None = None,
    ) -> None:
        self.market = market
        self.store = store
        self.commit_inbox = commit_inbox
        self.update_keys = update_keys if update_keys is not None else recorded_update_keys(market)
        self._derived_keys: dict[int, UpdateKey] = {}  # project id -> its update key (checked)
        self._prover = prover
        self._provers: dict[int, RoundProver] = {}
        self._srs = srs
        self.evaluation = evaluation
        self._now = now or market.chain.timestamp
        #: the inputs of a round whose rejections were announced (its dispute window is open): the second
        #: pass adds the published rows instead of fetching every update again
        self._collected: dict[tuple[int, int], RoundInputs] = {}
        self._opening_store = opening_store(store)
        self._batched: set[tuple[int, int]] = set()  # (project, round) whose reveal batch is done
        #: project -> the rows revealed in its finalized rounds (and the owner's references): what a later round's
        #: rows are checked against for stale copies (:meth:`stale_history`)
        self._history: dict[int, list[EarlierRow]] = {}
        self._challenge_period: int | None = None

    @property
    def address(self) -> str:
        return self.market.address

    def prover(self, project_id: int) -> RoundProver:
        """The prover of ``project_id`` (the one given, else what its verifier needs: see ``prover_for``)."""
        if self._prover is not None:
            return self._prover
        if project_id not in self._provers:
            self._provers[project_id] = prover_for(self.market, project_id, srs=self._srs)
        return self._provers[project_id]

    def update_opener(self, project_id: int) -> UpdateOpener | None:
        """How this node opens the updates of ``project_id``: None for a project whose updates are public;
        for an encrypted one, its derived key opens every envelope sealed for the submission that revealed it (a
        clear update, pinned before the key was published, is read as it is). :class:`UpdateKeyMismatch` if the
        published key is not this wallet's."""
        published = self.update_keys.key_of(project_id) if self.update_keys is not None else None
        if published is None:
            return None
        if project_id not in self._derived_keys:
            derived = project_update_key(self.market, project_id)
            if derived.public != published:
                raise UpdateKeyMismatch(
                    f"project {project_id}'s updates are encrypted to 0x{published.hex()}, but {self.address} "
                    f"derives 0x{derived.public.hex()}: this wallet cannot read them"
                )
            self._derived_keys[project_id] = derived
        key = self._derived_keys[project_id]

        def open_update(data: bytes, origin: UpdateOrigin) -> bytes:
            return key.open(data, origin) if is_envelope(data) else data

        return open_update

    def served_projects(self) -> list[int]:
        """Ids of the training projects this account aggregates."""
        out = []
        for pid in range(1, self.market.project_count() + 1):
            p = self.market.get_project(pid)
            if p.aggregator == self.address and p.status in (ProjectStatus.OPEN, ProjectStatus.TRAINING):
                out.append(pid)
        return out

    def is_due(self, project: Project) -> bool:
        """True when the open round may (and must) be finalized now."""
        if project.status is not ProjectStatus.TRAINING:
            return False
        deadlines = self.market.round_deadlines(project.project_id)
        now = self._now()
        reveals_done = now >= deadlines.reveal_opens and project.submissions == project.commits
        if reveals_done:  # the market waits for the owner's committed reference too (until the reveal deadline)
            reference = self.market.reference_of(project.project_id, project.current_round)
            reveals_done = reference.revealed or not reference.committed
        return (reveals_done or now > deadlines.reveal) and now <= deadlines.aggregation

    def commit_signed(self, project_id: int) -> CommitsBatched | None:
        """Commits, in one ``commitBatch``, the signed commits the inbox holds for the open round, in the order they
        were handed in, during the first half of the commit period: as soon as it holds one of every trainer that
        has not committed, else from a quarter of the period on with those it holds (each later poll batches what
        arrived since; from half the period on the trainers commit themselves, so no batch is sent). Each is checked
        first with an ``eth_call`` (one that would not land is dropped: its trainer commits itself). None if
        nothing was sent (no inbox, not the time, nothing held, or everything committed meanwhile:
        ``NothingCommitted``). The errors raised are this node's own (the chain unreachable)."""
        project = self.market.get_project(project_id)
        if self.commit_inbox is None:
            return None
        if project.status is not ProjectStatus.TRAINING:
            self.commit_inbox.drop(project_id, project.rounds, [])  # every round's: none is open any more
            return None
        round_, now = project.current_round, self._now()
        self.commit_inbox.drop(project_id, round_, [])  # the closed rounds' leftovers
        held = self.commit_inbox.held(project_id, round_)
        half = project.round_start + project.submission_period // 2
        if not held:
            return None
        if now >= half or project.commits == project.trainer_count:  # too late, or useless: forgotten
            self.commit_inbox.drop(project_id, round_, [c.trainer for c in held])
            return None
        waiting = project.trainer_count - project.commits  # members that have not committed
        if len(held) < waiting and now < project.round_start + project.submission_period // 4:
            return None  # the others may still hand theirs in
        landing = [c for c in held if self.market.commit_would_land(project_id, round_, c)]
        dropped = [c.trainer for c in held if c not in landing]
        self.commit_inbox.drop(project_id, round_, [c.trainer for c in held])
        if not landing:
            return None
        try:
            receipt = self.market.commit_batch(project_id, round_, landing)
        except ContractRevert as exc:
            if exc.name == "NothingCommitted":  # every trainer committed itself meanwhile
                return None
            raise
        committed = self.market.batch_committed(receipt)
        tx = receipt["transactionHash"].to_0x_hex()
        return CommitsBatched(project_id, round_, committed, dropped, tx, int(receipt["gasUsed"]))

    def reveal_openings(self, project_id: int) -> RevealsBatched | None:
        """Reveals, in one ``revealBatch``, the openings the open round's unrevealed trainers published, once per
        round, early in the reveal phase: as soon as every one of them is found, else a quarter into the reveal
        period with those found (the others reveal themselves from half the period on, so a batch after that
        is not sent). None if nothing was sent (not the time, nothing found, or every opening revealed by its
        trainer first: ``NothingRevealed``). A missing or bad opening is left out, never an error; the errors
        raised are this node's own (chain or IPFS node unreachable)."""
        project = self.market.get_project(project_id)
        if project.status is not ProjectStatus.TRAINING or (project_id, project.current_round) in self._batched:
            return None
        round_, deadlines, now = project.current_round, self.market.round_deadlines(project_id), self._now()
        if now < deadlines.reveal_opens or now >= deadlines.reveal_opens + project.reveal_period // 2:
            return None
        found = find_openings(self.market, self._opening_store, project_id, round_)
        if not found.openings or (found.missing and now < deadlines.reveal_opens + project.reveal_period // 4):
            return None  # the stragglers may still publish theirs
        self._batched.add((project_id, round_))
        try:
            receipt = self.market.reveal_batch(project_id, round_, found.openings)
        except ContractRevert as exc:
            if exc.name == "NothingRevealed":  # every trainer revealed itself meanwhile
                return None
            self._batched.discard((project_id, round_))
            raise
        revealed = self.market.batch_revealed(receipt)
        tx = receipt["transactionHash"].to_0x_hex()
        return RevealsBatched(project_id, round_, revealed, found.missing, tx, int(receipt["gasUsed"]))

    def step(self, project_id: int) -> RoundReport | RejectionsAnnounced | None:
        """Finalizes the open round if it is due, or announces its rejections (the round is then finalized by
        a later step, after the dispute window); None if nothing was due."""
        project = self.market.get_project(project_id)
        if project.aggregator != self.address:
            raise PermissionError(f"{self.address} is not the aggregator of project {project_id}")
        if not self.is_due(project):
            return None
        rejections = self.market.rejections(project_id)
        if rejections.rejected and self._now() <= rejections.dispute_deadline:
            return None  # the rejected trainers may still publish their rows
        if self._challenge_window_open(project_id):
            return None  # anyone may still show a revealed row stale (finalizeRound reverts ChallengeWindowOpen)
        return self.finalize(project)

    def _challenge_window_open(self, project_id: int) -> bool:
        """Whether the open round's stale-challenge window is still open (the market's period after its latest
        reveal; a market deployed without one never waits)."""
        if self._challenge_period is None:
            self._challenge_period = self.market.challenge_period()
        return self._challenge_period > 0 and self._now() < self.market.challenge_window_end(project_id)

    def stale_history(self, project: Project, sketch_width: int) -> list[EarlierRow]:
        """The rows revealed in the earlier rounds of ``project`` that its open round's rows are checked against:
        those this node kept from the rounds it finalized (:func:`earlier_rows`) or, when it kept none and the open
        round is not the first (a fresh process: restarted, redeployed), the project's history rebuilt once from the
        chain and IPFS (:func:`project_history`, rows of ``sketch_width`` + 2 values), the old rounds' updates
        fetched and opened as :meth:`_inputs` does. An old update that cannot be fetched or opened now only leaves
        its row out (logged); this node's own IPFS node down raises as for the open round, and the rebuild is tried
        again on the next step."""
        pid, round_ = project.project_id, project.current_round
        history = self._history.get(pid)
        if history is not None or round_ == 0:
            return history or []
        t0 = time.perf_counter()
        opener = self.update_opener(pid)

        def collect(earlier: int) -> RoundInputs:
            return collect_round(self.market, self.store, pid, earlier, project.model_name, opener)

        history = self._history[pid] = project_history(self.market, collect, pid, round_, sketch_width)
        log.info(
            "project %d: stale history of rounds 0-%d rebuilt: %d rows in %.1f s",
            pid, round_ - 1, len(history), time.perf_counter() - t0,
        )  # fmt: skip
        return history

    def challenge_stale(self, project: Project, inputs: RoundInputs, prover: RowProver) -> RoundInputs:
        """Shows on chain every valid row of the open round that nearly copies a row revealed in an earlier round
        of the project (:meth:`stale_history`, :func:`find_stale`), and returns ``inputs`` with those, and the ones
        anyone else showed stale (``StaleChallenged`` events), rejected (:func:`mark_stale`). A challenge the market
        refuses is left out (the row is then scored as usual), never a reason to stall the round; the challenges are
        read again after a refusal (another challenger's, mined first, refuses this node's with
        ``AlreadyShownStale``: the round must still reject that row)."""
        pid, round_ = project.project_id, project.current_round
        stale = shown_stale(self.market, pid, round_)
        candidates = inputs.valid & np.array([t not in stale for t in inputs.trainers], dtype=bool)
        refused = False
        history = self.stale_history(project, inputs.sketch_width)
        for match in find_stale(inputs.trainers, inputs.rows, candidates, history):
            try:
                self.market.challenge_stale(pid, round_, stale_evidence(self.market, pid, match, prover))
            except ContractRevert as exc:
                log.warning("stale challenge of %s in round %d refused: %s", match.trainer, round_, exc)
                refused = True
                continue
            earlier = match.earlier
            stale[match.trainer] = f"stale: a near copy of a row revealed in round {earlier.round} (shown by this node)"
        if refused:
            stale = shown_stale(self.market, pid, round_) | stale
        return mark_stale(inputs, stale) if stale else inputs

    def _remember(self, inputs: RoundInputs, reference: np.ndarray | None) -> None:
        """Keeps the finalized round's valid rows (and the owner's reference) for later rounds' stale checks."""
        history = self._history.setdefault(inputs.project_id, [])
        if any(e.round == inputs.round for e in history):
            return
        history.extend(earlier_rows(inputs, reference))

    def finalize(self, project: Project) -> RoundReport | RejectionsAnnounced:
        """Fetch -> check -> flag -> score -> aggregate -> pin -> prove -> finalize, for the open round.
        If some updates must be rejected and no rejection was announced yet, announces them instead: the
        round is finalized once their dispute window closed."""
        timings: dict[str, float] = {}
        pid, round_ = project.project_id, project.current_round
        prover = self.prover(pid)  # first: a verifier this code cannot prove for stops the round before any work
        t0 = time.perf_counter()
        spec = param_spec(project.model_name)
        global_vec = tensors_to_vector(
            self.store.get_tensors(project.latest_model_cid, expected=spec, max_bytes=MAX_UPDATE_BYTES), spec
        )
        inputs = self.challenge_stale(project, self._inputs(project), prover)
        self._pin_updates(inputs)
        timings["fetch"] = time.perf_counter() - t0
        announce = [t for t in inputs.rejected if t not in inputs.stale]  # stale ones are rejected already
        if announce and not self.market.rejections(pid).announced:
            receipt = self.market.reject_submissions(pid, round_, announce)
            self._collected[(pid, round_)] = inputs
            deadline = self.market.rejections(pid).dispute_deadline
            tx = receipt["transactionHash"].to_0x_hex()
            return RejectionsAnnounced(pid, round_, dict(inputs.rejected), deadline, tx)
        self._collected.pop((pid, round_), None)

        t1 = time.perf_counter()
        reference = revealed_reference(self.market, pid, round_, inputs.sketch_width)  # None: the owner revealed none
        scored = score_round(inputs, reference=reference)
        flags, chain_scores = scored.flags, scored.chain_scores
        new_vec = new_model(global_vec, scored)
        timings["score"] = time.perf_counter() - t1

        loss = accuracy = None
        if self.evaluation is not None:
            loss, accuracy = evaluate(
                project.model_name, vector_to_state(new_vec, spec), self.evaluation.x, self.evaluation.y
            )

        t2 = time.perf_counter()
        model_cid = self.store.put_tensors(
            vector_to_state(new_vec, spec), {"kind": "model", "project": str(pid), "round": str(round_ + 1)}
        )
        timings["pin"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        order = inputs.arrival_order  # the verifier sees every per-trainer value in this order
        commitments, scores, proven_flags = verifier_inputs(
            inputs.commitments, chain_scores, flags, scored.rejected, order
        )
        tag = round_tag(self.market, pid, round_)  # the proof is valid for this round of this project only
        proof = prover.prove(commitments, scored.rows[order], scores, proven_flags, tag=tag, reference=reference)
        timings["prove"] = time.perf_counter() - t3
        document = ProofDocument(
            project=pid,
            round=round_,
            prover=prover.name,
            commitments=["0x" + c.hex() for c in inputs.commitments],
            scores=chain_scores,
            flags=flags,
            rejected=dict(inputs.rejected),
            published=dict(inputs.published),
            reference=None if reference is None else "0x" + commitment_bytes(reference).hex(),
            admitted=[t for t, taken in zip(inputs.trainers, scored.admitted, strict=True) if taken],
            screened=[t for t, out in zip(inputs.trainers, scored.screened, strict=True) if out],
            proof="0x" + proof.hex(),
            model_cid=model_cid,
            accuracy=accuracy,  # of the new model on the aggregator's held-out data (not proven)
            loss=loss if loss is not None and math.isfinite(loss) else None,  # a diverged model: no loss
        )
        proof_cid = self.store.put_bytes(document.to_bytes())

        report = RoundReport(
            pid, round_, inputs.trainers, inputs.submitted, flags, scored.scores, chain_scores, inputs.rejected,
            model_cid, proof_cid, accuracy=accuracy, loss=loss, timings=timings, prover=prover.name,
            published=dict(inputs.published), reference=scored.reference, admitted=list(scored.admitted),
            screened=list(scored.screened),
        )  # fmt: skip
        t4 = time.perf_counter()
        try:
            result = Finalization(model_cid, proof_cid, chain_scores, flags, proof, rejected=scored.rejected)
            receipt = self.market.finalize_round(pid, round_, result)
            report.tx_hash = receipt["transactionHash"].to_0x_hex()
            report.gas_used = int(receipt["gasUsed"])
        except ContractRevert as exc:
            # A previous run (before a crash) may already have finalized this round.
            if exc.name in ("WrongRound", "WrongStatus") and self._finalized(pid, round_):
                report.already_finalized = True
            else:
                raise
        self._remember(inputs, reference)
        report.bonds_returned = self.market.reclaim_bonds(pid, round_)  # finalized: the window is over
        timings["finalize"] = time.perf_counter() - t4
        return report

    def _pin_updates(self, inputs: RoundInputs) -> None:
        """Pins every update of the round it could use on its own node: the round's data stays available to it
        after a restart (an update served for the first pass cannot vanish before the second) and to
        ``marketplace audit`` after the trainers go offline."""
        for trainer, ok in zip(inputs.trainers, inputs.has_update, strict=True):
            if ok:
                self.store.client.pin_add(inputs.submissions[trainer].cid)

    def _inputs(self, project: Project) -> RoundInputs:
        """The open round's inputs: fetched and checked (:func:`collect_round`), or those of the first pass
        (when the rejections were announced) with the rows published since."""
        pid, round_ = project.project_id, project.current_round
        first = self._collected.get((pid, round_))
        if first is None:
            opener = self.update_opener(pid)
            return collect_round(self.market, self.store, pid, round_, project.model_name, opener)
        return apply_published_rows(first, self.market.disputed_rows(pid, round_))

    def _finalized(self, project_id: int, round_: int) -> bool:
        return any(r.round == round_ for r in self.market.finalized_rounds(project_id))

    def _try_batch(
        self,
        project_id: int,
        on_batch: Callable[[CommitsBatched | RevealsBatched], None] | None,
        on_error: Callable[[Exception], None] | None,
    ) -> None:
        """:meth:`commit_signed` and :meth:`reveal_openings`, their errors reported and otherwise ignored."""
        try:
            commits = self.commit_signed(project_id)
        except ChainError as exc:
            exc.add_note(f"project {project_id}: commit batch")
            if on_error is not None:
                on_error(exc)
        else:
            if commits is not None and on_batch is not None:
                on_batch(commits)
        try:
            batch = self.reveal_openings(project_id)
        except (ChainError, StorageError) as exc:
            exc.add_note(f"project {project_id}: reveal batch")
            if on_error is not None:
                on_error(exc)
            return
        if batch is not None and on_batch is not None:
            on_batch(batch)

    def run(
        self,
        project_ids: list[int] | None = None,
        poll_seconds: float = 2.0,
        on_report: Callable[[RoundReport | RejectionsAnnounced], None] | None = None,
        until_done: bool = True,
        on_error: Callable[[Exception], None] | None = None,
        on_batch: Callable[[CommitsBatched | RevealsBatched], None] | None = None,
    ) -> None:
        """Serves ``project_ids`` (default: every project it aggregates) until all have ended, or are
        skipped.

        One project's trouble never stops the others: what stops a project's step is reported to
        ``on_error`` and the loop goes on serving the rest. Then:

        - transient, the project is retried on the next poll (before its round's deadline) and reported
          again if it fails again: a chain error (a revert of its ``finalizeRound``, an RPC outage: any
          :class:`ChainError`), the IPFS node not answering, not having an object or sending bytes that
          are not the CID's (:class:`IpfsError`, :class:`CidMismatch`), the prover failing (ezkl errors and
          panics: :class:`ProvingFailed`), or a row published on chain that no proof can contain (the project's
          verifier accepted a row proof that proves nothing: :class:`InvalidPublishedRow`,
          :class:`PublishedRowMismatch`, :class:`ReferenceMismatch` for the owner's reference row);
        Each error reported carries a note naming its project (``exc.__notes__``).

        - final for that project, reported once and the project skipped from then on (it no longer keeps
          the loop going): its model name is no architecture of this code (a :class:`ValueError` naming
          the project), or its global model is not a model of that architecture (its CID is not a CID, the
          object is too large, not safetensors, other tensors: any other :class:`StorageError`; the
          model only changes when the round is finalized, which needs the model), or this code cannot prove
          its rounds (:class:`ProverSelectionError`: an unknown proof system, another rule version, or cached
          keys that are not the verifier's; the error says which ``zk setup`` to run), or its updates are
          encrypted to a key this wallet does not derive (:class:`UpdateKeyMismatch`). Its trainers and owner
          get their funds back by ``abandon`` after the aggregation deadline.

        A bad submission is not the project's trouble: :func:`collect_round` rejects it, with its reason,
        and the round is finalized without it.

        Before each step it commits the trainers' signed commits (:meth:`commit_signed`) and reveals their
        published openings (:meth:`reveal_openings`) in one batch each when that is due, heard by ``on_batch``;
        what stops a batch is reported to ``on_error`` and changes nothing else (the trainers commit or reveal
        themselves)."""
        skipped: set[int] = set()
        usable: set[int] = set()  # projects whose model name is an architecture (a project's name never changes)
        while True:
            pids = project_ids if project_ids is not None else self.served_projects()
            active = False
            for pid in pids:
                if pid in skipped:
                    continue
                try:
                    if pid not in usable:
                        model_name = self.market.get_project(pid).model_name
                        if model_name not in available_models():
                            skipped.add(pid)
                            if on_error is not None:
                                on_error(ValueError(f"project {pid} skipped: no architecture is called {model_name!r}"))
                            continue
                        usable.add(pid)
                    self._try_batch(pid, on_batch, on_error)
                    report = self.step(pid)
                    if report is not None and on_report is not None:
                        on_report(report)
                    active |= self.market.get_project(pid).status in (ProjectStatus.OPEN, ProjectStatus.TRAINING)
                except (
                    IpfsError,
                    CidMismatch,
                    ChainError,
                    ProvingFailed,
                    InvalidPublishedRow,
                    PublishedRowMismatch,
                    ReferenceMismatch,
                ) as exc:
                    exc.add_note(f"project {pid}")
                    if on_error is not None:
                        on_error(exc)
                    active = True  # retried on the next poll, before the round's deadline
                except (StorageError, ProverSelectionError, UpdateKeyMismatch) as exc:  # no model, keys or update key
                    exc.add_note(f"project {pid}")
                    skipped.add(pid)
                    if on_error is not None:
                        on_error(exc)
            if until_done and not active:
                return
            time.sleep(poll_seconds)
