"""The federated-learning core: model registry, local data and partitioning, local training."""
