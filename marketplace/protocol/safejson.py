"""JSON from untrusted sources (update headers, proof documents) without deep recursion.

``json.loads`` recurses once per nesting level. With Python's default recursion limit a deeply
nested text raises ``RecursionError``, but ``py_ecc`` (imported by web3 and eth-account) raises the
limit to 100,000 for the whole process, and then ``[[[[...]]]]`` a few hundred KB long overflows the
C stack and kills the process (a segmentation fault, nothing to catch). :func:`loads_bounded`
measures the nesting first, iteratively, and refuses anything deeper than the caller's documents.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

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
