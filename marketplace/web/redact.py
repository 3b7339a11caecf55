"""Moved to :mod:`marketplace.adapters.chain.redact` (the chain client redacts its own messages, and adapters
may not import the web app). Kept only for ``marketplace/cli/audit.py``, which still imports it from here;
new code imports the adapter module."""

from __future__ import annotations

from marketplace.adapters.chain.redact import HIDDEN, redact_url, redact_urls

__all__ = ["HIDDEN", "redact_url", "redact_urls"]
