"""The "post a job" form: user units in, a validated :class:`ProjectConfig` out, or per-field messages.

Validation is two-layered: :class:`JobForm` parses what a person types (ETH amounts, percents,
minutes, a CID), then :class:`~marketplace.adapters.chain.market.ProjectConfig` (the same model the CLI
uses) checks the result against what the contract accepts.

Each round has a commit phase (``submission_period_minutes``, labelled "Commit period": trainers commit
sealed updates), a reveal phase (``reveal_period_minutes``: they reveal them) and an aggregation phase
(``aggregation_period_minutes``); each is a whole number of minutes from :data:`MIN_PHASE_MINUTES` (the
market's shortest phase) to :data:`MAX_PERIOD_MINUTES`; the join period from 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from marketplace.adapters.chain.market import (
    MAX_CID_LENGTH,
    MAX_MODEL_NAME_LENGTH,
    MAX_ROUNDS,
    MAX_TRAINERS,
    MIN_PHASE_PERIOD,
    ProjectConfig,
    check_model_name,
)
from marketplace.adapters.ipfs.cid import parse_cid

WEI = 10**18
#: The shortest commit, reveal and aggregation period, in minutes (``TrainingMarket.MIN_PHASE_PERIOD``).
MIN_PHASE_MINUTES = MIN_PHASE_PERIOD // 60
#: The longest period the form takes, in minutes (a year).
MAX_PERIOD_MINUTES = 60 * 24 * 365
#: The round's periods, in minutes on the form.
PERIOD_FIELDS = (
    "join_period_minutes",
    "submission_period_minutes",
    "reveal_period_minutes",
    "aggregation_period_minutes",
)

#: Labels used in messages and on the form.
LABELS: dict[str, str] = {
    "model_name": "Model",
    "rounds": "Rounds",
    "min_trainers": "Minimum trainers",
    "max_trainers": "Maximum trainers",
    "budget_eth": "Reward budget",
    "aggregator_fee_eth": "Aggregator fee",
    "stake_eth": "Trainer stake",
    "aggregator": "Aggregator address",
    "verifier": "Verifier",
    "join_period_minutes": "Join period",
    "submission_period_minutes": "Commit period",
    "reveal_period_minutes": "Reveal period",
    "aggregation_period_minutes": "Aggregation period",
    "min_reliability_pct": "Minimum reliability",
    "slash_pct": "Slash per flagged round",
    "initial_model_cid": "Initial weights CID",
}
DEFAULTS: dict[str, str] = {
    "model_name": "mlp",
    "rounds": "3",
    "min_trainers": "2",
    "max_trainers": "4",
    "budget_eth": "1",
    "aggregator_fee_eth": "0",
    "stake_eth": "0.01",
    "join_period_minutes": "60",
    "submission_period_minutes": "10",
    "reveal_period_minutes": "10",
    "aggregation_period_minutes": "10",
    "min_reliability_pct": "0",
    "slash_pct": "50",
}


class FormErrors(Exception):
    """Input that cannot become a project: ``errors`` maps form fields ("" = the whole form) to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{LABELS.get(k, k) or 'form'}: {v}" for k, v in errors.items()))
        self.errors = errors


def _eth_to_wei(value: Decimal) -> int:
    wei = value * WEI
    if wei != wei.to_integral_value():
        raise ValueError("has more than 18 decimals")
    return int(wei)


class JobForm(BaseModel):
    """A new training job as a person enters it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    model_name: str = Field(min_length=1, max_length=MAX_MODEL_NAME_LENGTH)
    rounds: int = Field(ge=1, le=MAX_ROUNDS)
    min_trainers: int = Field(ge=1, le=MAX_TRAINERS)
    max_trainers: int = Field(ge=1, le=MAX_TRAINERS)
    budget_eth: Decimal = Field(gt=0, description="ETH paid to trainers over all rounds")
    aggregator_fee_eth: Decimal = Field(default=Decimal(0), ge=0)
    stake_eth: Decimal = Field(default=Decimal(0), ge=0)
    aggregator: str
    verifier: str
    join_period_minutes: int = Field(default=60, ge=1, le=MAX_PERIOD_MINUTES)
    submission_period_minutes: int = Field(
        default=10, ge=MIN_PHASE_MINUTES, le=MAX_PERIOD_MINUTES, description="the commit phase"
    )
    reveal_period_minutes: int = Field(
        default=10, ge=MIN_PHASE_MINUTES, le=MAX_PERIOD_MINUTES, description="the reveal phase"
    )
    aggregation_period_minutes: int = Field(default=10, ge=MIN_PHASE_MINUTES, le=MAX_PERIOD_MINUTES)
    min_reliability_pct: Decimal = Field(default=Decimal(0), ge=0, le=100)
    slash_pct: Decimal = Field(default=Decimal(50), ge=0, le=100)
    initial_model_cid: str = Field(min_length=1, max_length=MAX_CID_LENGTH)

    @field_validator("aggregator", "verifier")
    @classmethod
    def _address(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError("is not an Ethereum address (0x followed by 40 hex digits)")
        return to_checksum_address(value)

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return check_model_name(value)  # in bytes, as the contract counts (before the registry lookup)

    @field_validator("initial_model_cid")
    @classmethod
    def _cid(cls, value: str) -> str:
        try:
            parse_cid(value)
        except Exception:
            raise ValueError("is not an IPFS CID") from None
        return value

    def to_config(self) -> ProjectConfig:
        """The contract-level config (amounts in wei, periods in seconds, percents in basis points)."""
        try:
            amounts = {
                "reward_budget": _eth_to_wei(self.budget_eth),
                "aggregator_fee": _eth_to_wei(self.aggregator_fee_eth),
                "stake": _eth_to_wei(self.stake_eth),
            }
        except ValueError as exc:
            raise FormErrors({"budget_eth": f"an amount {exc}"}) from None
        try:
            return ProjectConfig(
                aggregator=self.aggregator,
                verifier=self.verifier,
                rounds=self.rounds,
                min_trainers=self.min_trainers,
                max_trainers=self.max_trainers,
                min_reliability_bps=int(self.min_reliability_pct * 100),
                slash_bps=int(self.slash_pct * 100),
                join_period=self.join_period_minutes * 60,
                submission_period=self.submission_period_minutes * 60,
                reveal_period=self.reveal_period_minutes * 60,
                aggregation_period=self.aggregation_period_minutes * 60,
                model_name=self.model_name,
                initial_model_cid=self.initial_model_cid,
                **amounts,
            )
        except ValidationError as exc:
            raise FormErrors(_config_errors(exc)) from None


_CONFIG_FIELD = {
    "reward_budget": "budget_eth",
    "aggregator_fee": "aggregator_fee_eth",
    "stake": "stake_eth",
    "min_reliability_bps": "min_reliability_pct",
    "slash_bps": "slash_pct",
    "join_period": "join_period_minutes",
    "submission_period": "submission_period_minutes",
    "reveal_period": "reveal_period_minutes",
    "aggregation_period": "aggregation_period_minutes",
}


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if error.get("type") == "missing":
        return "is required"
    return msg[0].lower() + msg[1:] if msg else msg


def _config_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else ""
        field = _CONFIG_FIELD.get(name, name)
        if not loc and "min_trainers" in str(error.get("msg")):
            field = "min_trainers"
        errors.setdefault(field, _message(error))
    return errors


def _blank_to_default(data: Mapping[str, Any]) -> dict[str, Any]:
    """Form posts send empty strings for untouched fields: treat them as absent."""
    return {k: v for k, v in data.items() if not (isinstance(v, str) and v.strip() == "")}


def parse_job(data: Mapping[str, Any], models: list[str], verifiers: list[str]) -> ProjectConfig:
    """Validates a submitted job form; raises :class:`FormErrors` with a message per bad field."""
    try:
        form = JobForm.model_validate(_blank_to_default(data))
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error.get("loc") else ""
            message = _message(error)
            if field in PERIOD_FIELDS and error.get("type") != "missing":
                low = 1 if field == "join_period_minutes" else MIN_PHASE_MINUTES
                message = f"must be a whole number of minutes from {low} to {MAX_PERIOD_MINUTES:,} (a year)"
            elif isinstance(error.get("input"), str) and error.get("type", "").startswith(("decimal", "int")):
                try:
                    Decimal(error["input"])
                except InvalidOperation:
                    message = "must be a number"
            errors.setdefault(field, message)
        raise FormErrors(errors) from None
    problems: dict[str, str] = {}
    if form.model_name not in models:
        problems["model_name"] = f"unknown model {form.model_name!r}; choose one of {', '.join(models)}"
    if verifiers and form.verifier not in verifiers:
        problems["verifier"] = "is not approved by the market admin"
    if form.min_trainers > form.max_trainers:
        problems["min_trainers"] = f"({form.min_trainers}) exceeds the maximum ({form.max_trainers})"
    if problems:
        raise FormErrors(problems)
    return form.to_config()
