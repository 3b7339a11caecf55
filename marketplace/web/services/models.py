"""Model architectures a job can use, and their initial weights: built (seeded) and pinned to the
server's IPFS node, so that a job can be posted without training anything first, and given a model card (what is
being trained: :mod:`marketplace.protocol.model_card`) in their header. Anyone may ask, without a wallet: what is
pinned is bounded in size and rate (:mod:`~marketplace.web.services.pin_limits`).

The architectures come from :mod:`marketplace.fl.models`, which pulls in torch (seconds to import):
it is imported when first needed, not when this module is.
"""

from __future__ import annotations

from functools import lru_cache

from marketplace.adapters.ipfs.cid import normalize_cid
from marketplace.adapters.ipfs.errors import InvalidUpdate, ObjectTooLarge, StorageError, UpdateTooLarge
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.protocol.model_card import ModelCard, card_metadata
from marketplace.web.schemas import ModelInfo, ModelInit
from marketplace.web.services.errors import InvalidInput, NotFound, Unavailable
from marketplace.web.services.pin_limits import PinLimiter

NO_IPFS = (
    "this server has no IPFS API configured (start it with --ipfs-api or MARKETPLACE_IPFS_API, or run "
    "`marketplace ipfs up`); pin initial weights yourself and paste their CID"
)
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

    @property
    def names(self) -> list[str]:
        return list(self.registry)

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=k, description=v) for k, v in self.registry.items()]

    def init(self, name: str, seed: int = 0, client: str = "") -> ModelInit:
        """Builds registered model ``name`` with ``seed`` and pins its state dict for ``client``; its CID.

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
        self.limiter.take(client)

        state = build_model(name, seed=seed).state_dict()
        try:
            with IpfsClient(self.ipfs_api, timeout=self.timeout, retries=1) as client:
                cid = ModelStore(client).put_tensors(state, {"kind": "model", "model": name, "seed": str(seed)})
        except StorageError as exc:
            raise Unavailable(f"the IPFS node at {self.ipfs_api} did not take the weights: {exc}") from None
        return ModelInit(cid=cid, model=name, params=num_params(name), seed=seed)

    def describe(self, cid: str, card: ModelCard, client: str = "") -> str:
        """The CID of the initial weights at ``cid`` with ``card`` in their safetensors header (the rest of their
        metadata and every tensor unchanged), pinned to the server's IPFS node for ``client`` unless that is
        ``cid`` itself (they already carry this card). The contract keeps only this CID: the card travels with the
        weights.

        :class:`Unavailable` without an IPFS node; :class:`InvalidInput` naming ``initial_model_cid`` when the node
        does not deliver the weights, they are larger than ``max_bytes`` or not safetensors weights;
        :class:`TooManyRequests` past the limiter's limits.
        """
        if self.ipfs_api is None:
            raise Unavailable(NO_IPFS_CARD)
        field = "initial_model_cid"
        try:
            with IpfsClient(self.ipfs_api, timeout=self.timeout, retries=1) as ipfs:
                store = ModelStore(ipfs, max_bytes=self.max_bytes, framework="torch")
                weights = store.get_tensors(cid)
                data, described = store.prepare_tensors(weights.tensors, {**weights.metadata, **card_metadata(card)})
                if described != normalize_cid(cid):
                    self.limiter.take(client)
                    store.publish(data, described)
        except (ObjectTooLarge, UpdateTooLarge):
            words = f"holds weights larger than this server reads to add a model card ({self.max_bytes:,} bytes)"
            raise InvalidInput(f"The initial weights {words}.", {field: words}) from None
        except InvalidUpdate as exc:
            words = f"does not hold safetensors weights a model card can be added to ({exc})"
            raise InvalidInput(f"The initial weights CID {words}.", {field: words}) from None
        except StorageError as exc:
            words = f"could not be fetched from this server's IPFS node to add the model card ({exc})"
            raise InvalidInput(f"The initial weights CID {words}.", {field: words}) from None
        return described
