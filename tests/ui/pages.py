"""How the tests drive the search page: wait for a search to finish, read what the table shows."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from playwright.sync_api import Page


def searched(page: Page, action: Callable[[], object]) -> None:
    """Run `action` and wait until the search (or page of results) it starts has finished."""
    count = int(page.locator("#results").get_attribute("data-searches") or 0)
    action()
    page.wait_for_selector(f"#results[data-searches='{count + 1}']", state="attached")


def open_page(page: Page, base: str, query: str = "") -> None:
    page.goto(base + "/api/ui" + query)
    page.wait_for_selector("#results[data-searches='1']", state="attached")


def shown_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#results tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    return ids


def load_all(page: Page, limit: int = 50) -> int:
    """Press Load more until it is gone; returns how many times it was pressed."""
    more = page.get_by_role("button", name="Load more", exact=True)
    for pressed in range(limit):
        if not more.is_visible():
            return pressed
        searched(page, more.click)
    raise AssertionError(f"Load more still shown after {limit} pages")


def page_query(page: Page) -> dict[str, str]:
    """The API parameters in the page's own URL (its state)."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query, keep_blank_values=True))
