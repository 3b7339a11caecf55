"""The embedded node's own record of its recursive pins, and how it is reconciled with Kubo's list.

The embedded library's ``ListPins`` names every pinned CID (recursive pins first, then the blocks
below them) but not the type of each pin. A CID that is both pinned recursively and a block of
another pinned file (a 256 KiB file whose bytes also start a larger file) cannot be told apart
from a merely indirect one. Kubo keeps the type in its pin index; this node keeps the list of its
recursive pins in ``<repo>/marketplace-pins.json``, rewritten atomically after every change:

``{"format": 1, "recursive": ["Qm...", "bafy..."]}``

At the first pin operation after a start, :func:`reconcile` checks the record against what the
library lists: a recorded pin the library no longer lists is dropped, and a listed CID below no
other listed CID (which can only be a pin of its own) is added. A listed CID that lies below
another one stays indirect unless the record names it; when there is no record at all (a repo
made before the record existed) such CIDs are returned as ``ambiguous`` for the caller to probe.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from marketplace.adapters.ipfs.manager import write_json_atomic

RECORD_NAME = "marketplace-pins.json"
_FORMAT = 1


class PinRecordError(RuntimeError):
    """The pin record file exists but cannot be read as a pin record."""


@dataclass(frozen=True)
class Reconciled:
    """Outcome of :func:`reconcile`: the recursive pins, and listed CIDs whose type is unknown."""

    recursive: frozenset[str]
    ambiguous: tuple[str, ...]


class PinRecord:
    """The recursive pins of one repo, kept in memory and mirrored to ``path``.

    ``lock`` is held by the node around every sequence of library calls that changes pins, so a
    pin, an unpin and the record update of each happen as one step.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.cids: set[str] | None = None  # None until reconciled in this process

    def load(self) -> set[str] | None:
        """The recorded recursive pins, or None when the repo has no record yet."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PinRecordError(f"pin record {self.path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("recursive"), list):
            raise PinRecordError(f"pin record {self.path} is not a format-{_FORMAT} pin record")
        return {str(c) for c in data["recursive"]}

    def save(self, cids: Iterable[str]) -> None:
        """Replace the record with ``cids`` (atomically) and keep them as the in-memory set."""
        self.cids = set(cids)
        write_json_atomic(self.path, {"format": _FORMAT, "recursive": sorted(self.cids)})

    def add(self, cid: str) -> None:
        """Record ``cid`` as pinned recursively."""
        if self.cids is None:
            raise PinRecordError("pin record used before it was reconciled")
        if cid not in self.cids:
            self.save(self.cids | {cid})

    def discard(self, cid: str) -> None:
        """Forget ``cid`` (its recursive pin is gone)."""
        if self.cids is None:
            raise PinRecordError("pin record used before it was reconciled")
        if cid in self.cids:
            self.save(self.cids - {cid})


def reconcile(recorded: set[str] | None, listed: list[str], below: Callable[[str], set[str]]) -> Reconciled:
    """Recursive pins given the record and the library's list of every pinned CID.

    ``below(cid)`` gives the CIDs of the blocks under ``cid``. A listed CID under no other listed
    CID is a pin of its own; one under another is indirect unless ``recorded`` names it. With no
    record (``recorded is None``) the latter are returned as ``ambiguous``.
    """
    under: set[str] = set()
    for cid in listed:
        if cid not in under:  # everything below a covered CID is already covered
            under |= below(cid)
    roots = {c for c in listed if c not in under}
    if recorded is None:
        return Reconciled(frozenset(roots), tuple(c for c in listed if c in under))
    return Reconciled(frozenset(roots | (recorded & set(listed))), ())
