"""Jinja filters: ETH amounts, short addresses, basis points, timestamps."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from marketplace.web.schemas import eth


def short(address: str | None) -> str:
    """``0x1234…abcd``."""
    if not address:
        return ""
    return f"{address[:6]}…{address[-4:]}"


def bps(value: int | None) -> str:
    """Basis points as a percent."""
    if value is None:
        return "-"
    pct = value / 100
    return f"{pct:.0f}%" if pct == int(pct) else f"{pct:.2f}%"


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


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
        eth=eth, short=short, bps=bps, pct=pct, when=when, duration=duration, tojson_script=tojson_script
    )
