"""JSON from untrusted sources (update headers, proof documents) without deep recursion.

``json.loads`` recurses once per nesting level. With Python's default recursion limit a deeply
nested text raises ``RecursionError``, but ``py_ecc`` (imported by web3 and eth-account) raises the
limit to 100,000 for the whole process, and then ``[[[[...]]]]`` a few hundred KB long overflows the
C stack and kills the process (a segmentation fault, nothing to catch). :func:`loads_bounded`
measures the nesting first, iteratively, and refuses anything deeper than the caller's documents.
:func:`parse_document` reads the documents parties hand each other (openings, signed commits, proof documents)
through it into a pydantic model, with one error type per document.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

#: JSON strings (with escapes): brackets inside them do not nest.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STEP = np.zeros(256, np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_CHUNK = 1 << 20


class TooDeeplyNested(ValueError):
    """A JSON text nests arrays/objects deeper than allowed."""


def nesting_depth(text: bytes | str) -> int:
    """The deepest array/object nesting of JSON ``text`` (0 for a scalar), computed without recursion."""
    raw = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else bytes(text)
    skeleton = _STRING.sub(b"", raw)
    depth = deepest = 0
    for start in range(0, len(skeleton), _CHUNK):
        steps = _STEP[np.frombuffer(skeleton, np.uint8, count=min(_CHUNK, len(skeleton) - start), offset=start)]
        running = np.cumsum(steps, dtype=np.int64) + depth
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
    return deepest


def loads_bounded(text: bytes | str, max_depth: int = 32, **kwargs: Any) -> Any:
    """``json.loads(text, **kwargs)``, but :class:`TooDeeplyNested` (a ``ValueError``) when ``text`` nests
    deeper than ``max_depth`` levels."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise TooDeeplyNested(f"JSON nested {depth} levels deep (at most {max_depth} expected)")
    return json.loads(text, **kwargs)


def parse_document(
    model: type[M], raw: bytes, *, max_bytes: int, error: type[Exception], what: str, max_depth: int = 1
) -> M:
    """``raw`` as one JSON object nesting at most ``max_depth`` levels (1: flat) validated by the pydantic
    ``model``; raises ``error`` saying what is wrong: more than ``max_bytes``, not UTF-8 JSON, nested deeper,
    NaN/Infinity literals, not an object, or the first field ``model`` refuses (with the number of problems).
    ``what`` names the document in the messages ("an opening document")."""
    if len(raw) > max_bytes:
        raise error(f"{len(raw)} bytes: {what} has at most {max_bytes}")
    try:
        data = loads_bounded(raw, max_depth=max_depth)
    except ValueError as exc:  # not UTF-8 JSON, too deeply nested, NaN/Infinity literals
        raise error(f"not a JSON {what.removeprefix('a ').removeprefix('an ')}: {exc}") from None
    if not isinstance(data, dict):
        raise error("not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise error(f"{where}: {first['msg']} ({exc.error_count()} problem(s))") from None
