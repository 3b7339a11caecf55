"""Exception classes of the storage layer.

Every error a fetched object can cause is a :class:`StorageError`, so a caller that runs a
round can catch that one class, record the reason and go on without the object.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by ``marketplace.adapters.ipfs``."""


# --- CIDs -----------------------------------------------------------------------------------


class InvalidCid(StorageError, ValueError):
    """A string or bytes value is not a well-formed CID."""


class UnsupportedCid(StorageError):
    """A well-formed CID this project cannot verify (other hash, codec or import profile)."""


class CidMismatch(StorageError):
    """Fetched bytes do not hash to the CID that was asked for."""


# --- IPFS RPC client ------------------------------------------------------------------------


class IpfsError(StorageError):
    """Base class of errors talking to an IPFS node's RPC API."""


class IpfsConnectionError(IpfsError):
    """The node could not be reached (after retries)."""


class IpfsTimeout(IpfsError):
    """The node did not answer in time."""


class IpfsApiError(IpfsError):
    """The node answered with an error (Kubo's ``{"Message": ..., "Type": "error"}``)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class IpfsNotFound(IpfsApiError):
    """The node does not have the object (an offline node never fetches it)."""


class ContentUnavailable(IpfsNotFound):
    """Nobody delivered the object: it is not in the node's store and no peer sent it before the
    fetch timeout (or the node is offline, or has no peer to ask). The bytes did not arrive — unlike
    :class:`CidMismatch`, where bytes arrived and are wrong."""


class NodeBusy(IpfsApiError):
    """The node refused a fetch because it already runs as many as it allows; try again later."""


class ObjectTooLarge(StorageError):
    """An object is larger than the caller's limit; detected while streaming."""


# --- model updates --------------------------------------------------------------------------


class InvalidUpdate(StorageError):
    """A model update or weights object was rejected."""


class NotSafetensors(InvalidUpdate):
    """The bytes are not a well-formed safetensors file (e.g. a pickle payload)."""


class UpdateTooLarge(InvalidUpdate):
    """The serialized update is larger than allowed."""


class WrongKeys(InvalidUpdate):
    """The update's tensor names differ from the expected ones."""


class WrongShape(InvalidUpdate):
    """A tensor has a shape other than the expected one."""


class WrongDtype(InvalidUpdate):
    """A tensor has a dtype other than the expected one."""


class NonFiniteValues(InvalidUpdate):
    """A tensor holds NaN or +/-Inf."""


class CommitmentMismatch(InvalidUpdate):
    """The update does not match its on-chain commitment."""
