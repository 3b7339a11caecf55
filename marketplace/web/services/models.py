"""Model architectures a job can use, and their initial weights: built (seeded) and pinned to the
server's IPFS node, so that a job can be posted without training anything first, and given a model card (what is
being trained: :mod:`marketplace.protocol.model_card`) in their header. Anyone may ask, without a wallet: what is
pinned is bounded in size and rate (:mod:`~marketplace.web.services.pin_limits`). The same model and seed make
the same bytes, so the same CID: asking again for weights the server pinned (and its node still holds pinned) is
answered with their CID, without building or pinning anything, and does not count against the limits again.

The architectures come from :mod:`marketplace.fl.models`, which pulls in torch (seconds to import):
it is imported when first needed, not when this module is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from marketplace.adapters.ipfs.cid import normalize_cid
from marketplace.adapters.ipfs.errors import InvalidUpdate, ObjectTooLarge, StorageError, UpdateTooLarge
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import load_checked
from marketplace.protocol.model_card import ModelCard, card_metadata
from marketplace.web.schemas import ModelInfo, ModelInit
from marketplace.web.services.errors import InvalidInput, NotFound, Unavailable
from marketplace.web.services.ipfs_fetches import WebFetches
from marketplace.web.services.pin_limits import PinLimiter

NO_IPFS = (
    "this server has no IPFS API configured (start it with --ipfs-api or MARKETPLACE_IPFS_API, or run "
    "`marketplace ipfs up`); pin initial weights yourself and paste their CID"
)
#: Pins remembered (model and seed -> CID) at most, the least recently asked for forgotten first.
MAX_REMEMBERED_PINS = 4096
NO_IPFS_CARD = (
    "this server has no IPFS API configured, so it cannot add a model card to the initial weights: leave the card "
    "empty, or pin weights that carry one yourself and paste their CID"
)


@lru_cache(maxsize=1)
def model_registry() -> dict[str, str]:
    """Registered architectures (name -> description), sorted by name."""
    from marketplace.fl.models import REGISTRY  # lazy: torch (see the module docstring)

    return {name: arch.description for name, arch in sorted(REGISTRY.items())}


class ModelService:
    """The registered architectures, and initial weights pinned to the IPFS node at ``ipfs_api`` (if any)."""

    def __init__(
        self,
        registry: dict[str, str],
        ipfs_api: str | None,
        timeout: float = 30.0,
        limiter: PinLimiter | None = None,
        max_bytes: int = 64 << 20,
    ) -> None:
        self.registry = registry
        self.ipfs_api = ipfs_api
        self.timeout = timeout
        self.limiter = limiter if limiter is not None else PinLimiter(per_client=20, total=200)
        self.max_bytes = max_bytes
        self._pinned: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._asking: dict[tuple[str, int], tuple[threading.Lock, int]] = {}
        self._mutex = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.registry)

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=k, description=v) for k, v in self.registry.items()]

    def init(self, name: str, seed: int = 0, client: str = "") -> ModelInit:
        """Builds registered model ``name`` with ``seed`` and pins its state dict for ``client``; its CID. Weights
        this service pinned already and the node still holds pinned are answered at once, not counted again
        (identical asks at the same time wait for the first).

        :class:`NotFound` for an unknown model, :class:`Unavailable` without an IPFS node or when it fails,
        :class:`InvalidInput` for weights over ``max_bytes``, :class:`TooManyRequests` past the limiter's limits.
        """
        if name not in self.registry:
            raise NotFound(f"There is no model {name!r}; the models are {', '.join(self.registry)}.")
        if self.ipfs_api is None:
            raise Unavailable(NO_IPFS)
        from marketplace.fl.models import build_model, num_params  # lazy: torch (see the module docstring)

        size = 4 * num_params(name)  # float32
        if size > self.max_bytes:
            detail = (
                f"The {name} weights are {size:,} bytes, more than this server pins for anyone ({self.max_bytes:,} "
                "bytes): pin them yourself and paste their CID."
            )
            raise InvalidInput(detail, {"name": f"is a model whose weights are too large to pin here ({size:,} bytes)"})
        key = (name, seed)
        with self._one_at_a_time(key):
            cid = self._still_pinned(key)
            if cid is None:
                self.limiter.take(client)
                state = build_model(name, seed=seed).state_dict()
                try:
                    with IpfsClient(self.ipfs_api, timeout=self.timeout, retries=1) as ipfs:
                        cid = ModelStore(ipfs).put_tensors(state, {"kind": "model", "model": name, "seed": str(seed)})
                except StorageError as exc:
                    raise Unavailable(f"the IPFS node at {self.ipfs_api} did not take the weights: {exc}") from None
                self._remember(key, cid)
        return ModelInit(cid=cid, model=name, params=num_params(name), seed=seed)

    def _still_pinned(self, key: tuple[str, int]) -> str | None:
        """The CID this service pinned for ``key``, if the node still holds it pinned (else it is forgotten)."""
        with self._mutex:
            cid = self._pinned.get(key)
        if cid is None or self.ipfs_api is None:
            return None
        try:
            with IpfsClient(self.ipfs_api, timeout=self.timeout, retries=1) as ipfs:
                pinned = ipfs.is_pinned(cid)
        except StorageError as exc:
            raise Unavailable(f"the IPFS node at {self.ipfs_api} did not answer: {exc}") from None
        with self._mutex:
            if pinned:
                self._pinned.move_to_end(key)
            else:
                self._pinned.pop(key, None)
        return cid if pinned else None

    def _remember(self, key: tuple[str, int], cid: str) -> None:
        with self._mutex:
            self._pinned[key] = cid
            while len(self._pinned) > MAX_REMEMBERED_PINS:
                self._pinned.popitem(last=False)

    @contextmanager
    def _one_at_a_time(self, key: tuple[str, int]) -> Iterator[None]:
        """Holds the lock of ``key`` (made on first use, dropped when nobody holds or waits for it)."""
        with self._mutex:
            lock, users = self._asking.get(key, (threading.Lock(), 0))
            self._asking[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._mutex:
                lock, users = self._asking[key]
                if users == 1:
                    del self._asking[key]
                else:
                    self._asking[key] = (lock, users - 1)

    def describe(self, cid: str, card: ModelCard, client: str, fetches: WebFetches) -> str:
        """The CID of the initial weights at ``cid`` with ``card`` in their safetensors header (the rest of their
        metadata and every tensor unchanged), pinned to the server's IPFS node for ``client`` unless that is
        ``cid`` itself (they already carry this card). The contract keeps only this CID: the card travels with the
        weights. The weights are fetched through ``fetches`` (cached and bounded like every IPFS fetch a visitor
        starts: the CID is the visitor's choice).

        :class:`Unavailable` without an IPFS node; :class:`InvalidInput` naming ``initial_model_cid`` when the node
        does not deliver the weights, they are larger than ``max_bytes`` or not safetensors weights;
        :class:`TooManyRequests` past the limiter's limits.
        """
        if self.ipfs_api is None:
            raise Unavailable(NO_IPFS_CARD)
        field = "initial_model_cid"
        self.limiter.check(client)  # refused before fetching, loading and re-serializing anything
        try:
            data = fetches.get_bytes(normalize_cid(cid), self.max_bytes, client)
            weights = load_checked(data, None, self.max_bytes, framework="torch")
        except (ObjectTooLarge, UpdateTooLarge):
            words = f"holds weights larger than this server reads to add a model card ({self.max_bytes:,} bytes)"
            raise InvalidInput(f"The initial weights {words}.", {field: words}) from None
        except InvalidUpdate as exc:
            words = f"does not hold safetensors weights a model card can be added to ({exc})"
            raise InvalidInput(f"The initial weights CID {words}.", {field: words}) from None
        except (StorageError, Unavailable) as exc:
            words = f"could not be fetched from this server's IPFS node to add the model card ({exc})"
            raise InvalidInput(f"The initial weights CID {words}.", {field: words}) from None
        try:
            with IpfsClient(self.ipfs_api, timeout=self.timeout, retries=1) as ipfs:
                store = ModelStore(ipfs, max_bytes=self.max_bytes, framework="torch")
                data, described = store.prepare_tensors(weights.tensors, {**weights.metadata, **card_metadata(card)})
                if described != normalize_cid(cid):
                    self.limiter.take(client)
                    store.publish(data, described)
        except StorageError as exc:
            raise Unavailable(f"the IPFS node at {self.ipfs_api} did not take the weights: {exc}") from None
        return described
