"""``marketplace model list|init``: the model registry, and initial weights pinned to IPFS.

The commands import the model registry (torch) inside their bodies, so that ``marketplace --help``
stays fast; everything else is imported at the top.
"""

from __future__ import annotations

import typer

from marketplace.cli.common import IPFS_API, console, fail, open_store

model_app = typer.Typer(help="The model registry: architectures a project can name, initial weights.")


@model_app.command("list")
def model_list_cmd() -> None:
    """Architectures in the registry, with their parameter counts."""
    from marketplace.fl.models import available_models, num_params

    for name in available_models():
        console.print(f"{name}: {num_params(name):,} parameters")


@model_app.command("init")
def model_init_cmd(
    model: str = typer.Option("mlp", help="Architecture name (see `marketplace model list`)."),
    seed: int = typer.Option(0, help="Seed of the initial weights."),
    ipfs_api: str | None = IPFS_API,
) -> None:
    """Pin freshly initialized weights to IPFS and print their CID (for `project create --initial-cid`)."""
    from marketplace.fl.models import available_models, build_model

    if model not in available_models():
        raise fail(f"unknown model {model!r}; available: {', '.join(available_models())}")
    store = open_store(ipfs_api)
    console.print(store.put_tensors(build_model(model, seed=seed).state_dict(), {"kind": "model", "model": model}))
