"""Jinja filters: amounts (rounded, with their unit and exact value), accounts (links), percentages, timestamps.

Amounts are shown rounded with their unit (:func:`round_eth`, :func:`amount`): ``1.3342 ETH`` for
1.334210915569622607 ETH, ``0.2 ETH`` for 0.200000000000000016 ETH. The exact value goes with it: in the
element's ``title`` (hover), and in ``data-copy``, which ``static/copy.js`` puts on the clipboard when the
selection being copied lies inside the element (so copying an amount or an account copies its full value).

Percentages come in two kinds. Rates someone set (protocol fee, slash, reliability bar) are exact in basis
points and shown exactly (:func:`bps`: ``2%``, ``66.66%``). Measured values (a reliability, a share of a
round's reward, an accuracy) are rounded to one decimal, always printed (:func:`pct`, :func:`pct_bps`:
``70.0%``, ``66.7%``), so a column of them lines up.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape

#: Decimal places an amount in ETH is rounded to...
ETH_PLACES = 4
#: ...unless that keeps fewer significant digits than this (small amounts do not show as 0 or 0.0001).
SMALL_DIGITS = 2


def short(address: str | None) -> str:
    """``0x1234…abcd``: the first 6 and last 4 characters of ``address`` ("" for none)."""
    if not address:
        return ""
    return f"{address[:6]}…{address[-4:]}"


def eth(wei: int | str) -> str:
    """``wei`` in ETH, exactly, without trailing zeros: ``0.200000000000000016`` (any size, no rounding)."""
    value = int(wei)
    whole, frac = divmod(abs(value), 10**18)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return f"-{text}" if value < 0 else text


def eth_quantum(wei: int | str) -> Decimal:
    """The step :func:`round_eth` rounds ``wei`` (in ETH) to: ``10 ** -ETH_PLACES`` ETH, or finer where
    that would keep fewer than :data:`SMALL_DIGITS` significant digits (1 wei at the finest)."""
    value = abs(Decimal(int(wei)).scaleb(-18))
    places = Decimal(10) ** -ETH_PLACES
    if value == 0:
        return places
    exponent = value.adjusted() - SMALL_DIGITS + 1  # place of the last kept significant digit
    return min(places, Decimal(10) ** max(exponent, -18))


def round_eth(wei: int | str) -> str:
    """``wei`` in ETH rounded (half up) to :func:`eth_quantum`, trailing zeros dropped, thousands grouped:
    ``1.3342`` (1334210915569622607 wei), ``0.2`` (200000000000000016 wei), ``12,345.5``, ``0.00012``
    (123456789012345 wei), ``0`` (0 wei). It differs from the exact value by at most half the quantum, which
    is never more than half a unit of the last decimal shown, nor more than 5 % of the value."""
    with localcontext(prec=100):  # exact for any uint256 (78 digits)
        value = Decimal(int(wei)).scaleb(-18)
        rounded = value.quantize(eth_quantum(wei), rounding=ROUND_HALF_UP)
    text = f"{rounded:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def amount(wei: int | str | None, unit: str = "ETH", exact: bool = False) -> Markup:
    """``wei`` as ``<span class="amount">1.3342 ETH</span>``: rounded (:func:`round_eth`) with its unit; the
    exact value in ETH and in wei in ``title``, the exact ETH in ``data-copy`` and the wei in ``data-wei``.
    With ``exact`` (what a transaction sends), a rounded value is followed by the exact one in words:
    ``<small class="exact">exactly 2.200000000000000007 ETH</small>``. ``None`` renders as ``-``."""
    if wei is None or wei == "":
        return Markup("-")
    full = eth(wei)
    shown = round_eth(wei)
    title = f"{full} {unit} = {int(wei):,} wei" if int(wei) else f"0 {unit}"
    html = (
        f'<span class="amount" title="{escape(title)}" data-wei="{int(wei)}" data-copy="{escape(full)}">'
        f"{escape(shown)}\N{NO-BREAK SPACE}{escape(unit)}</span>"
    )
    if exact and Decimal(shown.replace(",", "")) != Decimal(full):
        html += f' <small class="exact">exactly {escape(full)}\N{NO-BREAK SPACE}{escape(unit)}</small>'
    return Markup(html)


def account(address: str | None, label: str | None = None, full: bool = False) -> Markup:
    """A link to ``address``'s page (``/trainers/<address>``) showing ``label``, else the full address when
    ``full``, else :func:`short`; the full address in ``title`` and ``data-copy``. ``None`` renders as ``-``."""
    if not address:
        return Markup("-")
    text = label if label is not None else (address if full else short(address))
    a = escape(address)
    return Markup(
        f'<a class="account{" full" if full else ""}" href="/trainers/{a}" title="{a}" data-copy="{a}">'
        f"<code>{escape(text)}</code></a>"
    )


def bps(value: int | None) -> str:
    """A rate set in basis points, exactly: ``2%`` (200), ``66.66%`` (6666); ``-`` for none."""
    if value is None:
        return "-"
    pct = value / 100
    return f"{pct:.0f}%" if pct == int(pct) else f"{pct:.2f}%"


def pct(value: float | None, digits: int = 1) -> str:
    """A measured fraction as a percent rounded to ``digits`` decimals, all printed: ``70.0%`` (0.7),
    ``33.3%`` (1/3); ``-`` for none or a value that is not finite."""
    if value is None or not math.isfinite(value):
        return "-"
    rounded = Decimal(repr(value)).scaleb(2).quantize(Decimal(10) ** -digits, rounding=ROUND_HALF_UP)
    return f"{rounded:f}%"


def pct_bps(value: int | None, digits: int = 1) -> str:
    """A measured value held in basis points (a reliability) as a percent rounded to ``digits`` decimals, all
    printed: ``66.7%`` (6666), ``50.0%`` (5000); ``-`` for none."""
    if value is None:
        return "-"
    rounded = (Decimal(int(value)) / 100).quantize(Decimal(10) ** -digits, rounding=ROUND_HALF_UP)
    return f"{rounded:f}%"


def when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def finite_json(value: Any) -> Any:
    """``value`` with every float that is not finite (NaN, +-Infinity) replaced by None, in lists, tuples and
    dicts at any depth: what strict JSON can hold (``JSON.parse`` refuses ``NaN`` and ``Infinity``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def tojson_script(value: Any) -> Markup:
    """Strict JSON (no ``NaN``/``Infinity``: non-finite numbers become ``null``) safe to embed in
    ``<script type="application/json">``: a chart whose data holds a non-finite number still parses."""
    text = json.dumps(finite_json(value), default=str, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def register(env: Environment) -> None:
    env.filters.update(
        eth=eth,
        round_eth=round_eth,
        amount=amount,
        account=account,
        short=short,
        bps=bps,
        pct=pct,
        pct_bps=pct_bps,
        when=when,
        duration=duration,
        tojson_script=tojson_script,
    )
