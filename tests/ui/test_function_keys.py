"""The search page where the API needs a function key (the Functions host's check, KeyedApi): asked for
once, kept for the browser tab, sent as `x-functions-key`, never put in a URL; exports with the key."""

from __future__ import annotations

from pathlib import Path

import requests
from playwright.sync_api import Page, expect

from .conftest import FUNCTION_KEY, KeyedApi, api_records, screenshot
from .pages import open_page, searched, shown_ids

# The page's File System Access path (Chromium, Edge) with a stand-in for the save dialog, which a
# headless browser cannot show: what the page writes, chunk by chunk, is kept for the test to read.
SAVE_PICKER = """
window.savedChunks = [];
window.savedClosed = false;
window.showSaveFilePicker = async (options) => {
  window.savePickerOptions = options;
  return { createWritable: async () => new WritableStream({
    write(chunk) { window.savedChunks.push(Array.from(chunk)); },
    close() { window.savedClosed = true; },
  }) };
};
"""
NO_SAVE_PICKER = "Object.defineProperty(window, 'showSaveFilePicker', { value: undefined });"


def enter_key(page: Page, key: str) -> None:
    page.get_by_label("Function key", exact=True).fill(key)
    searched(page, page.get_by_role("button", name="Use key", exact=True).click)


def test_missing_then_wrong_then_right_key(keyed: tuple[str, KeyedApi], page: Page):
    base, api = keyed
    open_page(page, base)  # the page itself needs no key
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("This API needs a function key (HTTP 401): enter it under Function key; "
                               "it is kept for this browser tab only. Signed in with Entra ID? Reload the page to "
                               "sign in again.")
    expect(page.get_by_label("Function key", exact=True)).to_be_focused()
    expect(page.locator("#health-summary")).to_contain_text("Data freshness unknown: This API needs a function key")
    screenshot(page, "key")

    enter_key(page, "not-the-key")
    expect(alert).to_have_text("The function key was refused (HTTP 401): check it, enter it again under Function key "
                               "and search again.")
    assert shown_ids(page) == []

    api.seen.clear()
    enter_key(page, FUNCTION_KEY)
    expect(alert).to_be_hidden()
    assert shown_ids(page) == [r["id"] for r in api_records(base, {}, FUNCTION_KEY)[:100]]
    expect(page.locator("#health-summary")).to_contain_text("Collector ok")
    expect(page.get_by_label("Function key", exact=True)).to_have_value("")  # not left on screen
    # Kept for this tab, sent in the header on every data call, never in a URL.
    assert page.evaluate("sessionStorage.getItem('auditkeep.functionKey')") == FUNCTION_KEY
    data_calls = [entry for entry in api.seen if not entry[0].startswith("ui")]
    assert {route for route, _, _ in data_calls} == {"audit", "health"}
    assert all(header == FUNCTION_KEY and "code" not in names for _, names, header in data_calls), data_calls

    # The record view sends it too; a reload of the tab keeps it; the URL never holds it.
    page.locator("#results tbody tr").first.locator("button.open").click()
    expect(page.locator("#detail-status")).to_have_text("The full record, exactly as archived.")
    page.keyboard.press("Escape")
    page.reload()
    page.wait_for_selector("#results[data-searches='1']", state="attached")
    assert len(shown_ids(page)) == 100
    assert FUNCTION_KEY not in page.url and FUNCTION_KEY not in page.content()

    # Another tab has not got it; "Forget key" drops it from this one.
    other = page.context.new_page()
    open_page(other, base)
    expect(other.get_by_role("alert")).to_contain_text("This API needs a function key")
    other.close()
    page.get_by_role("button", name="Forget key", exact=True).click()
    assert page.evaluate("sessionStorage.getItem('auditkeep.functionKey')") is None
    searched(page, page.get_by_role("button", name="Search", exact=True).click)
    expect(alert).to_contain_text("This API needs a function key")


def keyed_csv(base: str, params: dict[str, str]) -> bytes:
    response = requests.get(f"{base}/api/audit", params={**params, "format": "csv"},
                            headers={"x-functions-key": FUNCTION_KEY}, timeout=30)
    response.raise_for_status()
    return response.content


def test_export_with_a_key_streams_to_the_chosen_file(keyed: tuple[str, KeyedApi], page: Page):
    base, api = keyed
    page.add_init_script(SAVE_PICKER)
    open_page(page, base, "?result=Succeeded")
    enter_key(page, FUNCTION_KEY)
    api.seen.clear()
    page.get_by_role("button", name="Export CSV", exact=True).click()
    expect(page.locator("#status")).to_contain_text("Export finished")
    assert page.evaluate("window.savedClosed") is True
    (route, names, header), = api.seen  # one request: the export, with the key in its header
    assert route == "audit" and sorted(names) == ["format", "result"] and header == FUNCTION_KEY
    chunks: list[list[int]] = page.evaluate("window.savedChunks")
    saved = b"".join(bytes(chunk) for chunk in chunks)
    assert saved == keyed_csv(base, {"result": "Succeeded"}) and saved.count(b"\r\n") > 20
    assert page.evaluate("window.savePickerOptions.suggestedName") == "audit.csv"


def test_export_with_a_key_where_there_is_no_save_dialog(keyed: tuple[str, KeyedApi], page: Page):
    base, api = keyed
    page.add_init_script(NO_SAVE_PICKER)
    open_page(page, base, "?workload=Exchange")
    enter_key(page, FUNCTION_KEY)
    api.seen.clear()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV", exact=True).click()
    assert download.value.suggested_filename == "audit.csv"
    assert download.value.url.startswith("blob:")  # built by the page: the key never went into a download URL
    assert [(route, header) for route, _, header in api.seen] == [("audit", FUNCTION_KEY)]
    saved = Path(download.value.path()).read_bytes()
    assert saved == keyed_csv(base, {"workload": "Exchange"})


def test_export_without_the_key_says_so(keyed: tuple[str, KeyedApi], page: Page):
    base, _ = keyed
    page.add_init_script(SAVE_PICKER)
    open_page(page, base)
    enter_key(page, FUNCTION_KEY)
    page.evaluate("sessionStorage.setItem('auditkeep.functionKey', 'revoked-meanwhile')")
    page.get_by_role("button", name="Export CSV", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("The function key was refused (HTTP 401): check it, enter it again "
                                                   "under Function key and search again.")
    assert page.evaluate("window.savedChunks") == []
