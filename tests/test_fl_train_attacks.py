"""Local training / evaluation, the attack simulations and the trainers' update sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pytest

from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.demo.adversaries import CopyUpdate, SybilGroup, ZeroUpdate, update_source
from marketplace.demo.attacks import (
    Attack,
    AttackConfig,
    attack_data,
    attack_update,
    get_attack,
    label_derangement,
)
from marketplace.fl.data import LocalData, load_digits_data
from marketplace.fl.models import build_model, num_params, state_to_vector, vector_to_state
from marketplace.fl.train import add_update, evaluate, train_local
from marketplace.roles.trainer import LocalTraining, TrainingSettings, UpdateContext
from research.simulate import apply_attacks


@pytest.fixture(scope="module")
def digits() -> LocalData:
    return load_digits_data()


def test_train_local_improves_and_is_deterministic(digits: LocalData) -> None:
    state = build_model("mlp", 0).state_dict()
    calls: list[tuple[int, int]] = []
    train = LocalData(digits.x[:600], digits.y[:600])
    upd = train_local("mlp", state, train, 3, 0.5, 32, 1, lambda s, t: calls.append((s, t)))
    assert list(upd) == list(state)
    assert calls[-1] == (3 * 19, 3 * 19) and len(calls) == 57
    again = train_local("mlp", state, (train.x, train.y), epochs=3, lr=0.5, batch_size=32, seed=1)
    assert np.array_equal(state_to_vector(upd), state_to_vector(again))
    x, y = digits.x[1200:], digits.y[1200:]
    loss0, acc0 = evaluate("mlp", state, x, y)
    loss1, acc1 = evaluate("mlp", add_update(state, upd), x, y)
    assert loss1 < loss0 and acc1 > 0.7 > acc0


def test_cnn_trains(digits: LocalData) -> None:
    state = build_model("cnn", 0).state_dict()
    upd = train_local("cnn", state, LocalData(digits.x[:300], digits.y[:300]), epochs=1, lr=0.1, seed=0)
    assert np.abs(state_to_vector(upd)).sum() > 0


def test_update_attacks() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(size=50).astype(np.float32)
    others = [rng.normal(size=50).astype(np.float32) + 1 for _ in range(3)]
    assert np.array_equal(attack_update("sign_flip", u), -u)
    assert np.allclose(attack_update(Attack.SCALED, u, config=AttackConfig(scale=3)), 3 * u)
    noisy = attack_update("gaussian", u, seed=1)
    assert not np.allclose(noisy, u) and np.array_equal(noisy, attack_update("gaussian", u, seed=1))
    assert not attack_update("free_rider_zero", u).any()
    assert np.array_equal(attack_update("free_rider_copy", u, others), others[0])
    syb = attack_update("sybil", u, others)
    mean = np.mean(others, axis=0)
    assert float(syb @ mean) < 0  # points against the honest direction
    assert np.isclose(np.linalg.norm(syb), np.median([np.linalg.norm(o) for o in others]), rtol=1e-5)
    assert np.array_equal(attack_update("label_flip", u), u)
    with pytest.raises(ValueError, match="unknown attack"):
        get_attack("nope")


def test_apply_attacks_and_label_flip() -> None:
    u = np.arange(12, dtype=np.float32).reshape(4, 3) + 1
    out = apply_attacks(u, {2: "sybil", 3: "sybil"})
    assert np.array_equal(out[:2], u[:2]) and np.array_equal(out[2], out[3])
    perm = label_derangement(10, seed=3)
    assert sorted(perm.tolist()) == list(range(10)) and not np.any(perm == np.arange(10))
    data = LocalData.of(np.zeros((10, 64)), np.arange(10))
    flipped = attack_data("label_flip", data, seed=3)
    assert np.array_equal(flipped.y, perm) and attack_data("sign_flip", data) is data
    assert Attack.LABEL_FLIP.is_data_attack and not Attack.SIGN_FLIP.is_data_attack


@dataclass
class _Submission:
    trainer: str
    cid: str


class _Market:
    """The two things an update source reads from the market: its address and the round's submissions."""

    address = "0xself"

    def __init__(self, submitted: list[str]) -> None:
        self.submitted = submitted

    def submissions(self, project_id: int, round_: int) -> list[_Submission]:
        return [_Submission(t, f"cid-{t}") for t in self.submitted]


class _Store:
    def __init__(self, updates: dict[str, np.ndarray]) -> None:
        self.updates = updates

    def get_tensors(self, cid: str, expected: Any = None, max_bytes: int | None = None) -> dict[str, np.ndarray]:
        vector = self.updates[cid.removeprefix("cid-")]
        return {k: t.numpy() for k, t in vector_to_state(vector, "mlp").items()}


def _context(submitted: list[str], updates: dict[str, np.ndarray], round_: int = 2) -> UpdateContext:
    state = {k: t.numpy() for k, t in build_model("mlp", 0).state_dict().items()}
    market, store = cast(MarketClient, _Market(submitted)), cast(ModelStore, _Store(updates))
    return UpdateContext(1, round_, "mlp", state, market, store)


def test_update_sources(digits: LocalData) -> None:
    data = LocalData(digits.x[:200], digits.y[:200])
    settings = TrainingSettings(epochs=1, lr=0.5, seed=3)
    rng = np.random.default_rng(0)
    others = {t: rng.normal(size=num_params("mlp")).astype(np.float32) for t in ("0xa", "0xb")}
    ctx = _context([], others)
    honest = LocalTraining(data, settings).make_update(ctx)
    state = build_model("mlp", 0).state_dict()
    assert np.array_equal(honest, state_to_vector(train_local("mlp", state, data, 1, 0.5, 32, seed=3 * 1_000 + 2)))
    assert np.array_equal(update_source("none", data, settings).make_update(ctx), honest)
    assert np.array_equal(update_source("sign_flip", data, settings).make_update(ctx), -honest)
    noisy = update_source(Attack.GAUSSIAN, data, settings).make_update(ctx)
    assert np.array_equal(noisy, attack_update("gaussian", honest, seed=3 * 1_000 + 2))
    flipped = update_source("label_flip", data, settings)
    assert isinstance(flipped, LocalTraining) and np.array_equal(flipped.data.y, label_derangement(10, 3)[data.y])
    zero = update_source("free_rider_zero", data, settings)
    assert isinstance(zero, ZeroUpdate) and not zero.make_update(ctx).any()
    assert zero.make_update(ctx).shape == honest.shape

    copier = update_source("free_rider_copy", data, settings)
    assert isinstance(copier, CopyUpdate)
    assert copier.make_update(_context(["0xself"], others)) is None  # nobody else revealed last round
    assert copier.make_update(_context(["0xb"], others, round_=0)) is None  # round 0: nothing earlier to replay
    assert np.array_equal(copier.make_update(_context(["0xself", "0xb", "0xa"], others)), others["0xb"])

    group: dict[tuple[int, int], np.ndarray] = {}
    first = update_source("sybil", data, settings, group=group)
    second = update_source("sybil", LocalData(data.x[:50], data.y[:50]), settings, group=group)
    assert isinstance(first, SybilGroup)
    assert np.array_equal(first.make_update(ctx), -honest)  # the first to need it crafts
    assert np.array_equal(second.make_update(ctx), -honest)  # the others submit the same, shared off chain
    alone = update_source("sybil", LocalData(data.x[:50], data.y[:50]), settings)
    assert not np.array_equal(alone.make_update(ctx), -honest)  # no group: crafts its own
    with pytest.raises(ValueError, match="unknown attack"):
        update_source("nope", data)
