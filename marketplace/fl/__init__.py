"""The federated-learning core: models, local data, local training, attack simulation."""

from marketplace.fl.attacks import Attack, AttackConfig, apply_attacks, attack_data, attack_update
from marketplace.fl.data import LocalData, load_local_data, partition_digits
from marketplace.fl.models import build_model, param_spec, state_to_vector, vector_to_state
from marketplace.fl.train import evaluate, train_local

__all__ = [
    "Attack",
    "AttackConfig",
    "LocalData",
    "apply_attacks",
    "attack_data",
    "attack_update",
    "build_model",
    "evaluate",
    "load_local_data",
    "param_spec",
    "partition_digits",
    "state_to_vector",
    "train_local",
    "vector_to_state",
]
