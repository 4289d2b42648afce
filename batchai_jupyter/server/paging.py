"""HTTP paging of lists: `maxresults` and `skip` in, `{"value": [...], "nextLink": ...}` out."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlencode

from ..core.service import Page
from ..errors import BatchAIError

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
MAX_SKIP = 2**62  # the store counts in signed 64-bit integers; no listing comes near this


class PageRequest(NamedTuple):
    skip: int
    size: int


def page_request(max_results: int | None, skip: int) -> PageRequest:
    size = DEFAULT_PAGE_SIZE if max_results is None else max_results
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BatchAIError("InvalidMaxResults", f"maxresults: {size} is not valid; use 1 to {MAX_PAGE_SIZE}")
    if not 0 <= skip <= MAX_SKIP:
        raise BatchAIError("InvalidSkip", f"skip: {skip} is not valid; use 0 to {MAX_SKIP} (or follow nextLink)")
    return PageRequest(skip, size)


def slice_page(items: list, request: PageRequest) -> Page:
    """The requested page of a list the service returns whole."""
    end = request.skip + request.size
    return Page(items[request.skip : end], end < len(items))


def page_body(page: Page, request: PageRequest, path: str, arguments: list[tuple[str, str]]) -> dict:
    """The reply: the page's items, and while more follow, a nextLink that keeps the request's other
    `arguments` (state, outputdirectoryid, path, ...)."""
    body: dict = {"value": page.items}
    if page.more:
        # A token given as ?token= is a credential: never copied into a response.
        kept = [(key, value) for key, value in arguments if key not in ("maxresults", "skip", "token")]
        query = urlencode(kept + [("maxresults", len(page.items)), ("skip", request.skip + len(page.items))])
        body["nextLink"] = f"{path}?{query}"
    return body
