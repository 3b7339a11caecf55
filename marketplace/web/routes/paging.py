"""Pagination of the JSON API's lists: the ``limit`` and ``offset`` query parameters and :func:`page_of`."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Query

from marketplace.web.schemas import Paged

T = TypeVar("T")

#: Items per page of a list, by default and at most.
PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="the most items in the answer")]
Offset = Annotated[int, Query(ge=0, le=2**62, description="how many items to skip from the start of the list")]


def page_of(items: list[T], limit: int, offset: int) -> Paged[T]:
    """``items[offset:offset + limit]``, with the total."""
    return Paged[T](items=items[offset : offset + limit], total=len(items), limit=limit, offset=offset)
