"""Reading projects' model cards from an IPFS node, for the event index.

A project's card is in the safetensors header of its initial weights (:mod:`marketplace.protocol.model_card`),
whose CID is on chain; the weights are whatever the owner pinned. The reader fetches the header only (at most
:data:`~marketplace.adapters.ipfs.tensors.MAX_METADATA_HEADER_BYTES` and the 8-byte length: never the tensors)
and reads the card leniently (:func:`~marketplace.protocol.model_card.read_card`: bounded, plain text). Three
outcomes, as for proof documents (:mod:`marketplace.web.proof_docs`):

* the card;
* ``None``: the weights carry no card that can be read (none written; not safetensors; a header too large; a
  card that is not a JSON object of strings; the CID itself malformed). That will not change: the project is
  "not described". The reason is logged;
* :class:`CardUnavailable`: the node did not deliver the header (unreachable, too slow, does not have it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from marketplace.adapters.ipfs.errors import InvalidCid, NotSafetensors, StorageError, UnsupportedCid
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.tensors import MAX_METADATA_HEADER_BYTES, read_metadata
from marketplace.protocol.model_card import ModelCard, read_card

log = logging.getLogger(__name__)


class CardUnavailable(Exception):
    """The IPFS node did not deliver a project's initial weights (it may later)."""


#: The card in the initial weights at a CID; None when they carry none; raises :class:`CardUnavailable`.
CardReader = Callable[[str], ModelCard | None]


def model_card_reader(api_url: str, timeout: float) -> CardReader:
    """A :data:`CardReader` on the IPFS node at ``api_url`` (no retries: a later sync may try again)."""
    client = IpfsClient(api_url, timeout=timeout, retries=0)

    def read(cid: str) -> ModelCard | None:
        try:
            prefix = client.cat_prefix(cid, 8 + MAX_METADATA_HEADER_BYTES)
            return read_card(read_metadata(prefix))
        except (NotSafetensors, InvalidCid, UnsupportedCid) as exc:
            log.warning("initial weights %s carry no readable model card: %s", cid, exc)
            return None
        except StorageError as exc:
            log.info("initial weights %s unavailable: %s", cid, exc)
            raise CardUnavailable(f"initial weights {cid}: {exc}") from exc

    return read
