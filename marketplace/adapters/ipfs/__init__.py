"""Storage layer: a local IPFS node, a Kubo RPC client, CID checks and safetensors model updates.

Public API::

    LocalIpfsNode(repo, options=NodeOptions(peers=[...]))  # start/stop the project's embedded-Kubo node
    IpfsClient(api_url)                    # add / cat / pin_* / id / version / swarm_* over the Kubo RPC API
    ModelStore(client)                     # put_tensors / get_tensors
    compute_cid, verify_cid, parse_cid     # CIDs in pure Python
    dumps, load_checked                    # safetensors (never pickle)
"""

from marketplace.adapters.ipfs.cid import compute_cid, normalize_cid, parse_cid, verify_cid
from marketplace.adapters.ipfs.errors import (
    CidMismatch,
    CommitmentMismatch,
    ContentUnavailable,
    InvalidCid,
    InvalidUpdate,
    IpfsApiError,
    IpfsConnectionError,
    IpfsError,
    IpfsNotFound,
    IpfsTimeout,
    NodeBusy,
    NonFiniteValues,
    NotSafetensors,
    ObjectTooLarge,
    StorageError,
    UnsupportedCid,
    UpdateTooLarge,
    WrongDtype,
    WrongKeys,
    WrongShape,
)
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode, NodeStartError, resolve_api_url
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import TensorBundle, dumps, load_checked

__all__ = [
    "CidMismatch",
    "CommitmentMismatch",
    "ContentUnavailable",
    "InvalidCid",
    "InvalidUpdate",
    "IpfsApiError",
    "IpfsClient",
    "IpfsConnectionError",
    "IpfsError",
    "IpfsNotFound",
    "IpfsTimeout",
    "LocalIpfsNode",
    "ModelStore",
    "NodeBusy",
    "NodeStartError",
    "NonFiniteValues",
    "NotSafetensors",
    "ObjectTooLarge",
    "StorageError",
    "TensorBundle",
    "UnsupportedCid",
    "UpdateTooLarge",
    "WrongDtype",
    "WrongKeys",
    "WrongShape",
    "compute_cid",
    "dumps",
    "load_checked",
    "normalize_cid",
    "parse_cid",
    "resolve_api_url",
    "verify_cid",
]
