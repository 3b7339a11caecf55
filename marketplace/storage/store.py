"""Model weights and updates on IPFS: put (add + pin) and checked get, per object or per round."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from marketplace.storage.cid import normalize_cid, verify_cid
from marketplace.storage.errors import CommitmentMismatch, StorageError
from marketplace.storage.ipfs import IpfsClient
from marketplace.storage.tensors import DEFAULT_MAX_BYTES, Expected, TensorBundle, dumps, load_checked

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
CommitmentCheck = Callable[[Any, TensorBundle], bool]

#: Objects at least this large trigger a young-generation garbage collection after their CID check.
COLLECT_ABOVE_BYTES = 1 << 20


@dataclass
class FetchResult(Generic[K]):
    """Outcome of :meth:`ModelStore.fetch_updates`: the accepted updates and why others were not."""

    ok: dict[K, TensorBundle] = field(default_factory=dict)
    rejected: dict[K, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[dict[Any, Any]]:
        """Unpack as ``ok, rejected = store.fetch_updates(...)``."""
        return iter((self.ok, self.rejected))


class ModelStore:
    """Store and fetch safetensors objects through an IPFS node.

    Every fetched object is checked, in order: size (while streaming), CID (the bytes must hash to
    the CID asked for), safetensors format, names/shapes/dtypes, finite values and, if given, the
    caller's on-chain commitment check.
    """

    def __init__(self, client: IpfsClient, *, max_bytes: int = DEFAULT_MAX_BYTES, framework: str = "numpy") -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.framework = framework

    def put_bytes(self, data: bytes, name: str = "object") -> str:
        """Add and pin raw bytes; returns the CID."""
        return self.client.add(data, name=name, pin=True)

    def put_tensors(self, tensors: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> str:
        """Serialize ``tensors`` (numpy or torch) to safetensors with ``metadata``, add and pin; returns the CID."""
        return self.put_bytes(dumps(tensors, metadata), name="update.safetensors")

    def get_bytes(self, cid: str, max_bytes: int | None = None) -> bytes:
        """Fetch ``cid`` (at most ``max_bytes``) and check the bytes against the CID."""
        cid = normalize_cid(cid)
        data = self.client.cat(cid, max_bytes=self.max_bytes if max_bytes is None else max_bytes)
        verify_cid(data, cid)
        if len(data) >= COLLECT_ABOVE_BYTES:
            # multiformats' CID parsing raises and catches exceptions internally (typing_validation);
            # the traceback cycles this leaves reach the callers' frames through ``f_back``, which
            # would then keep every fetched object alive until the cyclic GC's next generation-1
            # pass (+0.5 GB for 32 updates of 1e7 parameters). The cycles are young: free them now.
            gc.collect(1)
        return data

    def get_tensors(self, cid: str, expected: Expected | None = None, max_bytes: int | None = None) -> TensorBundle:
        """Fetch, verify and load a safetensors object; raises a :class:`StorageError` subclass if rejected."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        cid = normalize_cid(cid)  # before any data is held here (see get_bytes)
        bundle = load_checked(self.get_bytes(cid, limit), expected, limit, framework=self.framework)
        bundle.cid = cid
        return bundle

    def fetch_updates(
        self,
        cids: Mapping[K, str],
        expected: Expected | None = None,
        max_bytes: int | None = None,
        commitment_check: CommitmentCheck | None = None,
    ) -> FetchResult[K]:
        """Fetch one update per key (e.g. per trainer); keep the good ones, report the others.

        ``commitment_check(key, bundle)`` must return True when the update matches the key's
        on-chain commitment; ``bundle`` is a mapping of tensor name to array with ``.metadata``,
        ``.cid`` and ``.nbytes``. A rejected update never stops the round: its reason is recorded
        in ``rejected`` and the next key is fetched.
        """
        result: FetchResult[K] = FetchResult()
        for key, cid in cids.items():
            try:
                bundle = self.get_tensors(cid, expected, max_bytes)
                if commitment_check is not None:
                    try:
                        matches = commitment_check(key, bundle)
                    except Exception as exc:
                        raise CommitmentMismatch(f"commitment check failed: {type(exc).__name__}: {exc}") from exc
                    if not matches:
                        raise CommitmentMismatch(f"update {bundle.cid} does not match its on-chain commitment")
                result.ok[key] = bundle
            except StorageError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("rejected update of %r (%s): %s", key, cid, reason)
                result.rejected[key] = reason
        return result
