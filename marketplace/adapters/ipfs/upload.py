"""The files of a Kubo ``/api/v0/add`` request: each part of a multipart body, with Kubo's name.

Kubo (boxo ``files.multipartIterator``) takes every part of a ``multipart/form-data`` body as one
entry to add. Its name comes from the part's ``Content-Disposition`` ``filename``, decoded the way
Kubo does: RFC 2231 (``filename*=``) first, then URL-unescaped like Go's ``url.QueryUnescape``
(``%20`` and ``+`` become spaces; a malformed escape leaves the name as it was), then cleaned like
``path.Clean("/" + name)`` and made relative. A name with a ``/`` in it, or a part whose content
type is ``application/x-directory``, ``multipart/*`` or ``application/symlink``, is a directory or
a symlink, which this node does not add: :func:`split_parts` refuses the whole request then.
"""

from __future__ import annotations

import mmap
import posixpath
import re
import uuid
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value
from pathlib import Path
from urllib.parse import unquote_to_bytes

_COPY = 1 << 20
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NOT_FILES = ("application/x-directory", "application/symlink")


class UploadError(ValueError):
    """The add request's body cannot be taken as a list of files (answered with HTTP 400)."""


@dataclass(frozen=True)
class UploadedFile:
    """One file of an add request: Kubo's name for it (``""`` if the part has none) and its bytes on disk."""

    name: str
    path: Path


def kubo_name(filename: str) -> str:
    """The entry name Kubo gives a part whose (RFC 2231 decoded) ``filename`` is ``filename``."""
    if not _BAD_ESCAPE.search(filename):
        filename = unquote_to_bytes(filename.replace("+", " ")).decode("utf-8", "replace")
    return posixpath.normpath("/" + filename.lstrip("/"))[1:]


def _boundary(content_type: str) -> bytes:
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_maintype() != "multipart" or not isinstance(boundary, str) or not boundary:
        raise UploadError("add expects a multipart/form-data body with a file")
    return boundary.encode("latin-1")


def _spans(mm: mmap.mmap, delim: bytes) -> list[tuple[Message, int, int]]:
    """(headers, start, end) of each part; raises :class:`UploadError` on a malformed body."""
    spans = []
    pos = mm.find(delim)
    if pos < 0:
        raise UploadError("malformed multipart body: no part")
    while mm[pos + len(delim) : pos + len(delim) + 2] != b"--":
        head_start = pos + len(delim)
        head_end = mm.find(b"\r\n\r\n", head_start)
        if head_end < 0:
            raise UploadError("malformed multipart body: part headers not terminated")
        text = mm[head_start:head_end].decode("utf-8", "replace").lstrip("\r\n \t")
        headers = HeaderParser().parsestr(text + "\r\n\r\n", headersonly=True)
        end = mm.find(b"\r\n" + delim, head_end + 4)
        if end < 0:
            raise UploadError("malformed multipart body: part not terminated")
        spans.append((headers, head_end + 4, end))
        pos = end + 2
    return spans


def _name_of(headers: Message) -> str:
    content_type = headers.get_content_type() if headers.get("content-type") else ""
    raw = headers.get_param("filename", header="content-disposition")
    filename = collapse_rfc2231_value(raw) if raw else ""
    name = kubo_name(filename)
    if content_type in _NOT_FILES or content_type.startswith("multipart/") or "/" in name:
        what = "a symlink" if content_type == "application/symlink" else "a directory"
        raise UploadError(
            f"entry {name or filename!r} is {what}: this node adds files only, not directories or"
            " symlinks; add each file separately, with no '/' in its name"
        )
    return name


def split_parts(body: Path, content_type: str, out_dir: Path) -> list[UploadedFile]:
    """Copy each part of the multipart/form-data ``body`` (on disk) to its own file in ``out_dir``.

    Returns the files in request order. Every part is checked before anything is copied, so a
    request with a directory or a malformed part is refused as a whole (:class:`UploadError`).
    """
    delim = b"--" + _boundary(content_type)
    if body.stat().st_size == 0:
        raise UploadError("file argument 'path' is required")
    files = []
    with body.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        spans = _spans(mm, delim)
        if not spans:
            raise UploadError("file argument 'path' is required")
        names = [_name_of(headers) for headers, _, _ in spans]
        for name, (_, start, end) in zip(names, spans, strict=True):
            out = out_dir / f"{uuid.uuid4().hex}.file"
            with out.open("wb") as dst:
                for pos in range(start, end, _COPY):
                    dst.write(mm[pos : min(pos + _COPY, end)])
            files.append(UploadedFile(name, out))
    return files
