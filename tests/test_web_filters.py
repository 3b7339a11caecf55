"""The web UI's formatting: rounded amounts with their unit and exact value, account links, percentages.

Properties (hypothesis) over every wei amount a uint256 holds: a rounded amount never differs from the exact one
by more than half a unit of its last decimal shown, nor by more than its quantum allows, nor by more than 5 %
(two significant digits at least); it keeps ETH_PLACES decimals at most where that keeps two significant
digits, and never shows a non-zero amount as 0. A percentage is within half a unit of its last decimal.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.web.filters import ETH_PLACES, SMALL_DIGITS, account, amount, eth_quantum, pct, pct_bps, round_eth
from marketplace.web.templating import TEMPLATES_DIR
from scripts.vendor_js import FILES, TEST_ONLY, VENDOR

ETH = 10**18
UINT256 = 2**256 - 1


def element(markup: object) -> ET.Element:
    """The one element ``markup`` is (the filters write well-formed XML)."""
    return ET.fromstring(str(markup))


def text_of(el: ET.Element) -> str:
    return "".join(el.itertext())


def shown_value(text: str) -> Fraction:
    return Fraction(Decimal(text.replace(",", "")))


def last_place(text: str) -> Fraction:
    """A unit of the last decimal ``text`` shows."""
    digits = text.split(".")[1] if "." in text else ""
    return Fraction(1, 10 ** len(digits))


@pytest.mark.parametrize(
    ("wei", "shown"),
    [
        (200000000000000016, "0.2"),  # 0.200000000000000016 ETH, as the issue saw it
        (1334210915569622607, "1.3342"),
        (2 * ETH, "2"),
        (0, "0"),
        (1, "0.000000000000000001"),
        (123456789012345, "0.00012"),
        (1234567890123456, "0.0012"),
        (987654321, "0.00000000099"),
        (99995 * 10**12, "0.1"),  # rounds half up to 0.1000
        (12345_5 * 10**17, "12,345.5"),
        (-5 * 10**16, "-0.05"),
        (666666666666666666, "0.6667"),
    ],
)
def test_round_eth_examples(wei: int, shown: str) -> None:
    assert round_eth(wei) == shown
    assert round_eth(str(wei)) == shown


@given(st.integers(min_value=-UINT256, max_value=UINT256))
def test_rounding_stays_within_the_shown_precision(wei: int) -> None:
    text = round_eth(wei)
    exact = Fraction(wei, ETH)
    error = abs(shown_value(text) - exact)
    assert error <= Fraction(eth_quantum(wei)) / 2
    assert error <= last_place(text) / 2
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert error <= abs(exact) / 20  # at least SMALL_DIGITS significant digits
    if abs(exact) >= Fraction(1, 10 ** (ETH_PLACES - SMALL_DIGITS + 1)):
        assert decimals <= ETH_PLACES
    if wei != 0:
        assert shown_value(text) != 0  # a non-zero amount never reads as nothing


@given(st.integers(min_value=0, max_value=UINT256))
def test_amount_shows_the_rounded_value_and_carries_the_exact_one(wei: int) -> None:
    span = element(amount(wei))
    assert text_of(span) == f"{round_eth(wei)}\N{NO-BREAK SPACE}ETH"
    assert span.get("data-wei") == str(wei)
    assert Fraction(Decimal(span.get("data-copy"))) == Fraction(wei, ETH)  # the full value, to copy
    assert span.get("title").startswith(span.get("data-copy") + " ETH")


def test_an_exact_amount_says_its_full_value_when_rounding_changed_it() -> None:
    odd = element(f"<p>{amount(2200000000000000007, exact=True)}</p>")
    assert text_of(odd) == "2.2\N{NO-BREAK SPACE}ETH exactly 2.200000000000000007\N{NO-BREAK SPACE}ETH"
    assert text_of(element(f"<p>{amount(22 * ETH // 10, exact=True)}</p>")) == "2.2\N{NO-BREAK SPACE}ETH"


def test_amount_of_nothing_is_a_dash() -> None:
    assert amount(None) == "-"


def test_account_links_to_its_page_with_the_full_address() -> None:
    address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    link = element(account(address))
    assert link.tag == "a" and link.get("href") == f"/trainers/{address}"
    assert text_of(link) == "0x7099…79C8"
    assert link.get("title") == link.get("data-copy") == address
    assert text_of(element(account(address, full=True))) == address
    assert text_of(element(account(address, label="owner"))) == "owner"
    assert account(None) == "-"
    hostile = element(account('0x"><script>'))
    assert hostile.get("href") == '/trainers/0x"><script>' and hostile.find(".//script") is None


@pytest.mark.parametrize(
    ("value", "shown"), [(0.7, "70.0%"), (1 / 3, "33.3%"), (2 / 3, "66.7%"), (0.0, "0.0%"), (1.0, "100.0%")]
)
def test_pct_examples(value: float, shown: str) -> None:
    assert pct(value) == shown


def test_pct_of_nothing_or_not_a_number_is_a_dash() -> None:
    assert pct(None) == pct(float("nan")) == pct(float("inf")) == "-"


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_pct_is_within_half_its_last_decimal(value: float) -> None:
    text = pct(value)
    assert text.endswith("%") and len(text.split(".")[1]) == 2  # one decimal, then "%"
    assert abs(Fraction(Decimal(text[:-1])) - Fraction(value) * 100) <= Fraction(1, 20)


@given(st.integers(min_value=0, max_value=10_000))
def test_pct_bps_rounds_to_one_decimal(value: int) -> None:
    text = pct_bps(value)
    assert len(text.split(".")[1]) == 2
    assert abs(Fraction(Decimal(text[:-1])) - Fraction(value, 100)) <= Fraction(1, 20)


def test_pct_bps_examples() -> None:
    assert (pct_bps(6666), pct_bps(5000), pct_bps(None)) == ("66.7%", "50.0%", "-")


def test_axe_is_vendored_for_the_tests_and_no_page_loads_it() -> None:
    """axe-core sits in the static files next to the other vendored scripts (no CDN), for the browser tests to
    inject; no template references it, so production pages never load it."""
    for package in TEST_ONLY:
        for _, name in FILES[package]:
            assert (VENDOR / name).stat().st_size > 100_000
            assert not [t.name for t in TEMPLATES_DIR.glob("*.html") if name in t.read_text()]
    assert json.loads((VENDOR / "versions.json").read_text())["axe-core"] == "4.14.1"
