"""Credentials out of URLs before they are shown: RPC providers put API keys in the URL.

``https://eth-sepolia.g.alchemy.com/v2/<key>``, ``https://mainnet.infura.io/v3/<key>``,
``https://<name>.quiknode.pro/<token>/``, ``https://rpc.ankr.com/eth/<key>``, ``https://host/?apikey=<key>``
and ``https://user:password@host`` all carry a secret. :func:`redact_url` replaces, with :data:`HIDDEN`:

* the userinfo (``user:password@``), whole;
* every path segment that looks like a key (:func:`looks_like_key`);
* every query value whose name says it is a secret (``key``, ``apikey``, ``token``, ``secret``,
  ``password``, ``auth``...) or that looks like a key;
* the fragment.

Scheme, host, port and the other path segments stay, so the URL still says which provider and network
it is. A text that cannot be parsed as a URL is replaced whole. :func:`redact_urls` applies this to
every URL inside a text (an error message that quotes the endpoint).

An HTTP library's message may quote the secret without the rest of the URL (urllib3:
``Max retries exceeded with url: /v2/<key>?apikey=<key>``), which no URL pattern finds.
:func:`redact_endpoint` therefore also replaces, wherever they stand in the text, the very parts of one
known URL that :func:`redact_url` hides (:func:`secrets_of`). The chain client passes every message it
makes through it, with its own endpoint; callers showing any other text use :func:`redact_urls`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlsplit, urlunsplit

HIDDEN = "***"
#: Query parameter names whose value is a secret whatever it looks like.
SECRET_NAMES = re.compile(r"key|token|secret|passw|pwd|auth|credential|session|signature|sig$", re.IGNORECASE)
_KEYLIKE = re.compile(r"^[A-Za-z0-9_\-.~=+]+$")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>()\[\]{}]+")


def looks_like_key(segment: str) -> bool:
    """True for a token an API key could be: at least 16 characters of letters, digits and ``-_.~=+``,
    with a digit among them, or at least 32 such characters (``v2``, ``eth``, ``ethereum-sepolia`` and
    ``rpc`` are not keys; ``abcdef0123456789...`` is)."""
    if len(segment) < 16 or not _KEYLIKE.match(segment):
        return False
    return len(segment) >= 32 or any(c.isdigit() for c in segment)


def redact_url(url: str) -> str:
    """``url`` without its credentials (see the module docstring); :data:`HIDDEN` if it is not a URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return HIDDEN
    if not parts.scheme or not parts.netloc:
        return HIDDEN
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if "@" in parts.netloc:
        netloc = f"{HIDDEN}@{netloc}"
    path = "/".join(HIDDEN if looks_like_key(s) else s for s in parts.path.split("/"))
    query = "&".join(_redact_param(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, path, query, HIDDEN if parts.fragment else ""))


def _redact_param(name: str, value: str) -> str:
    if looks_like_key(name):  # a bare token (``?<key>``)
        return HIDDEN
    return f"{quote(name, safe='')}={HIDDEN if _is_secret(name, value) else quote(value, safe='')}"


def _is_secret(name: str, value: str) -> bool:
    return bool(SECRET_NAMES.search(name)) or looks_like_key(value)


def redact_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def secrets_of(url: str) -> list[str]:
    """The parts of ``url`` that :func:`redact_url` hides, as they may stand in a message, longest first:
    the userinfo (whole, and its user and password), each key-like path segment, each bare key-like query
    token, each value of a secret query parameter (as written and percent-decoded) and the fragment.
    ``[url]`` for a text that is not a URL (it is hidden whole); ``[]`` for a URL that holds none."""
    text = url.strip()
    if redact_url(text) == HIDDEN:
        return [text] if text else []
    parts = urlsplit(text)
    found: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, _, password = userinfo.partition(":")
        found |= {userinfo, user, password, unquote(user), unquote(password)}
    found |= {s for s in parts.path.split("/") if looks_like_key(s)}
    for pair in parts.query.split("&"):
        raw_name, _, raw_value = pair.partition("=")
        name, value = unquote_plus(raw_name), unquote_plus(raw_value)
        if looks_like_key(name):
            found |= {raw_name, name}
        elif _is_secret(name, value):
            found |= {raw_value, value}
    if parts.fragment:
        found |= {parts.fragment, unquote(parts.fragment)}
    return sorted((s for s in found if s), key=len, reverse=True)


def redact_endpoint(text: str, url: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`, and every secret of ``url``
    (:func:`secrets_of`) replaced by :data:`HIDDEN` wherever it stands as a whole word, between characters
    other than letters, digits, ``_`` and ``-`` (so ``/v2/<key>`` and ``apikey=<key>`` lose the key, while a
    user name such as ``rpc`` leaves ``eth_rpc_call`` alone)."""
    text = redact_urls(text)
    for secret in secrets_of(url):
        text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", HIDDEN, text, flags=re.ASCII)
    return text
