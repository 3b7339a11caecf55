"""The ``marketplace`` command line: the root typer app, assembled from one module per command group.

Only assembly lives here (no logic): each group's module defines its typer app or command, and
:mod:`marketplace.cli.common` holds what they share. Registration order is the order ``--help``
lists them in: single commands first, then groups. ``python -m marketplace.cli.main`` runs it, as
does the ``marketplace`` console script (``marketplace.cli.main:app``).
"""

from __future__ import annotations

import typer

from marketplace.cli.aggregator import aggregator_app
from marketplace.cli.audit import audit_cmd, verify_cmd
from marketplace.cli.chain import chain_app
from marketplace.cli.data import data_app
from marketplace.cli.demo import demo_cmd
from marketplace.cli.deploy import compile_cmd, deploy_cmd
from marketplace.cli.ipfs import ipfs_app
from marketplace.cli.model import model_app
from marketplace.cli.network import network_app
from marketplace.cli.project import project_app
from marketplace.cli.trainer import trainer_app
from marketplace.cli.web import web_cmd
from marketplace.cli.zk import zk_app

app = typer.Typer(
    help="Blockchain-backed federated-learning marketplace: local chain, contracts, projects, trainers.",
    no_args_is_help=True,
    add_completion=False,
)

app.command("deploy")(deploy_cmd)
app.command("demo")(demo_cmd)
app.command("audit")(audit_cmd)
app.command("verify")(verify_cmd)
app.command("web")(web_cmd)
app.command("compile")(compile_cmd)
app.add_typer(chain_app, name="chain")
app.add_typer(network_app, name="network")
app.add_typer(project_app, name="project")
app.add_typer(ipfs_app, name="ipfs")
app.add_typer(trainer_app, name="trainer")
app.add_typer(aggregator_app, name="aggregator")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(zk_app, name="zk")

if __name__ == "__main__":
    app()
