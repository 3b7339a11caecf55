"""hardhat.config.js signs for the `testnet` network with the same variables as the Python CLI (issue 13: the
keystore route failed with `TypeError: Cannot read properties of undefined (reading 'address')`): a keystore and
its password, else a private key, else no account. Checked by running scripts/accounts.js with Node against a
keystore written by eth-account (what `marketplace` reads)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from eth_account import Account

from marketplace.adapters.toolchain import node_binary, project_root

KEY = "0x" + "42" * 32


def _accounts(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = "console.log(JSON.stringify(require('./scripts/accounts.js').testnetAccounts(process.env)))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLACE_")}
    return subprocess.run(
        [str(node_binary()), "-e", script], cwd=project_root(), env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_keystore_and_its_password_give_the_key(tmp_path: Path) -> None:
    keystore = tmp_path / "wallet.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "s3cret", iterations=2)))
    out = _accounts({"MARKETPLACE_KEYSTORE": str(keystore), "MARKETPLACE_KEYSTORE_PASSWORD": "s3cret"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [KEY]


def test_a_keystore_without_its_password_names_the_variable(tmp_path: Path) -> None:
    keystore = tmp_path / "wallet.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "s3cret", iterations=2)))
    out = _accounts({"MARKETPLACE_KEYSTORE": str(keystore)})
    assert out.returncode != 0 and "MARKETPLACE_KEYSTORE_PASSWORD" in out.stderr


@pytest.mark.parametrize(
    ("env", "expected"), [({"MARKETPLACE_PRIVATE_KEY": KEY}, [KEY]), ({}, [])], ids=["private key", "nothing"]
)
def test_a_private_key_or_nothing(env: dict[str, str], expected: list[str]) -> None:
    out = _accounts(env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected
