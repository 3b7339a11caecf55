"""Attack simulation for demos, tests and benchmarks.

Update-level attacks transform a flat update vector; the data-level label flip permutes
labels before (otherwise honest) local training. Attacks are looked up by name through
the :class:`Attack` string enum (``Attack("sign_flip")``). A trainer node misbehaves through
the update sources of :mod:`marketplace.demo.adversaries`; in-process simulations apply the
same transforms to a round's update matrix (``research.simulate.apply_attacks``).

=================== ===========================================================
name                effect
=================== ===========================================================
``sign_flip``       ``-u``
``scaled``          ``k * u`` (``AttackConfig.scale``, default 10)
``gaussian``        ``u + N(0, (noise_scale * rms(u))^2)`` per coordinate
``label_flip``      train on labels mapped through a fixed seeded derangement
``free_rider_zero`` the zero update (no training)
``free_rider_copy`` a copy of another (honest) trainer's update
``sybil``           every Sybil sends the same crafted update
                    ``-sybil_scale * median_norm * mean_dir`` pointing against the
                    honest mean direction, with the median honest norm
=================== ===========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from marketplace.fl.data import LocalData


class Attack(StrEnum):
    """Registered attacks, by name."""

    NONE = "none"
    SIGN_FLIP = "sign_flip"
    SCALED = "scaled"
    GAUSSIAN = "gaussian"
    LABEL_FLIP = "label_flip"
    FREE_RIDER_ZERO = "free_rider_zero"
    FREE_RIDER_COPY = "free_rider_copy"
    SYBIL = "sybil"

    @property
    def is_data_attack(self) -> bool:
        """True if the attack acts on the training data rather than on the update."""
        return self is Attack.LABEL_FLIP


@dataclass(frozen=True)
class AttackConfig:
    """Attack strengths."""

    scale: float = 10.0
    noise_scale: float = 3.0
    sybil_scale: float = 1.0


def get_attack(name: str | Attack) -> Attack:
    """Look an attack up by name; ``ValueError`` lists the valid names."""
    try:
        return Attack(name)
    except ValueError:
        raise ValueError(f"unknown attack {name!r}; available: {[a.value for a in Attack]}") from None


def label_derangement(n_classes: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n_classes)`` with no fixed point."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n_classes)
        if n_classes < 2 or not np.any(perm == np.arange(n_classes)):
            return perm


def attack_data(attack: str | Attack, data: LocalData, seed: int = 0, n_classes: int = 10) -> LocalData:
    """Apply a data-level attack (label flip); other attacks return ``data`` unchanged."""
    if get_attack(attack) is not Attack.LABEL_FLIP:
        return data
    return LocalData(data.x, label_derangement(n_classes, seed)[data.y])


def sybil_update(honest_updates: Sequence[np.ndarray], sybil_scale: float = 1.0) -> np.ndarray:
    """The common crafted Sybil update: against the honest mean, with the median honest norm."""
    if not honest_updates:
        raise ValueError("sybil crafting needs the honest updates")
    h = np.stack([np.asarray(u, dtype=np.float64) for u in honest_updates])
    mean = h.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    direction = mean / norm if norm > 0 else mean
    return (-sybil_scale * float(np.median(np.linalg.norm(h, axis=1))) * direction).astype(np.float32)


def attack_update(
    attack: str | Attack,
    update: np.ndarray,
    honest_updates: Sequence[np.ndarray] = (),
    seed: int = 0,
    config: AttackConfig | None = None,
) -> np.ndarray:
    """Apply an update-level attack to one flat honest ``update``.

    Args:
        attack: attack name or enum member.
        update: the attacker's own honestly-trained flat update.
        honest_updates: other trainers' updates (``free_rider_copy`` copies the first one,
            ``sybil`` crafts from all of them).
        seed: seeds the Gaussian noise.
        config: attack strengths.
    """
    cfg = config or AttackConfig()
    u = np.asarray(update, dtype=np.float32)
    match get_attack(attack):
        case Attack.NONE | Attack.LABEL_FLIP:
            return u.copy()
        case Attack.SIGN_FLIP:
            return -u
        case Attack.SCALED:
            return (cfg.scale * u).astype(np.float32)
        case Attack.GAUSSIAN:
            rms = float(np.sqrt(np.mean(u.astype(np.float64) ** 2))) if u.size else 0.0
            noise = np.random.default_rng(seed).normal(0.0, cfg.noise_scale * rms, size=u.shape)
            return (u + noise).astype(np.float32)
        case Attack.FREE_RIDER_ZERO:
            return np.zeros_like(u)
        case Attack.FREE_RIDER_COPY:
            if not honest_updates:
                raise ValueError("free_rider_copy needs another trainer's update")
            return np.asarray(honest_updates[0], dtype=np.float32).copy()
        case Attack.SYBIL:
            return sybil_update(honest_updates, cfg.sybil_scale)
    raise AssertionError("unreachable")  # pragma: no cover
