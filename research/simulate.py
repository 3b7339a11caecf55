"""In-process federated rounds with optional attackers (for research, tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from marketplace.demo.attacks import Attack, AttackConfig, attack_data, attack_update, get_attack
from marketplace.fl.data import LocalData
from marketplace.fl.models import StateDict, build_model, state_to_vector, vector_to_state
from marketplace.fl.train import train_local
from marketplace.rule.strategy import RoundResult, RoundScorer


def apply_update(global_vector: np.ndarray, update: np.ndarray | None) -> np.ndarray:
    """New flat global vector ``global + update`` (unchanged copy when ``update is None``)."""
    g = np.asarray(global_vector, dtype=np.float32)
    return g.copy() if update is None else (g + update).astype(np.float32)


@dataclass(frozen=True)
class RoundUpdates:
    """One round's N x D flat updates (trainer order) and reported sample counts."""

    updates: np.ndarray
    num_samples: np.ndarray


def apply_attacks(
    updates: np.ndarray,
    attackers: Mapping[int, str | Attack],
    seed: int = 0,
    config: AttackConfig | None = None,
) -> np.ndarray:
    """Replace the attackers' rows of an N x D update matrix by their attacked versions.

    The rows not in ``attackers`` are the honest reference the (omniscient) attackers see.
    Label-flip rows are left as they are: they must already come from flipped-data training.
    """
    u = np.array(updates, dtype=np.float32, copy=True)
    honest = [u[i] for i in range(u.shape[0]) if i not in attackers]
    for i, name in attackers.items():
        u[i] = attack_update(name, u[i], honest, seed=seed + i, config=config)
    return u


def collect_updates(
    model_name: str,
    global_state: StateDict,
    shards: Sequence[LocalData],
    attackers: Mapping[int, str | Attack] | None = None,
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    config: AttackConfig | None = None,
) -> RoundUpdates:
    """Train every trainer locally, then apply the attacks (label flip acts on the data)."""
    attackers = {i: get_attack(a) for i, a in (attackers or {}).items()}
    rows = []
    for i, shard in enumerate(shards):
        data = attack_data(attackers.get(i, Attack.NONE), shard, seed=seed + i)
        upd = train_local(model_name, global_state, data, epochs, lr, batch_size, seed=seed * 1000 + i)
        rows.append(state_to_vector(upd))
    updates = apply_attacks(np.stack(rows), attackers, seed=seed, config=config)
    return RoundUpdates(updates, np.array([len(s) for s in shards], dtype=np.float64))


def run_rounds(
    model_name: str,
    shards: Sequence[LocalData],
    scorer: RoundScorer,
    rounds: int = 2,
    attackers: Mapping[int, str | Attack] | None = None,
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    global_state: StateDict | None = None,
) -> tuple[StateDict, list[RoundResult]]:
    """Run ``rounds`` full rounds; returns the final global state and every round's result."""
    state = global_state if global_state is not None else build_model(model_name, seed).state_dict()
    results = []
    for r in range(rounds):
        ru = collect_updates(model_name, state, shards, attackers, epochs, lr, batch_size, seed + r)
        result = scorer.run_round(ru.updates, num_samples=ru.num_samples)
        results.append(result)
        state = vector_to_state(apply_update(state_to_vector(state), result.aggregate), model_name)
    return state, results
