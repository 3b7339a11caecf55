"""The verifiers as people see them: name, description and whether they prove nothing, read from the verifier
contracts (``IRoundVerifier.name``/``description``/``provesNothing``) once per address and kept (a verifier's
label never changes). The job form lists the approved ones; the review step, the project page and every verify
result name the project's.

A verifier deployed before names has none: it shows as its address and "unnamed verifier"
(:data:`~marketplace.adapters.chain.verifier_label.UNNAMED`). When the node does not answer, the label says the
name could not be read, and it is not kept (the next page asks again).
"""

from __future__ import annotations

import threading

from eth_utils import is_address, to_checksum_address

from marketplace.adapters.chain.errors import RpcUnavailable
from marketplace.adapters.chain.verifier_label import VerifierLabel, read_verifier_label
from marketplace.web.services.context import MarketContext

#: What a verifier whose label could not be read (the node did not answer) is called.
UNREAD = "verifier (its name could not be read now)"


def unread_label(address: str) -> VerifierLabel:
    """The label shown while a verifier cannot be read: no name, not known to prove nothing."""
    return VerifierLabel(address=address, name=UNREAD, description=None, proves_nothing=False, proof_system=None)


class VerifierService:
    """Labels of one deployment's verifiers, cached per address."""

    def __init__(self, context: MarketContext) -> None:
        self.context = context
        self._labels: dict[str, VerifierLabel] = {}
        self._lock = threading.Lock()

    def label(self, address: str) -> VerifierLabel:
        """The label of the verifier at ``address`` (read once, then kept; see the module)."""
        if not is_address(address):
            return VerifierLabel(address=address, name=None, description=None, proves_nothing=False, proof_system=None)
        key = to_checksum_address(address)
        with self._lock:
            known = self._labels.get(key)
        if known is not None:
            return known
        try:
            label = read_verifier_label(self.context.chain, key)
        except RpcUnavailable:
            return unread_label(key)
        with self._lock:
            self._labels[key] = label
        return label

    def approved(self) -> list[VerifierLabel]:
        """The verifiers a new project may name (approved by the market admin, oldest first): the ones that prove
        something first, then those that prove nothing."""
        labels = [self.label(a) for a in self.context.indexer.verifiers()]
        return sorted(labels, key=lambda v: v.proves_nothing)  # stable: oldest first within each group


__all__ = ["UNREAD", "VerifierService", "unread_label"]
