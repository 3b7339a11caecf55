"""Jinja filters: ETH amounts, short addresses, basis points, timestamps."""

from __future__ import annotations

import json
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


def tojson_script(value: Any) -> Markup:
    """JSON safe to embed in ``<script type="application/json">``."""
    text = json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def register(env: Environment) -> None:
    env.filters.update(
        eth=eth, short=short, bps=bps, pct=pct, when=when, duration=duration, tojson_script=tojson_script
    )
