"""Walking the API's cursor-paged lists with a bound, and naming the endpoint of an answer that cannot be read."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from sgp_action.errors import BadAnswerError, ValidationError

_Record = TypeVar("_Record")

#: Bounds on one list walk: far beyond any real account, small enough that a looping server is cut off quickly.
MAX_PAGES = 1000
MAX_LIST_ITEMS = 100_000


def walk_pages(
    get: Callable[[Mapping[str, Any]], Any], path: str, params: Mapping[str, Any]
) -> Iterator[Mapping[str, Any]]:
    """Every item of a cursor-paged list (docs/sgp-api.md#paging): pages from `get(query)`, `starting_after=<last id>`.

    `has_more` null or absent (docs/sgp-api.md#paging-without-a-has-more-flag) is read from the page itself: a full
    page (as many items as the smaller of the `limit` asked for and the page's own `limit`) goes on, a short one
    ends the list; with no limit known, a new `next_cursor` goes on.

    A hostile or broken server can page forever (cursors cycling A -> B -> A with `has_more` always true), so
    the walk stops with BadAnswerError on a cursor or an item id seen before and after MAX_PAGES pages or
    MAX_LIST_ITEMS items.
    """
    starting_after: str | None = None
    cursors: set[str] = set()
    ids: set[str] = set()
    for _ in range(MAX_PAGES):
        page = get({**params, "starting_after": starting_after})
        if isinstance(page, list):  # a server that answers a bare array has no further pages
            items, has_more, cursor = page, False, None
        elif isinstance(page, dict):
            items, cursor, flag = page.get("items") or [], page.get("next_cursor"), page.get("has_more")
            if isinstance(flag, bool):
                has_more = flag
            else:
                has_more = _goes_on(items, params.get("limit"), page.get("limit"), cursor, cursors)
        else:
            raise BadAnswerError(f"GET {path}: the list answer is neither a page nor an array", method="GET")
        if not isinstance(items, list):
            raise BadAnswerError(f"GET {path}: the page's items are not a JSON array", method="GET")
        for item in items:
            if not isinstance(item, Mapping):
                continue
            item_id = item.get("id") or item.get("build_id")
            if item_id is not None:
                key = str(item_id)
                if key in ids:
                    raise _paging_error(path, f"it sent the item {key[:100]!r} twice")
                ids.add(key)
                if len(ids) > MAX_LIST_ITEMS:
                    raise _paging_error(path, f"it listed more than {MAX_LIST_ITEMS} items")
            yield item
        if not items or not has_more:
            return
        tail = items[-1] if isinstance(items[-1], Mapping) else {}
        last = tail.get("id") or tail.get("build_id") or (cursor if isinstance(cursor, (str, int)) else None)
        if not last:
            raise BadAnswerError(f"GET {path}: has_more is true but the page gives no new cursor", method="GET")
        starting_after = str(last)
        if starting_after in cursors:
            raise _paging_error(path, f"the cursor {starting_after[:100]!r} came back")
        cursors.add(starting_after)
    raise _paging_error(path, f"it still had more after {MAX_PAGES} pages")


def _goes_on(items: list[Any], asked: Any, said: Any, cursor: Any, cursors: set[str]) -> bool:
    """Whether a page without a usable `has_more` has a successor: it is full, or (no limit known) a new cursor."""
    limits = [n for n in (asked, said) if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    if limits:
        return isinstance(items, list) and len(items) >= min(limits)
    return isinstance(cursor, (str, int)) and str(cursor) != "" and str(cursor) not in cursors


def names_sort(exc: ValidationError) -> bool:
    """Whether a 400/422 names a sort parameter (in its message or its body), not some other refused value."""
    said = f"{exc} {json.dumps(exc.body, default=str)[:4000]}".lower()
    return "sort_by" in said or "sort_order" in said


def sort_by_created_at(records: list[_Record], *, descending: bool) -> list[_Record]:
    """`records` ordered by their `created_at` (oldest first, or newest first); records without one come last."""
    dated = [r for r in records if getattr(r, "created_at", None) is not None]
    undated = [r for r in records if getattr(r, "created_at", None) is None]
    dated.sort(key=lambda r: getattr(r, "created_at"), reverse=descending)  # noqa: B009
    return dated + undated


@contextlib.contextmanager
def about(method: str, path: str) -> Iterator[None]:
    """Name the endpoint in an unreadable answer's message (the record readers do not know where it came from)."""
    try:
        yield
    except BadAnswerError as exc:
        if exc.method is not None:
            raise
        raise BadAnswerError(f"{method} {path}: {exc}", method=method) from None


def _paging_error(path: str, why: str) -> BadAnswerError:
    """Paging that never ends is a broken answer (exit 3), not something to wait out."""
    return BadAnswerError(
        f"GET {path}: the server's paging looped or exceeded the bound ({why}); nothing more was read. "
        "The API's list answer is broken: try again later or report it to the SGP operators",
        method="GET",
    )
