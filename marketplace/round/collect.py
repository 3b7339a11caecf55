"""A round's inputs as anyone can rebuild them from the chain and IPFS: every submission fetched,
checked and turned into its committed row, and the rows that rejected trainers published on chain to
dispute their rejection (:func:`apply_published_rows`). The aggregator uses this to finalize;
``marketplace audit`` uses the very same function to check a finalized round."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from marketplace.adapters.chain.market import Commit, DisputedRow, MarketClient, Submission
from marketplace.adapters.ipfs.errors import IpfsConnectionError, IpfsError, IpfsTimeout, NodeBusy, StorageError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import load_checked
from marketplace.fl.models import ParamSpec, num_params, param_spec, tensors_to_vector
from marketplace.protocol.commitment import commit_update, commitment_bytes, row_from_ints
from marketplace.protocol.constants import MAX_UPDATE_BYTES
from marketplace.protocol.envelope import OVERHEAD, EnvelopeError, UpdateOrigin
from marketplace.protocol.ordering import EMPTY_COMMITMENT, arrival_order

#: Turns the bytes of the object a submission revealed into the safetensors bytes of the update, given the
#: submission (``origin``: its trainer and round); e.g. opens an encrypted update,
#: :meth:`~marketplace.protocol.envelope.UpdateKey.open`. Raises :class:`EnvelopeError` for bytes it cannot
#: open, or sealed for another submission.
UpdateOpener = Callable[[bytes, UpdateOrigin], bytes]
#: The same for one known submission: what :func:`fetch_update` applies to the object it fetched.
ObjectOpener = Callable[[bytes], bytes]


@dataclass
class RoundInputs:
    """Everything the paying computation of one round depends on."""

    project_id: int
    round: int
    seed: int
    sketch_width: int  # K, the project's verifier's sketch width
    trainers: list[str]
    submissions: dict[str, Submission]  # revealed submissions
    commits: list[Commit]  # sealed commits: they fix the arrival order (revealed or not)
    updates: np.ndarray  # N x D float32; zero rows for trainers without a valid update
    rows: np.ndarray  # N x (K + 2) committed rows (their hashes are the commitments); zero rows if not valid
    valid: np.ndarray  # bool (N,): its row counts: a matching update, or a row published in a dispute
    rejected: dict[str, str]  # trainer -> why its submitted update is not valid (and no row was published)
    #: trainer -> why its update was rejected, for trainers that then published their committed row: the row
    #: is scored and paid like any other, the update (if any) stays out of the model
    published: dict[str, str] = field(default_factory=dict)
    #: trainer -> why its submission was shown stale on chain (``challengeStale``): also in ``rejected`` (the market
    #: treats it as a rejection nobody can dispute), never announced
    stale: dict[str, str] = field(default_factory=dict)

    @property
    def has_update(self) -> np.ndarray:
        """bool (N,): the full update is here (valid, and not only a published row): what the model averages."""
        return self.valid & ~np.array([t in self.published for t in self.trainers], dtype=bool)

    @property
    def submitted(self) -> list[bool]:
        return [t in self.submissions for t in self.trainers]

    @property
    def rejected_mask(self) -> list[bool]:
        return [t in self.rejected for t in self.trainers]

    @property
    def commitments(self) -> list[bytes]:
        return [self.submissions[t].commitment if t in self.submissions else EMPTY_COMMITMENT for t in self.trainers]

    @property
    def arrival_order(self) -> list[int]:
        """Trainer indices in arrival order, by commit (how ``finalizeRound`` hands values to the verifier)."""
        return arrival_order(self.trainers, self.commits)


def collect_round(
    market: MarketClient,
    store: ModelStore,
    project_id: int,
    round_: int,
    model_name: str,
    open_update: UpdateOpener | None = None,
) -> RoundInputs:
    """Fetches every submission of the round from IPFS and checks it: size, CID, safetensors,
    shapes/dtypes, finite values, and the committed row's Poseidon hash against the on-chain
    commitment. An update that fails any check is recorded in ``rejected`` with the reason; the
    round goes on without it.

    In an encrypted project ``open_update`` opens each fetched object first (:func:`fetch_update`), for the
    submission that revealed it; an object it cannot open (:class:`EnvelopeError`: garbage, made for another
    key, changed, of an older format) or sealed for another submission
    (:class:`~marketplace.protocol.envelope.EnvelopeOriginMismatch`: another trainer's envelope, or one of an
    earlier round, replayed) is rejected like any other bad update, and so is a plaintext that then fails a
    check.

    An update whose fetch times out while the IPFS node itself answers (:func:`node_answers`) is
    rejected too: that is what an online node does for a CID no peer serves (it searches until the
    client gives up), and a trainer that revealed such a CID would otherwise stall the round until the
    aggregation deadline, when abandoning the project pays it a share.

    Raises :class:`IpfsConnectionError` / :class:`IpfsTimeout` when the IPFS node itself does not
    answer, and :class:`NodeBusy` when it already runs all the swarm fetches it allows (for other
    clients, e.g. web visitors sharing it): that says nothing about the trainers, so nobody must be
    flagged for it."""
    spec = param_spec(model_name)
    seed = market.sketch_seed(project_id)
    k = market.sketch_width(project_id)
    trainers = market.trainers(project_id)
    subs = {s.trainer: s for s in market.submissions(project_id, round_)}
    commits = market.commits(project_id, round_)
    updates = np.zeros((len(trainers), num_params(model_name)), dtype=np.float32)
    rows = np.zeros((len(trainers), k + 2))
    valid = np.zeros(len(trainers), dtype=bool)
    rejected: dict[str, str] = {}
    where = market.round_address(project_id, round_)
    for i, trainer in enumerate(trainers):
        sub = subs.get(trainer)
        if sub is None:
            continue
        try:
            opener = None if open_update is None else _for(open_update, UpdateOrigin(where, trainer))
            vec = fetch_update(store, sub.cid, spec, opener)
        except IpfsConnectionError:
            raise  # our node is down, not the trainer's fault: never flag anyone for it; retry later
        except IpfsTimeout as exc:
            if not node_answers(store):
                raise  # our node hangs: as above
            rejected[trainer] = f"IpfsTimeout: the update did not come in time ({exc})"
            continue
        except NodeBusy:
            raise  # our node runs as many fetches as it allows for other clients: not the trainer's doing
        except (StorageError, EnvelopeError) as exc:
            rejected[trainer] = f"{type(exc).__name__}: {exc}"
            continue
        row, commitment = commit_update(vec, seed, k)
        if commitment != sub.commitment:
            rejected[trainer] = "CommitmentMismatch: the committed row of the update does not hash to its commitment"
            continue
        updates[i], rows[i], valid[i] = vec, row, True
    inputs = RoundInputs(project_id, round_, seed, k, trainers, subs, commits, updates, rows, valid, rejected)
    return apply_published_rows(inputs, market.disputed_rows(project_id, round_))


def _for(open_update: UpdateOpener, origin: UpdateOrigin) -> ObjectOpener:
    """``open_update`` for the one submission ``origin``."""
    return lambda data: open_update(data, origin)


def fetch_update(store: ModelStore, cid: str, spec: ParamSpec, open_update: ObjectOpener | None = None) -> np.ndarray:
    """The flat update at ``cid``, checked (size, CID, safetensors, names/shapes/dtypes, finite values). With
    ``open_update`` the object may be :data:`~marketplace.protocol.envelope.OVERHEAD` bytes larger and is opened
    before it is read as safetensors. Raises the :class:`StorageError` of the check that failed, or the
    opener's :class:`EnvelopeError`."""
    if open_update is None:
        return tensors_to_vector(store.get_tensors(cid, expected=spec, max_bytes=MAX_UPDATE_BYTES), spec)
    data = open_update(store.get_bytes(cid, max_bytes=MAX_UPDATE_BYTES + OVERHEAD))
    return tensors_to_vector(load_checked(data, spec, MAX_UPDATE_BYTES, framework=store.framework), spec)


class PublishedRowMismatch(ValueError):
    """A row published on chain does not hash to its trainer's commitment: the project's verifier accepted
    a row proof that proves nothing (the test verifier does), so no round proof can contain this row."""


def apply_published_rows(inputs: RoundInputs, published: list[DisputedRow]) -> RoundInputs:
    """``inputs`` with each rejected trainer's published committed row (a ``RejectionDisputed`` event of
    this round) in place of its missing row: it is scored and paid like any other row, while its update
    (if any) stays out of the model. A row is parsed as untrusted input (length, box:
    :func:`row_from_ints`) and must hash to the trainer's commitment. Idempotent; ``inputs`` is unchanged.

    Raises :class:`~marketplace.protocol.commitment.InvalidPublishedRow` or :class:`PublishedRowMismatch`
    for a row the market should not have accepted (a verifier that proves nothing)."""
    rows, valid = inputs.rows.copy(), inputs.valid.copy()
    rejected, now_published = dict(inputs.rejected), dict(inputs.published)
    for event in published:
        if event.round != inputs.round or event.trainer not in rejected:
            continue
        i = inputs.trainers.index(event.trainer)
        row = row_from_ints(event.row, inputs.sketch_width)
        if commitment_bytes(row) != inputs.submissions[event.trainer].commitment:
            raise PublishedRowMismatch(
                f"the row {event.trainer} published in round {inputs.round} does not hash to its commitment"
            )
        rows[i], valid[i] = row, True
        now_published[event.trainer] = rejected.pop(event.trainer)
    return replace(inputs, rows=rows, valid=valid, rejected=rejected, published=now_published)


def mark_stale(inputs: RoundInputs, stale: dict[str, str]) -> RoundInputs:
    """``inputs`` with each trainer of ``stale`` (shown stale on chain, with the reason) rejected: its row and update
    out of the round (a zero row, not valid), as for a rejection that stands. Idempotent; ``inputs`` is unchanged."""
    rows, valid = inputs.rows.copy(), inputs.valid.copy()
    rejected, published = dict(inputs.rejected), dict(inputs.published)
    for trainer, why in stale.items():
        i = inputs.trainers.index(trainer)
        rows[i], valid[i] = 0.0, False
        rejected[trainer] = why
        published.pop(trainer, None)
    now_stale = {**inputs.stale, **stale}
    return replace(inputs, rows=rows, valid=valid, rejected=rejected, published=published, stale=now_stale)


def node_answers(store: ModelStore) -> bool:
    """Whether the store's IPFS node answers a request that needs no content (``version``) in time: if so,
    a fetch that timed out timed out on its object, not on the node."""
    try:
        store.client.version()
    except IpfsError:
        return False
    return True
