"""``marketplace data partition``: data helpers for demos and tests."""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.cli.common import console
from marketplace.fl.data import partition_digits

data_app = typer.Typer(help="Data helpers for demos and tests.")


@data_app.command("partition")
def data_partition_cmd(
    trainers: int = typer.Option(8, min=1, help="Number of shards."),
    scheme: str = typer.Option("iid", help="iid or dirichlet."),
    alpha: float = typer.Option(0.5, help="Dirichlet concentration (smaller = more skewed)."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("shards"), help="Output directory."),
) -> None:
    """Split scikit-learn's digits into one NPZ shard per trainer plus validation and test sets."""
    paths = partition_digits(trainers, scheme, alpha=alpha, seed=seed, out_dir=out)
    console.print(f"wrote {len(paths)} shards to {out}/ (and validation.npz, test.npz)")
