"""The project owner's reference node (docs/design/robust-reference.md): in every round of its project it commits
a reference row, its own update on its validation data from the round's global model, made like a trainer's
(:class:`~marketplace.roles.trainer.UpdateSource`, e.g. :class:`~marketplace.roles.trainer.LocalTraining` on the
owner's validation data; the committed row of :func:`~marketplace.protocol.commitment.commit_update`), as soon as the
round opens (the commit phase closes early once every trainer committed), and reveals it once the reveal phase opens
(the round's finalization waits for it until the reveal deadline).

WARNING: the reference moves pay among the trainers only within the bounds of the design's section 3 (it flags and
slashes nobody, and never unpays a round the rule without it pays); a reference that does not side with most
trainers is ignored by the rule.

Restartable: the row is kept in memory between commit and reveal; after a restart it is made again (the update
source must then be deterministic, as :class:`~marketplace.roles.trainer.LocalTraining` is per round) and revealed
only if it opens the committed seal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import MarketClient, Project, ProjectStatus
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import param_spec
from marketplace.protocol.commitment import commit_update
from marketplace.protocol.constants import MAX_UPDATE_BYTES
from marketplace.roles.trainer import UpdateContext, UpdateSource
from marketplace.round.prove import RowProver, row_prover_for
from marketplace.round.reference import SealedReference, commit_reference, reveal_reference, seal_reference


class ReferenceOutcome(StrEnum):
    NOT_TRAINING = "not training"
    FINISHED = "project ended"
    WAITING_FOR_REVEAL = "reference committed; waiting for the reveal phase"
    REVEALED = "reference revealed; waiting for the round to be finalized"
    COMMIT_CLOSED = "commit phase closed before the reference was committed: the round runs without it"
    REVEAL_CLOSED = "reveal phase closed before the reference was revealed: the round runs without it"
    NOTHING_TO_COMMIT = "the update source made no update"
    CANNOT_REOPEN = "the reference made again does not open the committed seal (not deterministic): not revealed"


@dataclass(frozen=True)
class ReferenceCommitted:
    project_id: int
    round: int
    commitment: bytes


@dataclass(frozen=True)
class ReferenceRevealed:
    project_id: int
    round: int
    commitment: bytes
    tx_hash: str
    gas_used: int


class NotTheOwner(PermissionError):
    """This node's account is not the project's owner."""


class OwnerReferenceNode:
    """Commits and reveals the owner's reference row of every round of the projects its account owns. ``source``
    makes the owner's update (on its validation data); ``row_prover`` proves the row for ``revealReference`` (default:
    the one the project's verifier needs, :func:`~marketplace.round.prove.row_prover_for`, with ``srs``)."""

    def __init__(
        self,
        market: MarketClient,
        store: ModelStore,
        source: UpdateSource,
        *,
        row_prover: RowProver | None = None,
        srs: Path | None = None,
    ) -> None:
        self.market, self.store, self.source = market, store, source
        self._row_prover, self._srs = row_prover, srs
        self._sealed: dict[tuple[int, int], SealedReference] = {}

    def step(self, project_id: int) -> ReferenceCommitted | ReferenceRevealed | ReferenceOutcome:
        """Commits the open round's reference while its commit phase is open, reveals it in its reveal phase;
        otherwise says what it waits for. A race this node cannot avoid is an outcome, not an error: its commit
        landing after the commit phase closed (``SubmissionClosed``: the last trainer committed while the owner
        trained; the early close waits for nobody) is :attr:`ReferenceOutcome.COMMIT_CLOSED`, its reveal landing
        after the reveal deadline (``RevealClosed``: a slow row proof) :attr:`ReferenceOutcome.REVEAL_CLOSED`.
        Other reverts of the market propagate (:class:`ContractRevert`)."""
        project = self.market.get_project(project_id)
        if project.owner != self.market.address:
            raise NotTheOwner(f"{self.market.address} is not the owner of project {project_id}")
        if project.status is ProjectStatus.OPEN:
            return ReferenceOutcome.NOT_TRAINING
        if project.status is not ProjectStatus.TRAINING:
            return ReferenceOutcome.FINISHED
        round_ = project.current_round
        record = self.market.reference_of(project_id, round_)
        deadlines = self.market.round_deadlines(project_id)
        now = self.market.chain.timestamp()
        if not record.committed:
            if now >= deadlines.reveal_opens:
                return ReferenceOutcome.COMMIT_CLOSED
            row = self._row(project)
            if row is None:
                return ReferenceOutcome.NOTHING_TO_COMMIT
            try:
                sealed = commit_reference(self.market, project_id, round_, row)
            except ContractRevert as exc:
                if exc.name == "SubmissionClosed":
                    return ReferenceOutcome.COMMIT_CLOSED
                raise
            self._sealed[(project_id, round_)] = sealed
            return ReferenceCommitted(project_id, round_, sealed.commitment)
        if record.revealed:
            return ReferenceOutcome.REVEALED
        if now < deadlines.reveal_opens:
            return ReferenceOutcome.WAITING_FOR_REVEAL
        if now > deadlines.reveal:
            return ReferenceOutcome.REVEAL_CLOSED
        sealed = self._sealed.get((project_id, round_))
        if sealed is None:  # restarted: make it again
            row = self._row(project)
            if row is None:
                return ReferenceOutcome.NOTHING_TO_COMMIT
            sealed = seal_reference(self.market.chain.account, self.market.round_address(project_id, round_), row)
        if sealed.seal != record.seal:
            return ReferenceOutcome.CANNOT_REOPEN
        try:
            receipt = reveal_reference(self.market, project_id, round_, sealed, self._prover(project_id))
        except ContractRevert as exc:
            if exc.name == "RevealClosed":
                return ReferenceOutcome.REVEAL_CLOSED
            raise
        tx = receipt["transactionHash"].to_0x_hex()
        return ReferenceRevealed(project_id, round_, sealed.commitment, tx, int(receipt["gasUsed"]))

    def _row(self, project: Project) -> np.ndarray | None:
        """The committed row of the owner's update for the open round (None if the source made none)."""
        spec = param_spec(project.model_name)
        global_state = self.store.get_tensors(project.latest_model_cid, expected=spec, max_bytes=MAX_UPDATE_BYTES)
        ctx = UpdateContext(
            project.project_id, project.current_round, project.model_name, global_state, self.market, self.store
        )
        update = self.source.make_update(ctx)
        if update is None:
            return None
        seed, k = self.market.sketch_seed(project.project_id), self.market.sketch_width(project.project_id)
        return commit_update(update, seed, k)[0]

    def _prover(self, project_id: int) -> RowProver:
        if self._row_prover is None:
            self._row_prover = row_prover_for(self.market, project_id, srs=self._srs)
        return self._row_prover

    def run(
        self,
        project_id: int,
        poll_seconds: float = 2.0,
        on_event: Callable[[ReferenceCommitted | ReferenceRevealed | ReferenceOutcome], None] | None = None,
    ) -> None:
        """Steps until the project ends, reporting each commit, reveal and change of outcome to ``on_event``."""
        last: object = None
        while True:
            outcome = self.step(project_id)
            if on_event is not None and outcome != last:
                on_event(outcome)
            last = outcome
            if outcome is ReferenceOutcome.FINISHED:
                return
            time.sleep(poll_seconds)
