"""zot's ``PageInput``: sort, then ``offset`` items skipped and ``limit`` kept.

No limit (or 0) means everything from ``offset``, as in zot. Negative values are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from graphql import GraphQLError

T = TypeVar("T")


def page(
    items: list[T],
    requested: dict[str, Any] | None,
    sorts: dict[str, Callable[[list[T]], None]],
    default: str,
) -> tuple[Sequence[T], dict[str, int]]:
    """The requested page of ``items`` (sorted in place) and zot's ``PageInfo``."""
    requested = requested or {}
    limit = requested.get("limit") or 0
    offset = requested.get("offset") or 0
    if limit < 0:
        raise GraphQLError("requestedPage.limit must not be negative")
    if offset < 0:
        raise GraphQLError("requestedPage.offset must not be negative")
    criterion = requested.get("sortBy") or default
    sort = sorts.get(criterion)
    if sort is None:
        raise GraphQLError(f"sorting by {criterion} is not supported here")
    sort(items)
    chosen = items[offset : offset + limit] if limit else items[offset:]
    return chosen, {"TotalCount": len(items), "ItemCount": len(chosen)}
