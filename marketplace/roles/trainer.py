"""A trainer taking part in projects: each round it fetches the global model from IPFS, trains on
its own private data, pins its update, and submits the update's CID and its commitment (the Poseidon hash of the
committed row of its sketch, see :mod:`marketplace.protocol.constants`).

:meth:`TrainerNode.step` does whatever is due now and returns at once; :meth:`TrainerNode.run`
loops over it until the project ends. Everything it needs to know comes from the chain, so a
restarted trainer carries on where it stopped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch

from marketplace.adapters.chain.market import MarketClient, ProjectStatus
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.demo.attacks import Attack, AttackConfig, attack_data, attack_update
from marketplace.fl.data import LocalData
from marketplace.fl.models import param_spec, tensors_to_vector, vector_to_state
from marketplace.fl.train import train_local
from marketplace.protocol.commitment import commit_update
from marketplace.protocol.constants import MAX_UPDATE_BYTES

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainingSettings:
    """How this trainer trains locally."""

    epochs: int = 2
    lr: float = 0.1
    batch_size: int = 32
    seed: int = 0
    attack: Attack = Attack.NONE  # simulation only: how this trainer misbehaves
    attack_config: AttackConfig = field(default_factory=AttackConfig)
    colluders: tuple[str, ...] = ()  # simulation only: the other members of a Sybil group


class StepOutcome(StrEnum):
    SUBMITTED = "submitted"
    ALREADY_SUBMITTED = "already submitted"
    NOT_TRAINING = "not training yet"
    ROUND_CLOSED = "submission closed"
    FINISHED = "project ended"
    NOTHING_TO_COPY = "nothing to copy yet"


@dataclass(frozen=True)
class Submitted:
    """What :meth:`TrainerNode.step` submitted."""

    project_id: int
    round: int
    cid: str
    commitment: bytes
    update_norm: float
    gas_used: int = 0  # of the submitUpdate transaction
    #: seconds per phase: fetch (global model), train, commit (sketch + Poseidon), pin, submit (mined)
    timings: dict[str, float] = field(default_factory=dict)


class TrainerNode:
    """One trainer (one wallet, one private data set)."""

    def __init__(
        self,
        market: MarketClient,
        store: ModelStore,
        data: LocalData,
        settings: TrainingSettings | None = None,
        *,
        now: Callable[[], int] | None = None,
    ) -> None:
        self.market = market
        self.store = store
        self.settings = settings or TrainingSettings()
        self.data = attack_data(self.settings.attack, data, seed=self.settings.seed)
        self._now = now or market.chain.timestamp

    @property
    def address(self) -> str:
        return self.market.address

    def join(self, project_id: int) -> None:
        """Joins with the project's stake (reverts with a clear error if not allowed)."""
        self.market.join(project_id)

    def step(self, project_id: int, progress: Progress | None = None) -> StepOutcome | Submitted:
        """Trains and submits for the open round if this trainer has not yet; else says why not."""
        project = self.market.get_project(project_id)
        if project.status in (ProjectStatus.FINISHED, ProjectStatus.CANCELLED):
            return StepOutcome.FINISHED
        if project.status is not ProjectStatus.TRAINING:
            return StepOutcome.NOT_TRAINING
        round_ = project.current_round
        if self.market.commitment(project_id, round_, self.address) != b"\0" * 32:
            return StepOutcome.ALREADY_SUBMITTED
        deadline, _ = self.market.round_deadlines(project_id)
        if self._now() > deadline:
            return StepOutcome.ROUND_CLOSED

        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[phase], clock = now - clock, now

        spec = param_spec(project.model_name)
        global_state = self.store.get_tensors(project.latest_model_cid, expected=spec, max_bytes=MAX_UPDATE_BYTES)
        lap("fetch")
        update = self._make_update(project_id, round_, project.model_name, global_state, progress)
        lap("train")
        if update is None:
            return StepOutcome.NOTHING_TO_COPY
        seed = self.market.sketch_seed(project_id)
        _, commitment = commit_update(update, seed, self.market.sketch_width(project_id))
        lap("commit")
        cid = self.store.put_tensors(
            vector_to_state(update, spec),
            {"kind": "update", "project": str(project_id), "round": str(round_), "trainer": self.address},
        )
        lap("pin")
        receipt = self.market.submit_update(project_id, round_, cid, commitment)
        lap("submit")
        norm = float(np.linalg.norm(update))
        return Submitted(project_id, round_, cid, commitment, norm, int(receipt["gasUsed"]), timings)

    def _make_update(
        self, project_id: int, round_: int, model_name: str, global_state: Mapping, progress: Progress | None
    ) -> np.ndarray | None:
        s = self.settings
        if s.attack is Attack.FREE_RIDER_ZERO:
            return np.zeros(sum(int(np.prod(shape)) for shape, _ in param_spec(model_name).values()), np.float32)
        if s.attack is Attack.FREE_RIDER_COPY:
            return self._copy_someone(project_id, round_, model_name)
        if s.attack is Attack.SYBIL:
            copied = self._copy_someone(project_id, round_, model_name, among=set(s.colluders))
            if copied is not None:
                return copied  # the group submits one crafted update many times
        state = OrderedDict((k, torch.from_numpy(np.array(global_state[k]))) for k in param_spec(model_name))
        update = train_local(
            model_name, state, self.data, s.epochs, s.lr, s.batch_size, seed=s.seed * 1_000 + round_, progress=progress
        )
        vector = tensors_to_vector(update, model_name)
        if s.attack in (Attack.NONE, Attack.LABEL_FLIP):
            return vector
        if s.attack is Attack.SYBIL:
            return -vector  # the first of the group crafts: against its honest direction
        return attack_update(s.attack, vector, seed=s.seed * 1_000 + round_, config=s.attack_config)

    def _copy_someone(
        self, project_id: int, round_: int, model_name: str, among: set[str] | None = None
    ) -> np.ndarray | None:
        """A free rider: downloads another trainer's (or a colluder's) update of this round."""
        for sub in self.market.submissions(project_id, round_):
            if sub.trainer != self.address and (among is None or sub.trainer in among):
                tensors = self.store.get_tensors(sub.cid, expected=param_spec(model_name), max_bytes=MAX_UPDATE_BYTES)
                return tensors_to_vector(tensors, model_name)
        return None

    def run(self, project_id: int, poll_seconds: float = 2.0, on_event: Callable[[object], None] | None = None) -> None:
        """Steps until the project is finished or cancelled, sleeping ``poll_seconds`` between checks."""
        last: object = None
        while True:
            outcome = self.step(project_id)
            if outcome != last and on_event is not None:
                on_event(outcome)
            last = outcome
            if outcome is StepOutcome.FINISHED:
                return
            if not isinstance(outcome, Submitted):
                time.sleep(poll_seconds)
