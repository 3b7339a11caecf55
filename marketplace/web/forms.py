"""A new job, from what a person types into the "post a job" form or from the JSON API, to a validated
:class:`ProjectConfig`, or a sentence per field at fault.

Two entrances, one set of checks (the contract's own: a value the form or the API takes is one
``createProject`` takes):

* :func:`parse_job`: the form, in user units (ETH, percent, minutes), by the form's field names
  (:data:`LABELS`); :class:`FormErrors` maps each field at fault to words that follow its label ("Reward budget
  must be a number");
* :func:`parse_job_request`: the JSON API's :class:`~marketplace.web.schemas.CreateProjectRequest`, in the API's
  units (amounts in wei or in ETH, percentages in basis points, periods in seconds), by its field names
  (:class:`~marketplace.web.services.errors.InvalidInput`).

The form also takes a model card (what is being trained: :func:`parse_card`), which the contract does not hold:
it goes into the initial weights' header (:meth:`~marketplace.web.services.models.ModelService.describe`).

Each round has a commit phase (``submission_period``, labelled "Commit period": trainers commit sealed updates),
a reveal phase (``reveal_period``) and an aggregation phase (``aggregation_period``); each is from
:data:`MIN_PHASE_MINUTES` minutes (the market's shortest phase) to :data:`MAX_PERIOD_MINUTES` (a year); the join
period from 1 minute. Amounts have at most 18 decimals (1 wei) and fit the market's 96-bit amounts (a budget with
its protocol fee: :data:`MAX_BUDGET_WEI`); percentages at most 2 decimals (the market counts basis points).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils import is_address, to_checksum_address
from pydantic import ValidationError

from marketplace.adapters.chain.market import (
    MAX_CID_LENGTH,
    MAX_ROUNDS,
    MAX_TRAINERS,
    MIN_PHASE_PERIOD,
    PROTOCOL_FEE_BPS,
    ProjectConfig,
    check_model_name,
)
from marketplace.adapters.ipfs.cid import parse_cid
from marketplace.protocol.model_card import FIELDS, InvalidCard, ModelCard, check_card
from marketplace.web.errors import invalid_value
from marketplace.web.schemas import CreateProjectRequest, eth
from marketplace.web.services.errors import InvalidInput

WEI = 10**18
#: The largest amount the market holds (its amounts are 96-bit), in wei.
MAX_WEI = 2**96 - 1
#: The largest reward budget: with its protocol fee it must still fit the market's 96-bit amounts.
MAX_BUDGET_WEI = MAX_WEI * 10_000 // (10_000 + PROTOCOL_FEE_BPS)
while MAX_BUDGET_WEI + -(-MAX_BUDGET_WEI * PROTOCOL_FEE_BPS // 10_000) > MAX_WEI:  # the fee rounds up
    MAX_BUDGET_WEI -= 1
#: The shortest commit, reveal and aggregation period, in minutes (``TrainingMarket.MIN_PHASE_PERIOD``).
MIN_PHASE_MINUTES = MIN_PHASE_PERIOD // 60
#: The longest period a job takes, in minutes (a year).
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
    "card_task": "Task",
    "card_data": "Data description",
    "card_metric": "Evaluation metric",
    "card_license": "License",
    "sender": "Wallet",
}
#: The form's model card fields (what is being trained) -> the card's fields (``model_card.FIELDS``).
CARD_FIELDS: dict[str, str] = {f"card_{name}": name for name in FIELDS}
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
#: Form fields that must be filled in.
REQUIRED = frozenset({"model_name", "rounds", "min_trainers", "max_trainers", "budget_eth"})
#: What a form field left empty means: its prefilled value, except that an empty stake is no stake (the form
#: suggests 0.01 ETH).
OPTIONAL: dict[str, str] = {**{k: v for k, v in DEFAULTS.items() if k not in REQUIRED}, "stake_eth": "0"}
#: The config field (:class:`ProjectConfig`, the API's names) behind each form field.
CONFIG_FIELD: dict[str, str] = {
    "budget_eth": "reward_budget",
    "aggregator_fee_eth": "aggregator_fee",
    "stake_eth": "stake",
    "min_reliability_pct": "min_reliability_bps",
    "slash_pct": "slash_bps",
    "join_period_minutes": "join_period",
    "submission_period_minutes": "submission_period",
    "reveal_period_minutes": "reveal_period",
    "aggregation_period_minutes": "aggregation_period",
}
FORM_FIELD = {config: form for form, config in CONFIG_FIELD.items()}


class FormErrors(InvalidInput):
    """Input that cannot become a project: ``errors`` maps form fields ("" = the whole form) to words that follow
    the field's label."""

    def __init__(self, errors: dict[str, str]) -> None:
        parts = [f"{LABELS.get(k, k)} {v}" if k else v for k, v in errors.items()]
        super().__init__("Please check the job: " + "; ".join(parts) + ".", errors)


# ---------------------------------------------------------------------------- one value each


class Invalid(ValueError):
    """A value a field does not take; the message follows the field's name."""


def whole(text: Any, low: int, high: int, rule: str) -> int:
    """A whole number from ``low`` to ``high``; :class:`Invalid` with ``rule`` otherwise."""
    if isinstance(text, bool):
        raise Invalid(rule)
    try:
        value = int(str(text).strip()) if not isinstance(text, int) else text
    except ValueError:
        raise Invalid(rule) from None
    if not low <= value <= high:
        raise Invalid(rule)
    return value


def decimal(text: Any) -> Decimal:
    """A finite decimal number typed as text; :class:`Invalid` ("must be a number") otherwise."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise Invalid("must be a number") from None
    if not value.is_finite():
        raise Invalid("must be a number")
    return value


def eth_amount(text: Any, *, positive: bool, most: int = MAX_WEI) -> int:
    """An amount of ETH typed as text, in wei: at least 0 (above it if ``positive``), at most 18 decimals and
    ``most`` wei."""
    value = decimal(text)
    if value < 0 or (positive and value == 0):
        raise Invalid("must be more than 0 ETH" if positive else "must not be negative")
    wei = value * WEI
    if wei != wei.to_integral_value():
        raise Invalid("has more than 18 decimals (the smallest amount is 1 wei, 0.000000000000000001 ETH)")
    if wei > most:
        raise Invalid(f"is more than the market can hold (at most {eth(most)} ETH)")
    return int(wei)


def wei_amount(text: Any, *, positive: bool, most: int = MAX_WEI) -> int:
    """An amount in wei given as a string of digits."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,40}", text):
        raise Invalid("must be a whole number of wei, as a string of digits")
    wei = int(text)
    if positive and wei == 0:
        raise Invalid("must be more than 0 wei")
    if wei > most:
        raise Invalid(f"is more than the market can hold (at most {most} wei)")
    return wei


def percent(text: Any) -> int:
    """A percentage from 0 to 100 with at most 2 decimals, in basis points."""
    value = decimal(text)
    if not 0 <= value <= 100:
        raise Invalid("must be a percentage from 0 to 100")
    hundredths = value * 100
    if hundredths != hundredths.to_integral_value():
        raise Invalid("has more than 2 decimals (the market counts hundredths of a percent)")
    return int(hundredths)


def address(text: Any) -> str:
    """A checksummed Ethereum address that is not the zero address."""
    if not isinstance(text, str) or not is_address(text.strip()):
        raise Invalid("must be an Ethereum address (0x followed by 40 hex digits)")
    checksummed = to_checksum_address(text.strip())
    if int(checksummed, 16) == 0:
        raise Invalid("is the zero address (0x0000…0000), which nobody controls")
    return checksummed


def cid(text: Any) -> str:
    """An IPFS CID the market takes: well formed, 1 to 128 letters and digits."""
    rule = f"must be an IPFS CID (bafy… or Qm…) of at most {MAX_CID_LENGTH} letters and digits"
    if not isinstance(text, str) or not text.isascii() or not text.isalnum() or len(text) > MAX_CID_LENGTH:
        raise Invalid(rule)
    try:
        parse_cid(text)
    except Exception:
        raise Invalid(rule) from None
    return text


def model(text: Any, models: list[str]) -> str:
    """A registered model's name that the market takes."""
    if not isinstance(text, str):
        raise Invalid("must be a model's name")
    try:
        check_model_name(text)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if text not in models:
        raise Invalid(f"must be one of the registered models ({', '.join(models)}); {text!r} is not")
    return text


def _periods_rule(low: int) -> str:
    return f"must be a whole number of minutes from {low} to {MAX_PERIOD_MINUTES:,} (a year)"


TRAINERS_RULE = f"must be a whole number from 1 to {MAX_TRAINERS}"

#: The form's fields: how each is read (text in, the config's value out).
FORM_READERS: dict[str, Callable[[Any], Any]] = {
    "rounds": lambda v: whole(v, 1, MAX_ROUNDS, f"must be a whole number from 1 to {MAX_ROUNDS:,}"),
    "min_trainers": lambda v: whole(v, 1, MAX_TRAINERS, TRAINERS_RULE),
    "max_trainers": lambda v: whole(v, 1, MAX_TRAINERS, TRAINERS_RULE),
    "budget_eth": lambda v: eth_amount(v, positive=True, most=MAX_BUDGET_WEI),
    "aggregator_fee_eth": lambda v: eth_amount(v, positive=False),
    "stake_eth": lambda v: eth_amount(v, positive=False),
    "aggregator": address,
    "verifier": address,
    "join_period_minutes": lambda v: 60 * whole(v, 1, MAX_PERIOD_MINUTES, _periods_rule(1)),
    **{
        name: (lambda v: 60 * whole(v, MIN_PHASE_MINUTES, MAX_PERIOD_MINUTES, _periods_rule(MIN_PHASE_MINUTES)))
        for name in ("submission_period_minutes", "reveal_period_minutes", "aggregation_period_minutes")
    },
    "min_reliability_pct": percent,
    "slash_pct": percent,
    "initial_model_cid": cid,
}


# ---------------------------------------------------------------------------- the whole job


def _blank_to_default(data: Mapping[str, Any]) -> dict[str, Any]:
    """Form posts send empty strings for untouched fields: treat them as absent."""
    return {k: v for k, v in data.items() if not (isinstance(v, str) and v.strip() == "")}


def _config(values: dict[str, Any], models: list[str], verifiers: list[str], field: Callable[[str], str]) -> Any:
    """The checks across fields and the :class:`ProjectConfig`, or the errors by ``field(config_name)``."""
    errors: dict[str, str] = {}
    if verifiers and values["verifier"] not in verifiers:
        errors[field("verifier")] = "is not a verifier the market admin approved"
    if values["min_trainers"] > values["max_trainers"]:
        errors[field("min_trainers")] = f"({values['min_trainers']}) exceeds the maximum ({values['max_trainers']})"
    if errors:
        return errors
    try:
        return ProjectConfig(**values)
    except ValidationError as exc:  # what the checks above let through (they should not)
        return {field(str(e["loc"][0]) if e.get("loc") else ""): invalid_value(e) for e in exc.errors()}


def parse_job(data: Mapping[str, Any], models: list[str], verifiers: list[str]) -> ProjectConfig:
    """Validates a submitted job form (user units, text); raises :class:`FormErrors` with a sentence per field at
    fault. Optional fields left empty take their :data:`OPTIONAL` value."""
    given = {**OPTIONAL, **_blank_to_default(data)}
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in ("model_name", *FORM_READERS):
        if name not in given:
            errors[name] = "is required"
            continue
        try:
            values[CONFIG_FIELD.get(name, name)] = (
                model(given[name], models) if name == "model_name" else FORM_READERS[name](given[name])
            )
        except Invalid as exc:
            errors[name] = str(exc)
    if errors:
        raise FormErrors(errors)
    checked = _config(values, models, verifiers, lambda name: FORM_FIELD.get(name, name))
    if isinstance(checked, dict):
        raise FormErrors(checked)
    config: ProjectConfig = checked
    return config


def parse_card(data: Mapping[str, Any]) -> ModelCard | None:
    """The model card typed into the job form (:data:`CARD_FIELDS`, each optional), None when all are empty;
    :class:`FormErrors` by form field (too long, HTML, control characters: :func:`check_card`)."""
    try:
        return check_card({card: data.get(form) for form, card in CARD_FIELDS.items()})
    except InvalidCard as exc:
        raise FormErrors({f"card_{name}": words for name, words in exc.errors.items()}) from None


def parse_card_request(body: CreateProjectRequest) -> ModelCard | None:
    """The model card given to the JSON API (``model_card``), None without one or when all its fields are empty;
    :class:`InvalidInput` naming each field at fault as ``model_card.<field>`` (:func:`check_card`)."""
    if body.model_card is None:
        return None
    try:
        return check_card(body.model_card.model_dump())
    except InvalidCard as exc:
        errors = {f"model_card.{name}": words for name, words in exc.errors.items()}
        raise InvalidInput(_detail(errors), errors) from None


#: The API's amounts: each is given in wei or in ETH (``<name>`` or ``<name>_eth``), the budget above 0.
AMOUNTS = {"reward_budget": MAX_BUDGET_WEI, "aggregator_fee": MAX_WEI, "stake": MAX_WEI}


def parse_job_request(
    body: CreateProjectRequest, models: list[str], verifiers: list[str], default_verifier: str | None
) -> ProjectConfig:
    """Validates a job given to the JSON API (wei or ETH, basis points, seconds: the bounds are in its schema);
    raises :class:`InvalidInput` with a sentence per field at fault, by the API's field names. Without a verifier,
    ``default_verifier``."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = body.model_dump(exclude={"sender", "model_card", *(f"{a}_eth" for a in AMOUNTS)})
    for name, most in AMOUNTS.items():
        wei, decimal_eth = getattr(body, name), getattr(body, f"{name}_eth")
        positive = name == "reward_budget"
        try:
            if wei is not None and decimal_eth is not None:
                raise Invalid(f"is given twice: give {name} (wei) or {name}_eth (ETH), not both")
            if wei is None and decimal_eth is None:
                if positive:
                    raise Invalid(f"is required, in wei ({name}) or in ETH ({name}_eth)")
                values[name] = 0
            else:
                read = wei_amount(wei, positive=positive, most=most) if wei is not None else None
                values[name] = read if read is not None else eth_amount(decimal_eth, positive=positive, most=most)
        except Invalid as exc:
            errors[name if wei is not None or decimal_eth is None else f"{name}_eth"] = str(exc)
    values["verifier"] = body.verifier or default_verifier or ""
    for name, read in (("aggregator", address), ("verifier", address), ("initial_model_cid", cid)):
        try:
            values[name] = read(values[name])
        except Invalid as exc:
            errors[name] = str(exc) if values[name] or name != "verifier" else "is required: no verifier is approved"
    try:
        values["model_name"] = model(body.model_name, models)
    except Invalid as exc:
        errors["model_name"] = str(exc)
    if errors:
        raise InvalidInput(_detail(errors), errors)
    checked = _config(values, models, verifiers, lambda name: name)
    if isinstance(checked, dict):
        raise InvalidInput(_detail(checked), checked)
    config: ProjectConfig = checked
    return config


def _detail(errors: dict[str, str]) -> str:
    return "Please check the job: " + "; ".join(f"{k} {v}" for k, v in errors.items()) + "."
