"""The openings an aggregator can reveal in one ``revealBatch``: for each trainer that committed in the open
round and has not revealed yet, the opening document its commit's note points to
(:mod:`marketplace.protocol.opening`), fetched over IPFS and checked off chain against the trainer's committed
seal. Nothing here can fail the round: a note without a pointer, a document nobody serves (yet), one too large,
malformed, naming another round or trainer, or not opening the seal is recorded with its reason and left out;
that trainer reveals itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from marketplace.adapters.chain.market import Commit, MarketClient, Opening
from marketplace.adapters.ipfs.errors import IpfsConnectionError, StorageError
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.protocol.opening import MAX_OPENING_BYTES, InvalidOpening, OpeningDocument, OpeningMismatch, split_note

#: How long the aggregator's node looks for one opening document in its swarm (a trainer that has not
#: published it yet must not hold up the others for long; it is looked for again at the next poll).
OPENING_FETCH_SECONDS = 3.0


@dataclass
class FoundOpenings:
    """What :func:`find_openings` found: the valid openings (commit order), and why the others are missing."""

    openings: list[Opening] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # trainer -> why there is no usable opening


def opening_store(store: ModelStore, fetch_seconds: float = OPENING_FETCH_SECONDS) -> ModelStore:
    """A store on ``store``'s node that gives up on an object after ``fetch_seconds``."""
    client = store.client
    quick = IpfsClient(
        client.api_url, timeout=max(fetch_seconds, 5.0), fetch_timeout=fetch_seconds, profile=client.profile
    )
    return ModelStore(quick, max_bytes=MAX_OPENING_BYTES, framework=store.framework)


def find_openings(market: MarketClient, store: ModelStore, project_id: int, round_: int) -> FoundOpenings:
    """The openings of the trainers of ``round_`` that committed and have not revealed. Raises only
    :class:`IpfsConnectionError` (this node's IPFS node is down: nothing is known about the trainers)."""
    where = market.round_address(project_id, round_)
    found = FoundOpenings()
    commits: list[Commit] = market.commits(project_id, round_)
    revealed = {s.trainer for s in market.submissions(project_id, round_)}
    for commit in sorted(commits, key=lambda c: c.arrival):
        trainer = commit.trainer
        if trainer in revealed:
            continue
        pointer, _ = split_note(commit.note)
        if pointer is None:
            found.missing[trainer] = "its commit's note points to no opening"
            continue
        try:
            document = OpeningDocument.parse(store.get_bytes(pointer, max_bytes=MAX_OPENING_BYTES))
            document.check(where, trainer, commit.seal)
        except IpfsConnectionError:
            raise
        except (StorageError, InvalidOpening, OpeningMismatch) as exc:
            found.missing[trainer] = f"{type(exc).__name__}: {exc}"
            continue
        found.openings.append(Opening(trainer, document.cid, document.commitment_bytes, document.salt_bytes))
    return found
