"""Model weights and updates on IPFS: put (add + pin) and checked get, per object."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping
from typing import Any

from marketplace.adapters.ipfs.cid import compute_cid, normalize_cid, verify_cid
from marketplace.adapters.ipfs.errors import CidMismatch
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.tensors import DEFAULT_MAX_BYTES, Expected, TensorBundle, dumps, load_checked

log = logging.getLogger(__name__)
CommitmentCheck = Callable[[Any, TensorBundle], bool]

#: Objects at least this large trigger a young-generation garbage collection after their CID check.
COLLECT_ABOVE_BYTES = 1 << 20


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

    def prepare_tensors(
        self, tensors: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> tuple[bytes, str]:
        """The safetensors bytes of ``tensors`` and the CID this node will give them, without adding them
        (nothing is published: e.g. to commit to an object before anyone can fetch it)."""
        data = dumps(tensors, metadata)
        return data, compute_cid(data, self.client.profile)

    def publish(self, data: bytes, cid: str) -> None:
        """Adds and pins ``data`` prepared by :meth:`prepare_tensors`; :class:`CidMismatch` if the node
        names it differently (the CID was already committed to)."""
        got = self.put_bytes(data, name="update.safetensors")
        if got != normalize_cid(cid):
            raise CidMismatch(f"the node added the object as {got}, not as the committed {cid}")

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
