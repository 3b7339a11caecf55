"""Local training / evaluation and the attack simulations."""

from __future__ import annotations

import numpy as np
import pytest

from marketplace.demo.attacks import (
    Attack,
    AttackConfig,
    apply_attacks,
    attack_data,
    attack_update,
    get_attack,
    label_derangement,
)
from marketplace.fl.data import LocalData, load_digits_data
from marketplace.fl.models import build_model, state_to_vector
from marketplace.fl.train import add_update, evaluate, train_local


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
