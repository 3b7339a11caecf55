"""The one mapping from errors to what people read: HTTP answers, and sentences for the contracts' custom errors
and for invalid input.

**Answers.** Under ``/api`` a JSON :class:`~marketplace.web.schemas.Problem` ``{"detail": sentence, "code":
name, "field": field, "errors": {field: sentence}}``, elsewhere the error page, with the same status:

* 400: a request body that is not UTF-8 JSON;
* 404: :class:`NotFound` (unknown project, round, transaction, model; a malformed address), and no such page;
* 409: :class:`Conflict` (the project's state does not allow the transaction now: still running, nothing to
  withdraw, deadline not passed);
* 422: :class:`Rejected` (the chain would refuse the transaction), :class:`InvalidInput` (bad input, per field:
  the job form's :class:`~marketplace.web.forms.FormErrors` among them) and request validation errors;
* 429: :class:`TooManyRequests` (a client asked for more than this server does for it; ``Retry-After`` says when
  to try again);
* 503: :class:`~marketplace.adapters.chain.errors.ChainError` (the chain node does not answer) and
  :class:`Unavailable` (the IPFS node does not answer or is not configured, or this server does not ask it now:
  :mod:`~marketplace.web.services.ipfs_fetches`; ``Retry-After`` when it says when to ask again);
* 500: anything else, logged; the answer says nothing about it.

Every message is passed through :func:`~marketplace.adapters.chain.redact.redact_urls` first: an unreachable RPC
endpoint is named in the error, and its URL may carry the provider's API key.

**Custom errors.** :data:`CUSTOM_ERRORS` gives every custom error of the contracts' ABIs (a test checks each one
has an entry) a sentence made of its arguments and of what was attempted (:class:`Attempt`), the field of a new
project's config it is about (``createProject``), and whether it means "not now" (409) rather than "not so"
(422). :func:`refusal` puts any revert, and any JSON-RPC error answer of a simulation, in words: the raw
``WrongStatus(projectId=1, expected=0, actual=2)`` or ``{'code': -32003, ...}`` never reaches people (the
custom error's name is the answer's ``code``, for programs).

**Invalid input.** :func:`invalid_value` puts a validation error in words that follow the field's name
("must be a whole number", "must be at most 4,294,967,295"): the validation library's own wording never reaches
people either.

:data:`API_ERRORS`, :data:`BAD_BODY`, :data:`CONFLICT` and :data:`RATE_LIMITED` document these answers in the
OpenAPI schema.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from web3.exceptions import Web3RPCError

from marketplace.adapters.chain.errors import ChainError, ContractRevert
from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, ProjectStatus
from marketplace.adapters.chain.redact import redact_urls
from marketplace.web.filters import bps, when
from marketplace.web.schemas import Problem, eth
from marketplace.web.services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Rejected,
    TooManyRequests,
    Unavailable,
)
from marketplace.web.services.track_records import PER_GUARANTEED_TRAINER, WHY_EARNED
from marketplace.web.templating import Page

log = logging.getLogger(__name__)

API_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown project, round, transaction or address"},
    422: {"model": Problem, "description": "Invalid input (`field` names it), or the chain would refuse it (`code`)"},
    503: {"model": Problem, "description": "The chain node (or IPFS node) does not answer or is not configured"},
}
#: Operations with a JSON body: a body that is not UTF-8 JSON cannot even be parsed.
BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request body is not UTF-8 JSON"},
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "The project's state does not allow it now (running, nothing owed, too early): `code` is the "
        "contract's custom error",
    },
}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": Problem,
        "description": "This client asked for more than the server does per client and hour; the Retry-After header "
        "says in how many seconds it may ask again",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}

#: What the services and the job form raise: status and the error page's title (a class's nearest listed base
#: decides: a Conflict is a Rejected, the job form's FormErrors an InvalidInput).
STATUS: dict[type[Exception], tuple[int, str]] = {
    NotFound: (404, "Not found"),
    Conflict: (409, "Not now"),
    Rejected: (422, "Refused"),
    InvalidInput: (422, "Please check what you entered"),
    TooManyRequests: (429, "Too many requests"),
    Unavailable: (503, "Unavailable"),
}


# ---------------------------------------------------------------------------- custom errors in words

Args = Mapping[str, Any]


@dataclass(frozen=True)
class Attempt:
    """What someone tried, for the sentences: ``what`` completes "The chain would refuse to …" ("join project 3",
    "create this project"); ``project_id`` is the project it is about, if any."""

    what: str
    project_id: int | None = None


@dataclass(frozen=True)
class Words:
    """A custom error in words: ``say`` makes the sentence of its arguments and the attempt; ``field`` is the
    field of a new project's config (``ProjectConfig``) at fault, fixed or from the arguments; ``conflict``: the
    project's state or the time does not allow it now (409), rather than the request or the sender (422)."""

    say: Callable[[Args, Attempt], str]
    field: str | Callable[[Args], str | None] | None = None
    conflict: bool = False

    def field_of(self, args: Args) -> str | None:
        return self.field(args) if callable(self.field) else self.field


def _status(value: Any) -> str:
    try:
        return ProjectStatus(int(value)).label
    except (ValueError, TypeError):
        return f"in state {value}"


def _round(a: Args) -> str:
    return f"round {a['round']} of project {a['projectId']}"


def _listing(a: Args) -> str:
    return ", ".join(f"{v} {k}" for k, v in a.items())


#: ``InvalidConfig(reason)`` of ``createProject``: the config field at fault and what it must be.
CONFIG_REASONS: dict[str, tuple[str | None, str]] = {
    "budget": ("reward_budget", "the reward budget must be more than 0 and fit the market's 96-bit amounts"),
    "rounds": ("rounds", "the number of rounds must be from 1 to 1,000"),
    "trainers": ("min_trainers", "the minimum trainers must be from 1 to the maximum, and the maximum at most 64"),
    "bps": ("min_reliability_bps", "the minimum reliability and the slash must be from 0 to 100 %"),
    "periods": (
        "submission_period",
        "the join period must be longer than 0 and end before 2106 (the market's 32-bit deadline), and the commit, "
        "reveal and aggregation periods at least 5 minutes",
    ),
    "modelName": ("model_name", "the model name must not be empty"),
}


def _config_reason(a: Args) -> tuple[str | None, str]:
    """The field and the words of ``InvalidConfig(reason)`` (:data:`CONFIG_REASONS`)."""
    return CONFIG_REASONS.get(str(a["reason"]), (None, f"the project's settings are invalid ({a['reason']})"))


#: Every custom error of the contracts, in words (see the module docstring).
CUSTOM_ERRORS: dict[str, Words] = {
    # ---- TrainingMarket: creating a project
    "ZeroAddress": Words(
        lambda a, t: "the aggregator is the zero address (0x0000…0000), which nobody controls: name a real account",
        field="aggregator",
    ),
    "VerifierNotApproved": Words(
        lambda a, t: f"{a['verifier']} is not a verifier the market admin approved: choose one of the approved ones",
        field="verifier",
    ),
    "InvalidConfig": Words(lambda a, t: _config_reason(a)[1], field=lambda a: _config_reason(a)[0]),
    "InvalidCid": Words(
        lambda a, t: "the initial weights CID must be 1 to 128 letters and digits (a CID such as bafy… or Qm…)",
        field="initial_model_cid",
    ),
    "ModelNameTooLong": Words(
        lambda a, t: f"the model name is {a['length']} bytes long; the market takes at most {a['maxLength']} bytes",
        field="model_name",
    ),
    "InvalidModelName": Words(
        lambda a, t: "the model name may hold only letters, digits and the characters _ - .",
        field="model_name",
    ),
    "VerifierTooSmall": Words(
        lambda a, t: (
            f"the verifier proves rounds of at most {a['verifierMaxTrainers']} trainers and this job allows "
            f"{a['maxTrainers']}: choose a larger verifier or fewer trainers"
        ),
        field="max_trainers",
    ),
    # ---- a project's state and its members
    "UnknownProject": Words(lambda a, t: f"project {a['projectId']} does not exist"),
    "WrongStatus": Words(
        lambda a, t: (
            f"project {a['projectId']} is {_status(a['actual'])}, and that is possible only while it is "
            f"{_status(a['expected'])}"
        ),
        conflict=True,
    ),
    "JoinClosed": Words(
        lambda a, t: f"joining project {a['projectId']} closed at {when(int(a['joinDeadline']))}", conflict=True
    ),
    "AlreadyJoined": Words(lambda a, t: f"{a['trainer']} already joined project {a['projectId']}"),
    "RoleConflict": Words(
        lambda a, t: f"{a['account']} is the project's owner or aggregator, and may not also train in it"
    ),
    "WrongStake": Words(
        lambda a, t: f"the stake must be exactly {eth(int(a['expected']))} ETH, and {eth(int(a['sent']))} ETH was sent"
    ),
    "ReliabilityTooLow": Words(
        lambda a, t: (
            f"{a['trainer']} has a reliability of {bps(int(a['reliabilityBps']))}, and "
            f"{_project(t)} requires at least {bps(int(a['requiredBps']))}"
        )
    ),
    "NotEnoughTrainers": Words(
        lambda a, t: f"only {a['joined']} of the {a['required']} required trainers joined", conflict=True
    ),
    "NotAllowedYet": Words(lambda a, t: f"not allowed yet: possible from {when(int(a['notBefore']))}", conflict=True),
    "Unauthorized": Words(lambda a, t: f"{a['caller']} may not {t.what} now"),
    "NotATrainer": Words(lambda a, t: f"{a['caller']} is not a trainer of project {a['projectId']}"),
    "NothingToWithdraw": Words(
        lambda a, t: (
            f"nothing to withdraw: project {a['projectId']} owes {a['account']} nothing (not a participant, or "
            "already withdrawn)"
        ),
        conflict=True,
    ),
    "TransferFailed": Words(lambda a, t: f"sending {eth(int(a['amount']))} ETH to {a['to']} failed"),
    # ---- rejection bonds
    "WrongBond": Words(
        lambda a, t: (
            f"announcing these rejections takes a bond of exactly {eth(int(a['expected']))} ETH (the market's bond "
            f"per rejected trainer), and {eth(int(a['sent']))} ETH was sent"
        )
    ),
    "BondsStillAtStake": Words(
        lambda a, t: (
            f"the bonds of {_round(a)} come back only after its dispute window, open until {when(int(a['deadline']))}"
        ),
        conflict=True,
    ),
    "NoBondsHeld": Words(
        lambda a, t: f"no rejection bond is held for {_round(a)} (none was posted, or it was returned already)",
        conflict=True,
    ),
    "NoBondToWithdraw": Words(lambda a, t: f"no rejection bond is credited to {a['account']}", conflict=True),
    # ---- rounds: commit, reveal, rejections and disputes, finalization
    "WrongRound": Words(
        lambda a, t: f"round {a['given']} is not the open round of project {a['projectId']} ({a['expected']} is)",
        conflict=True,
    ),
    "SubmissionClosed": Words(
        lambda a, t: f"the commit phase of {_round(a)} closed at {when(int(a['deadline']))}", conflict=True
    ),
    "AlreadySubmitted": Words(lambda a, t: f"{a['trainer']} already revealed its update in {_round(a)}"),
    "AlreadyCommitted": Words(lambda a, t: f"{a['trainer']} already committed in {_round(a)}"),
    "NotCommitted": Words(lambda a, t: f"{a['trainer']} did not commit in {_round(a)}, so it has nothing to reveal"),
    "RevealNotOpen": Words(
        lambda a, t: f"the reveal phase of {_round(a)} opens at {when(int(a['opensAt']))}", conflict=True
    ),
    "RevealClosed": Words(
        lambda a, t: f"the reveal phase of {_round(a)} closed at {when(int(a['deadline']))}", conflict=True
    ),
    "SealMismatch": Words(
        lambda a, t: f"what {a['trainer']} revealed does not match the seal it committed in {_round(a)}"
    ),
    "NothingRevealed": Words(
        lambda a, t: (
            f"no opening in the batch revealed anything in {_round(a)}: each trainer in it already "
            "revealed, did not commit, or its opening does not open its seal"
        ),
        conflict=True,
    ),
    "NothingCommitted": Words(
        lambda a, t: (
            f"no signed commit in the batch committed anything in {_round(a)}: each trainer in it already "
            "committed, is not a member, or its signature is not its own"
        ),
        conflict=True,
    ),
    "ZeroSeal": Words(lambda a, t: "the seal is empty (all zeros)"),
    "NoteTooLong": Words(lambda a, t: f"the note is {a['length']} bytes long; at most {a['maxLength']} bytes"),
    "ZeroCommitment": Words(lambda a, t: "the commitment is empty (all zeros)"),
    "CommitmentNotAccepted": Words(
        lambda a, t: f"the project's verifier does not accept the commitment 0x{bytes(a['commitment']).hex()}"
    ),
    "RoundStillOpen": Words(
        lambda a, t: f"{_round(a)} is still open: reveals run until {when(int(a['revealDeadline']))}", conflict=True
    ),
    "AggregationDeadlinePassed": Words(
        lambda a, t: (
            f"the aggregation deadline of {_round(a)} passed at {when(int(a['deadline']))}: anyone may abandon "
            "the project now"
        ),
        conflict=True,
    ),
    "LengthMismatch": Words(lambda a, t: f"the lists do not have one entry per trainer ({_listing(a)})"),
    "TrainerListMismatch": Words(
        lambda a, t: f"the trainers listed are not project {a['projectId']}'s trainer list (at entry {a['index']})"
    ),
    "InvalidRejection": Words(
        lambda a, t: f"the submission of {a['trainer']} in {_round(a)} cannot be rejected (none, or not announced)"
    ),
    "RejectionsAlreadyAnnounced": Words(
        lambda a, t: f"the rejections of {_round(a)} were announced already", conflict=True
    ),
    "NotRejected": Words(
        lambda a, t: (
            f"the submission of {a['trainer']} in {_round(a)} was not announced as rejected: nothing to dispute"
        )
    ),
    "DisputeClosed": Words(
        lambda a, t: f"the dispute window of {_round(a)} closed at {when(int(a['deadline']))}", conflict=True
    ),
    "DisputeWindowOpen": Words(
        lambda a, t: f"{_round(a)} cannot be finalized before its dispute window closes at {when(int(a['deadline']))}",
        conflict=True,
    ),
    "InvalidRowLength": Words(
        lambda a, t: f"the published row has {a['length']} values where {a['expected']} are expected"
    ),
    "InvalidRowValue": Words(lambda a, t: f"value {a['index']} of the published row ({a['value']}) is out of range"),
    "InvalidRowProof": Words(
        lambda a, t: f"the row {a['trainer']} published does not match its commitment in {_round(a)}"
    ),
    "RowAlreadyPublished": Words(
        lambda a, t: (
            f"the row behind commitment 0x{bytes(a['commitment']).hex()} was published on chain in {_round(a)} "
            "already (a dispute or the owner's reference): it cannot be published again in a later round of the "
            "project, so the rejection of a submission committed to it stands"
        )
    ),
    # ---- stale challenges
    "AlreadyShownStale": Words(
        lambda a, t: (
            f"{a['trainer']}'s submission in {_round(a)} was shown stale already: it cannot be disputed or "
            "challenged again"
        ),
        conflict=True,
    ),
    "ChallengeClosed": Words(
        lambda a, t: (
            f"{_round(a)} can no longer be challenged: its aggregation deadline passed at {when(int(a['deadline']))}"
        ),
        conflict=True,
    ),
    "ChallengeWindowOpen": Words(
        lambda a, t: (
            f"{_round(a)} cannot be finalized before {when(int(a['until']))}: anyone may still show a "
            "revealed row stale until then"
        ),
        conflict=True,
    ),
    "NotAnEarlierRound": Words(
        lambda a, t: (
            f"round {a['earlierRound']} is not earlier than {_round(a)}: only an earlier round's row can show a replay"
        )
    ),
    "RoundCommitmentsMismatch": Words(
        lambda a, t: (
            f"the commitments given for round {a['earlierRound']} of project {a['projectId']} are not the ones "
            f"recorded at its finalization (recorded 0x{bytes(a['recorded']).hex()}, given 0x{bytes(a['given']).hex()})"
        )
    ),
    "NotRevealedEarlier": Words(
        lambda a, t: (
            f"trainer number {a['author']} revealed nothing in round {a['earlierRound']} of project "
            f"{a['projectId']} (or that round has no owner's reference)"
        )
    ),
    "InvalidEarlierRowProof": Words(
        lambda a, t: (
            f"the earlier row does not match commitment 0x{bytes(a['commitment']).hex()} revealed in round "
            f"{a['earlierRound']} of project {a['projectId']}"
        )
    ),
    "NotANearCopy": Words(
        lambda a, t: (
            f"the two rows are not near copies: their squared distance {a['distance']} is over the bar "
            f"{a['bar']} (scale 2^26)"
        )
    ),
    "StaleNotRejected": Words(
        lambda a, t: f"{a['trainer']} was shown stale in {_round(a)}: the round's result must leave it out"
    ),
    "ScoreTooLarge": Words(lambda a, t: f"score {a['index']} ({a['score']}) is larger than the market accepts"),
    "NoSubmission": Words(lambda a, t: f"{a['trainer']} submitted nothing in {_round(a)}"),
    "InvalidProof": Words(lambda a, t: f"the project's verifier rejected the proof of {_round(a)}"),
    # ---- OpenZeppelin (ownership, reentrancy)
    "OwnableUnauthorizedAccount": Words(lambda a, t: f"{a['account']} is not the contract's owner, who alone may"),
    "OwnableInvalidOwner": Words(lambda a, t: f"{a['owner']} cannot own the contract"),
    "ReentrancyGuardReentrantCall": Words(lambda a, t: "the contract refuses a call made while it is still running"),
    # ---- ReliabilityRegistry
    "TrackRecordTooSmall": Words(
        lambda a, t: (
            f"{a['trainer']} has {eth(int(a['available']))} ETH of its record available (earned in independent "
            f"projects and not reserved by another bar it joined) and {_project(t)} requires "
            f"{eth(int(a['required']))} ETH: its reliability bar asks for a record of its {PER_GUARANTEED_TRAINER} "
            f"divided by the {bps(PROTOCOL_FEE_BPS)} protocol fee, because {WHY_EARNED}; joining reserves it until "
            "the trainer withdraws, and a round it is flagged in spends it (only projects whose owner is not their "
            "aggregator count)"
        )
    ),
    "UnauthorizedMarket": Words(lambda a, t: f"{a['caller']} is not a market the reliability registry authorized"),
    "RecordCounterFull": Words(
        lambda a, t: (
            f"a counter of {a['trainer']}'s track record is full (over 4 billion rounds or projects): the registry "
            "refuses to wrap it around"
        )
    ),
    # ---- UpdateKeys (the aggregator's key for encrypted updates)
    "NotTheAggregator": Words(
        lambda a, t: (
            f"{a['caller']} is not the aggregator of project {a['projectId']} ({a['aggregator']} is), who alone "
            "publishes its update key"
        )
    ),
    "KeyAlreadyPublished": Words(
        lambda a, t: f"the update key of project {a['projectId']} is published already, and never changes",
        conflict=True,
    ),
    "ZeroKey": Words(lambda a, t: f"the update key for project {a['projectId']} is empty (all zeros)"),
    "ProjectNotActive": Words(
        lambda a, t: (
            f"project {a['projectId']} is {_status(a['status'])}: keys are published only while it is open or training"
        ),
        conflict=True,
    ),
    # ---- round verifiers
    "InvalidSetup": Words(lambda a, t: f"the verifier cannot be set up: {a['reason']}"),
    "TestVerifierOnLocalChainOnly": Words(
        lambda a, t: f"the test verifier proves nothing and runs only on a local chain (this is chain {a['chainId']})"
    ),
    "TestHelperOnLocalChainOnly": Words(
        lambda a, t: (
            "the test quotient helper of a split verifier proves nothing and runs only on a local chain "
            f"(this is chain {a['chainId']})"
        )
    ),
}


def _project(attempt: Attempt) -> str:
    return f"project {attempt.project_id}" if attempt.project_id is not None else "the project"


@dataclass(frozen=True)
class Refusal:
    """A refusal in words: the sentence, the custom error's name (``code``), the config field at fault and
    whether it means "not now" (409)."""

    sentence: str
    code: str | None = None
    field: str | None = None
    conflict: bool = False

    def detail(self, attempt: Attempt) -> str:
        """The answer's ``detail``: "The chain would refuse to <attempt>: <sentence>."."""
        return f"The chain would refuse to {attempt.what}: {self.sentence}."

    def rejected(self, attempt: Attempt) -> Rejected:
        """The service error to raise: :class:`Conflict` or :class:`Rejected`, with ``code`` and ``field``."""
        cls = Conflict if self.conflict else Rejected
        return cls(self.detail(attempt), code=self.code, field=self.field, sentence=self.sentence)


def revert_words(revert: ContractRevert, attempt: Attempt) -> Refusal:
    """A decoded revert in words (:data:`CUSTOM_ERRORS`; ``require`` messages, panics and unknown errors too)."""
    if revert.name == "Error":
        return Refusal(f"the contract refused with the message {revert.message!r}", "Error")
    if revert.name == "Panic":
        return Refusal(f"the contract stopped on an internal error ({revert.args_dict.get('reason')})", "Panic")
    if revert.name == "Revert":
        return Refusal("the contract refused without giving a reason", "Revert")
    words = CUSTOM_ERRORS.get(revert.name)
    if words is None:
        return Refusal(f"the contract refused with an error this app does not know ({revert.selector.hex()})")
    try:
        sentence = words.say(revert.args_dict, attempt)
    except (KeyError, ValueError, TypeError):  # arguments not as the ABI says: still no raw error
        sentence = f"the contract refused ({revert.name})"
    return Refusal(sentence, revert.name, words.field_of(revert.args_dict), words.conflict)


def rpc_words(exc: Web3RPCError, value_wei: int = 0) -> Refusal:
    """A JSON-RPC error answer to a simulation in words (the node's message, never its raw JSON)."""
    error = exc.rpc_response.get("error") if isinstance(exc.rpc_response, dict) else None
    message = str(error.get("message") if isinstance(error, dict) and error.get("message") else exc.message)
    text = " ".join(message.split())
    lower = text.lower()
    if "insufficient funds" in lower:
        need = f"the {eth(value_wei)} ETH it sends plus gas" if value_wei else "the gas"
        return Refusal(f"the sending wallet cannot pay {need}", "InsufficientFunds")
    if "gas" in lower and ("exceed" in lower or "out of gas" in lower):
        return Refusal("it would run out of gas", "OutOfGas")
    if "nonce" in lower:
        return Refusal("the wallet's transaction count (nonce) does not match the chain's", "Nonce")
    return Refusal(f"the chain node answered: {text[:200]}", "RpcError")


def refusal(exc: Exception, attempt: Attempt, value_wei: int = 0) -> Refusal:
    """Any refusal of a simulated transaction in words: a decoded revert, a JSON-RPC error answer, or another
    chain error (its message, which names the problem)."""
    if isinstance(exc, ContractRevert):
        return revert_words(exc, attempt)
    if isinstance(exc, Web3RPCError):
        return rpc_words(exc, value_wei)
    return Refusal(redact_urls(str(exc)))


# ---------------------------------------------------------------------------- invalid input in words


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _choices(ctx: Mapping[str, Any]) -> str:
    expected = str(ctx.get("expected", ""))
    return expected.replace("'", "")


#: A validation error's type -> its words, which follow the field's name (``ctx`` holds the bounds).
VALIDATION_WORDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda c: "is required",
    "int_type": lambda c: "must be a whole number",
    "int_parsing": lambda c: "must be a whole number",
    "int_from_float": lambda c: "must be a whole number",
    "int_parsing_size": lambda c: "is too large a number",
    "float_type": lambda c: "must be a number",
    "float_parsing": lambda c: "must be a number",
    "finite_number": lambda c: "must be a finite number",
    "decimal_type": lambda c: "must be a number",
    "decimal_parsing": lambda c: "must be a number",
    "bool_type": lambda c: "must be true or false",
    "bool_parsing": lambda c: "must be true or false",
    "string_type": lambda c: "must be a string",
    "string_pattern_mismatch": lambda c: (
        "must be a whole number written in digits"
        if str(c.get("pattern", "")).startswith("^[0-9]")
        else "is not in the expected form"
    ),
    "string_too_short": lambda c: f"must have at least {_number(c.get('min_length'))} characters",
    "string_too_long": lambda c: f"must have at most {_number(c.get('max_length'))} characters",
    "greater_than": lambda c: f"must be more than {_number(c.get('gt'))}",
    "greater_than_equal": lambda c: f"must be at least {_number(c.get('ge'))}",
    "less_than": lambda c: f"must be less than {_number(c.get('lt'))}",
    "less_than_equal": lambda c: f"must be at most {_number(c.get('le'))}",
    "literal_error": lambda c: f"must be one of: {_choices(c)}",
    "enum": lambda c: f"must be one of: {_choices(c)}",
    "json_invalid": lambda c: "is not valid JSON",
    "json_type": lambda c: "is not valid JSON",
    "model_type": lambda c: "must be a JSON object",
    "model_attributes_type": lambda c: "must be a JSON object",
    "dict_type": lambda c: "must be a JSON object",
    "list_type": lambda c: "must be a list",
    "extra_forbidden": lambda c: "is not a field of this request",
    "none_required": lambda c: "must be empty",
}


def invalid_value(error: Mapping[str, Any]) -> str:
    """A validation error (a pydantic ``ErrorDetails``) in words that follow the field's name: a sentence of
    our own validators as they wrote it, else :data:`VALIDATION_WORDS` (never the library's own wording)."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        reason = ctx.get("error")
        text = str(reason) if reason is not None else str(error.get("msg", ""))
        text = re.sub(r"^(Value error|Assertion failed), ", "", text)
        return text[:1].lower() + text[1:] if text else "is invalid"
    words = VALIDATION_WORDS.get(kind)
    return words(ctx) if words is not None else "is invalid"


def request_errors(exc: RequestValidationError) -> dict[str, str]:
    """A request's validation errors by field (the body or query parameter's name; ``body`` for the body as a
    whole), in words."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
        loc = [p for p in loc if not p.isdigit()]  # a position in the body text (invalid JSON)
        field = ".".join(loc) or "body"
        errors.setdefault(field, invalid_value(error))
    return errors


# ---------------------------------------------------------------------------- answers


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


def page_for(request: Request) -> Page:
    """The page renderer for ``request`` (as :func:`marketplace.web.deps.get_page`, without importing the deps)."""
    state = request.app.state
    return Page(request, state.templates, state.settings, state.services.context.market.market.address)


def error_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    errors: dict[str, str] | None = None,
    *,
    code: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """JSON :class:`Problem` under /api, else the error page (URLs in messages without credentials). ``field``
    defaults to the first field of ``errors``."""
    detail = redact_urls(detail)
    errors = {name: redact_urls(message) for name, message in (errors or {}).items()}
    field = field or next((name for name in errors if name), None)
    if wants_json(request):
        problem = Problem(detail=detail, code=code, field=field, errors=errors)
        return JSONResponse(problem.model_dump(), status_code=status, headers=headers)
    context = {"status": status, "title": title, "detail": detail, "field": field}
    response = page_for(request).render("error.html", context, status)
    response.headers.update(headers or {})
    return response


async def typed_error(request: Request, exc: Exception) -> Response:
    """A :data:`STATUS` error: its status, its sentence, its code, field and per-field sentences if it has any."""
    status, title = next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)
    errors = exc.errors if isinstance(exc, InvalidInput) else None
    code = getattr(exc, "code", None)
    field = getattr(exc, "field", None)
    if isinstance(exc, Rejected) and field and errors is None:  # words that follow the field's name, as for input
        errors = {field: f"is refused by the market: {exc.sentence or exc}"}
    return error_response(request, status, title, str(exc), errors, code=code, field=field, headers=retry_headers(exc))


def retry_headers(exc: Exception) -> dict[str, str] | None:
    """``Retry-After`` for an error that says when to ask again (:class:`TooManyRequests`, :class:`Unavailable`
    with ``retry_after``), else None."""
    retry_after = getattr(exc, "retry_after", None)
    return {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None


async def chain_down(request: Request, exc: ChainError) -> Response:
    detail = f"The chain node could not answer, so this cannot be shown or checked now: {exc}"
    return error_response(request, 503, "Chain unavailable", detail, code="ChainUnavailable")


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        detail = "There is no such page." if exc.detail == "Not Found" else str(exc.detail)
        return error_response(request, 404, "Not found", detail, code="NotFound")
    if exc.status_code == 400:  # the body could not be decoded (FastAPI's own answer)
        detail = "The request body is not UTF-8 JSON."
        return error_response(request, 400, "Bad request", detail, {"body": "is not UTF-8 JSON"}, code="BadBody")
    if exc.status_code == 405:
        return error_response(request, 405, "Not allowed", "This address does not take that method.", code="Method")
    return error_response(request, exc.status_code, "Error", str(exc.detail))


async def bad_request(request: Request, exc: RequestValidationError) -> Response:
    errors = request_errors(exc)
    detail = "Please check " + "; ".join(f"{name} ({message})" for name, message in errors.items()) + "."
    return error_response(request, 422, "Please check what you entered", detail, errors, code="InvalidInput")


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    detail = "Something went wrong on the server; it has been logged. Please try again later."
    return error_response(request, 500, "Something went wrong", detail, code="InternalError")


def install_error_handlers(app: FastAPI) -> None:
    """Registers the mapping above on ``app``."""
    handlers: dict[type[Exception], Any] = {
        **dict.fromkeys(STATUS, typed_error),
        ChainError: chain_down,
        StarletteHTTPException: http_error,
        RequestValidationError: bad_request,
        Exception: unexpected,
    }
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
