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
``free_rider_copy`` :class:`CopyUpdate`: another trainer's update of the previous
                    round, replayed (``None`` in round 0: submissions are sealed
                    until the commit phase closes, so nothing of the round can
                    be copied)
``sybil``           :class:`SybilGroup`: the group's crafted update of the round,
                    shared off chain before anyone commits (the first member to
                    make it trains and negates its own update)
others              :class:`PoisonedTraining`: honest training, then
                    :func:`~marketplace.demo.attacks.attack_update`
=================== ===========================================================

Seeds are those of the honest training (``settings.seed``: the label derangement;
``settings.seed * 1000 + round``: the Gaussian noise).
"""

from __future__ import annotations

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


def copy_submission(ctx: UpdateContext, round_: int) -> np.ndarray | None:
    """The flat update of the first revealed submission of ``round_`` by another trainer, downloaded
    from IPFS; ``None`` if there is none."""
    for sub in ctx.market.submissions(ctx.project_id, round_):
        if sub.trainer != ctx.trainer:
            spec = param_spec(ctx.model_name)
            tensors = ctx.store.get_tensors(sub.cid, expected=spec, max_bytes=MAX_UPDATE_BYTES)
            return tensors_to_vector(tensors, ctx.model_name)
    return None


@dataclass(frozen=True)
class CopyUpdate:
    """A free rider that replays another trainer's update of the previous round (the round's own
    submissions are sealed while it could still commit)."""

    def make_update(self, ctx: UpdateContext) -> np.ndarray | None:
        return copy_submission(ctx, ctx.round - 1) if ctx.round > 0 else None


@dataclass(frozen=True)
class SybilGroup:
    """One member of a Sybil group: the group submits one crafted update many times. The group
    shares it off chain (``shared``, one dict for the whole group in this process) before anyone
    commits; the first member to need it crafts it (its honestly trained update, negated)."""

    training: LocalTraining
    shared: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        key = (ctx.project_id, ctx.round)
        if key not in self.shared:
            self.shared[key] = -self.training.make_update(ctx)
        return self.shared[key]


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
    group: dict[tuple[int, int], np.ndarray] | None = None,
    config: AttackConfig | None = None,
) -> UpdateSource:
    """The update source of a trainer with ``data`` that misbehaves as ``attack`` (``none``: honest).

    ``group`` is the Sybil group's shared store of crafted updates (``sybil`` only: pass the same
    dict to every member; a member without one forms a group of its own); ``config`` the attack
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
            return SybilGroup(training, group if group is not None else {})
        case _:
            return PoisonedTraining(training, kind, config or AttackConfig())
