"""What the services raise when they cannot answer; :mod:`marketplace.web.errors` maps each to an HTTP status
and an answer in words.

A chain node that does not answer is :class:`~marketplace.adapters.chain.errors.ChainError` (503),
raised by the chain client itself and not wrapped here.
"""

from __future__ import annotations


class NotFound(LookupError):
    """An unknown project, round, transaction or model, or a malformed address (404)."""


class Rejected(ValueError):
    """The chain would refuse what the user asks for (422). The message is the whole sentence ("The chain would
    refuse to join project 3: ..."); ``sentence`` its reason alone, ``code`` the contract's custom error (for
    programs), ``field`` the field of the request at fault, if one is."""

    def __init__(
        self, detail: str, *, code: str | None = None, field: str | None = None, sentence: str | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.sentence = sentence


class Conflict(Rejected):
    """The project's current state does not allow it: still running, nothing to withdraw, too early (409)."""


class InvalidInput(ValueError):
    """A request the service cannot act on as given (422); ``errors`` maps fields to sentences that follow the
    field's name ("must be a whole number"), ``field`` is the first of them."""

    code = "InvalidInput"

    def __init__(self, detail: str, errors: dict[str, str]) -> None:
        super().__init__(detail)
        self.errors = errors
        self.field = next((name for name in errors if name), None)


class TooManyRequests(Exception):
    """A client asked for more than the server does for one client (429); ``retry_after``: seconds to wait."""

    code = "TooManyRequests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(Exception):
    """A service this server depends on (the IPFS node) is not configured or does not answer, or this server does
    not ask it now (503); ``retry_after``: seconds to wait, when the server knows."""

    code = "Unavailable"

    def __init__(self, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
