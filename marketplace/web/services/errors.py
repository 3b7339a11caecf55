"""What the services raise when they cannot answer; :mod:`marketplace.web.errors` maps each to an HTTP status.

A chain node that does not answer is :class:`~marketplace.adapters.chain.errors.ChainError` (503),
raised by the chain client itself and not wrapped here.
"""

from __future__ import annotations


class NotFound(LookupError):
    """An unknown project, round, transaction or model, or a malformed address (404)."""


class Rejected(ValueError):
    """The chain would reject what the user asks for; the decoded reason is the message (422)."""


class Conflict(Rejected):
    """The project's current state does not allow it: still running, nothing to withdraw, too early (409)."""


class InvalidInput(ValueError):
    """A request the service cannot act on as given (422); ``errors`` maps fields to messages."""

    def __init__(self, detail: str, errors: dict[str, str]) -> None:
        super().__init__(detail)
        self.errors = errors


class Unavailable(Exception):
    """A service this server depends on (the IPFS node) is not configured or does not answer (503)."""
