"""Reading rounds' proof documents from an IPFS node, for the event index (the accuracy per round).

A proof document's CID is recorded on chain with its round, but the document itself is whatever the
aggregator pinned: the reader bounds what it fetches and parses it strictly
(:meth:`ProofDocument.parse`). There are three outcomes, and the index treats each differently:

* the document: the index shows its accuracy;
* ``None``: the bytes at that CID are not a proof document (too large, not JSON, too deeply nested,
  wrong types, a non-finite or out-of-range number; the CID itself malformed). That will not change:
  the index records the round's document as invalid and goes on with the next one. The reason is
  logged;
* :class:`ProofDocUnavailable`: the node did not deliver it (unreachable, too slow, does not have
  it). The index records it as missing and stops reading documents for this sync, so that a slow
  node does not stall it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from marketplace.adapters.ipfs.errors import InvalidCid, ObjectTooLarge, StorageError, UnsupportedCid
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.protocol.proof_document import MAX_PROOF_DOCUMENT_BYTES, InvalidProofDocument, ProofDocument

log = logging.getLogger(__name__)


class ProofDocUnavailable(Exception):
    """The IPFS node did not deliver a proof document (it may later)."""


#: The proof document at a CID; None when the bytes there are not one; raises :class:`ProofDocUnavailable`.
ProofDocReader = Callable[[str], ProofDocument | None]


def proof_doc_reader(api_url: str, timeout: float) -> ProofDocReader:
    """A :data:`ProofDocReader` on the IPFS node at ``api_url`` (no retries: the next sync tries again)."""
    client = IpfsClient(api_url, timeout=timeout, retries=0)

    def read(cid: str) -> ProofDocument | None:
        try:
            raw = client.cat(cid, max_bytes=MAX_PROOF_DOCUMENT_BYTES)
            return ProofDocument.parse(raw)
        except (InvalidProofDocument, ObjectTooLarge, InvalidCid, UnsupportedCid) as exc:
            log.warning("proof document %s is invalid, skipped: %s", cid, exc)
            return None
        except StorageError as exc:
            log.info("proof document %s unavailable: %s", cid, exc)
            raise ProofDocUnavailable(f"proof document {cid}: {exc}") from exc

    return read
