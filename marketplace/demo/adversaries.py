"""Simulated cheating trainers: :class:`~marketplace.roles.trainer.UpdateSource`\\ s for the demo,
the hidden ``--attack`` option of ``marketplace trainer run``, tests and benchmarks.

:func:`update_source` maps an :class:`~marketplace.demo.attacks.Attack` to the source a trainer
submits from (the transforms themselves are :mod:`marketplace.demo.attacks`):

=================== ===========================================================
attack              source
=================== ===========================================================
``none``            :class:`~marketplace.roles.trainer.LocalTraining` on the data
``label_flip``      the same, on labels mapped through a seeded derangement
``free_rider_zero`` :class:`ZeroUpdate`: the zero vector, no training
``free_rider_copy`` :class:`CopyUpdate`: the first other submission of the round
                    (``None`` while nobody else has submitted)
``sybil``           :class:`SybilGroup`: a colluder's update of the round if one
                    submitted already, else its own trained update negated
others              :class:`PoisonedTraining`: honest training, then
                    :func:`~marketplace.demo.attacks.attack_update`
=================== ===========================================================

Seeds are those of the honest training (``settings.seed``: the label derangement;
``settings.seed * 1000 + round``: the Gaussian noise).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from marketplace.demo.attacks import Attack, AttackConfig, attack_data, attack_update, get_attack
from marketplace.fl.data import LocalData
from marketplace.fl.models import num_params, param_spec, tensors_to_vector
from marketplace.protocol.constants import MAX_UPDATE_BYTES
from marketplace.roles.trainer import LocalTraining, TrainingSettings, UpdateContext, UpdateSource


@dataclass(frozen=True)
class ZeroUpdate:
    """A free rider that submits the zero update without training."""

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        return np.zeros(num_params(ctx.model_name), np.float32)


def copy_submission(ctx: UpdateContext, among: frozenset[str] | None = None) -> np.ndarray | None:
    """The flat update of the first submission of ``ctx.round`` by another trainer (restricted to
    ``among`` if given), downloaded from IPFS; ``None`` if there is none yet."""
    for sub in ctx.market.submissions(ctx.project_id, ctx.round):
        if sub.trainer != ctx.trainer and (among is None or sub.trainer in among):
            spec = param_spec(ctx.model_name)
            tensors = ctx.store.get_tensors(sub.cid, expected=spec, max_bytes=MAX_UPDATE_BYTES)
            return tensors_to_vector(tensors, ctx.model_name)
    return None


@dataclass(frozen=True)
class CopyUpdate:
    """A free rider that submits a copy of another trainer's update of the round."""

    def make_update(self, ctx: UpdateContext) -> np.ndarray | None:
        return copy_submission(ctx)


@dataclass(frozen=True)
class SybilGroup:
    """One member of a Sybil group: the group submits one crafted update many times. The first
    member to submit crafts it (its honestly trained update, negated); the others copy it."""

    training: LocalTraining
    colluders: frozenset[str]

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        copied = copy_submission(ctx, among=self.colluders)
        if copied is not None:
            return copied
        return -self.training.make_update(ctx)


@dataclass(frozen=True)
class PoisonedTraining:
    """Honest training, then an update-level attack (sign flip, scaling, Gaussian noise)."""

    training: LocalTraining
    attack: Attack
    config: AttackConfig = field(default_factory=AttackConfig)

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        vector = self.training.make_update(ctx)
        seed = self.training.settings.seed * 1_000 + ctx.round
        return attack_update(self.attack, vector, seed=seed, config=self.config)


def update_source(
    attack: str | Attack,
    data: LocalData,
    settings: TrainingSettings | None = None,
    colluders: Iterable[str] = (),
    config: AttackConfig | None = None,
) -> UpdateSource:
    """The update source of a trainer with ``data`` that misbehaves as ``attack`` (``none``: honest).

    ``colluders`` are the addresses of the Sybil group (``sybil`` only); ``config`` the attack
    strengths. ``ValueError`` for an unknown attack name.
    """
    kind = get_attack(attack)
    settings = settings or TrainingSettings()
    training = LocalTraining(attack_data(kind, data, seed=settings.seed), settings)
    if kind is Attack.NONE or kind.is_data_attack:
        return training
    match kind:
        case Attack.FREE_RIDER_ZERO:
            return ZeroUpdate()
        case Attack.FREE_RIDER_COPY:
            return CopyUpdate()
        case Attack.SYBIL:
            return SybilGroup(training, frozenset(colluders))
        case _:
            return PoisonedTraining(training, kind, config or AttackConfig())
