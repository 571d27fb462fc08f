"""The search page in a real browser against `collector serve` (no keys) on collected simulator data.

Each test drives the page as a person would (labels, buttons, keys) and checks what it shows against
what the API itself answers for the same query.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from playwright.sync_api import Page, expect

from .conftest import api_records, screenshot
from .pages import load_all, open_page, page_query, searched, shown_ids

CONTROLS = ("Search", "User", "Activity", "Workload", "Result", "Client IP", "Record type", "From", "To")
COLUMNS = ["Time", "User", "Activity", "Object", "Result", "Client IP", "Workload"]


@pytest.fixture(scope="module")
def everything(served: str) -> list[dict[str, Any]]:
    """The API's answer to the page's first query (no parameters: its last 24 hours)."""
    records = api_records(served, {})
    assert len(records) > 250, len(records)  # several pages of 100, so paging is exercised
    return records


def common(records: list[dict[str, Any]], field: str) -> str:
    """The most frequent non-empty value of a field that does not hold for every record."""
    counts = Counter(str(r[field]) for r in records if r[field] not in (None, ""))
    value, count = counts.most_common(1)[0]
    assert count < len(records)
    return value


def test_the_page_has_every_control_and_column(served: str, page: Page, everything: list[dict[str, Any]]):
    open_page(page, served)
    for label in CONTROLS:
        expect(page.get_by_label(label, exact=True)).to_be_editable()
    expect(page.get_by_label("Quick range", exact=True)).to_have_value("24h")
    for option in ("Last hour", "Last 24 hours", "Last 7 days", "Last 30 days", "Custom"):
        expect(page.get_by_label("Quick range", exact=True).locator("option", has_text=option)).to_have_count(1)
    for name in ("Search", "Export CSV", "Load more", "Copy link"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(1)
    assert page.locator("#results thead th").all_inner_texts() == COLUMNS
    # Newest first, the first page of the API's answer.
    assert shown_ids(page) == [r["id"] for r in everything[:100]]
    first = page.locator("#results tbody tr").first.locator("td")
    record = everything[0]
    when = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    assert first.all_inner_texts() == [when.strftime("%Y-%m-%d %H:%M:%S UTC"), record["user"], record["operation"],
                                      record["object"], record["result"], record["clientIp"], record["workload"]]
    screenshot(page, "search")


def test_each_control_changes_the_results_as_the_api_would(served: str, page: Page, everything: list[dict[str, Any]]):
    user = common(everything, "user")
    controls = [
        ("User", "user", user),
        ("Activity", "operation", common(everything, "operation")),
        ("Workload", "workload", common(everything, "workload")),
        ("Result", "result", common(everything, "result")),
        ("Client IP", "clientIp", common(everything, "clientIp")),
        ("Record type", "recordType", common(everything, "recordType")),
        ("Search", "q", user.split("@")[0].upper()),  # any field, case-insensitive
    ]
    open_page(page, served)
    for n, (label, name, value) in enumerate(controls):
        page.get_by_role("button", name="Clear", exact=True).click()
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        # Enter submits from any field; the Search button too (every other control).
        searched(page, (lambda f=field: f.press("Enter")) if n % 2 else page.get_by_role("button", name="Search", exact=True).click)
        load_all(page)
        query = page_query(page)
        assert query[name] == value and set(query) == {name, "start", "end"}, query  # the quick range pinned
        expected = [r["id"] for r in api_records(served, query)]
        assert shown_ids(page) == expected, label
        assert 0 < len(expected) < len(everything), label  # the filter narrowed the results


def test_quick_ranges_and_custom_from_to(served: str, page: Page, collected: Any):
    open_page(page, served)
    quick = page.get_by_label("Quick range", exact=True)
    for value, span in (("7d", timedelta(days=7)), ("30d", timedelta(days=30)), ("1h", timedelta(hours=1))):
        quick.select_option(value)
        start = datetime.fromisoformat(page.get_by_label("From", exact=True).input_value().replace("Z", "+00:00"))
        end = datetime.fromisoformat(page.get_by_label("To", exact=True).input_value().replace("Z", "+00:00"))
        assert abs((end - start) - span) <= timedelta(minutes=2), (value, start, end)
        assert abs(end - datetime.now(UTC)) <= timedelta(minutes=2)
    searched(page, page.get_by_role("button", name="Search", exact=True).click)
    last_hour = page_query(page)
    assert set(last_hour) == {"start", "end"}
    assert shown_ids(page) == [r["id"] for r in api_records(served, last_hour)]
    # Typing a time makes the range custom; From is inclusive, To exclusive, as the API says.
    start = (collected.now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (collected.now - timedelta(hours=3, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.get_by_label("From", exact=True).fill(start)
    page.get_by_label("To", exact=True).fill(end)
    expect(quick).to_have_value("custom")
    searched(page, lambda: page.get_by_label("To", exact=True).press("Enter"))
    assert page_query(page) == {"start": start, "end": end}
    expected = [r["id"] for r in api_records(served, {"start": start, "end": end})]
    assert shown_ids(page) == expected and len(expected) > 0


def test_paging_reaches_the_last_page(served: str, page: Page):
    open_page(page, served, "?top=60")
    assert len(shown_ids(page)) == 60
    pressed = load_all(page)
    expected = [r["id"] for r in api_records(served, {"top": "60"})]
    assert pressed >= 4 and shown_ids(page) == expected
    expect(page.locator("#status")).to_contain_text(f"{len(expected)} records shown, newest first; that is all of them")


def test_a_row_opens_the_raw_record_with_a_copy_button(served: str, page: Page, everything: list[dict[str, Any]]):
    open_page(page, served)
    record = everything[3]
    page.locator("#results tbody tr:nth-child(4) td:nth-child(3)").click()  # anywhere on the row
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text(f"Record {record['id']}")
    expect(page.locator("#detail-status")).to_have_text("The full record, exactly as archived.")
    text = page.locator("#detail-body").inner_text()
    raw = requests.get(f"{served}/api/audit/{record['id']}", timeout=30).json()
    assert json.loads(text) == raw and raw["Id"] == record["id"]
    assert text == json.dumps(raw, indent=2, ensure_ascii=False)  # pretty-printed
    screenshot(page, "detail")
    dialog.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#detail-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == text
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Focus goes back to the row it came from (on the dialog's close event, so wait for it; it
    # fails after the default timeout if focus never returns).
    page.wait_for_function("id => document.activeElement?.closest('tr')?.dataset.id === id", arg=record["id"])


def test_export_csv_downloads_the_same_records_as_the_api(served: str, page: Page, everything: list[dict[str, Any]]):
    workload = common(everything, "workload")
    open_page(page, served, f"?workload={workload}&top=25")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV", exact=True).click()
    saved = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == "audit.csv"
    # No key: a plain link to the API's own export, streamed by the browser to disk; `top` is a page size only.
    api = requests.get(f"{served}/api/audit", params={"workload": workload, "format": "csv"}, timeout=30)
    assert saved == api.content
    rows = list(csv.DictReader(io.StringIO(saved.decode("utf-8-sig"), newline="")))
    assert [row["id"] for row in rows] == [r["id"] for r in api_records(served, {"workload": workload})]
    assert len(rows) > 25


def test_a_bad_date_shows_the_api_error(served: str, page: Page):
    open_page(page, served)
    page.get_by_label("From", exact=True).fill("2024-02-30")
    expect(page.get_by_label("Quick range", exact=True)).to_have_value("custom")
    searched(page, page.get_by_role("button", name="Search", exact=True).click)
    message = requests.get(f"{served}/api/audit", params={"start": "2024-02-30"}, timeout=30).json()["error"]["message"]
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_have_text(f"{message} (InvalidParameter, HTTP 400)")
    assert "2024-02-30" in message
    expect(page.locator("#status")).to_have_text("The search failed.")
    expect(page.get_by_role("button", name="Export CSV", exact=True)).to_be_disabled()
    assert shown_ids(page) == []
    screenshot(page, "error")


def test_the_url_holds_the_state_and_the_back_button_works(served: str, page: Page, everything: list[dict[str, Any]]):
    user, operation = common(everything, "user"), common(everything, "operation")
    open_page(page, served)
    page.get_by_label("Quick range", exact=True).select_option("custom")
    page.get_by_label("User", exact=True).fill(user)
    searched(page, lambda: page.get_by_label("User", exact=True).press("Enter"))
    by_user = shown_ids(page)
    page.get_by_label("User", exact=True).fill("")
    page.get_by_label("Activity", exact=True).fill(operation)
    searched(page, lambda: page.get_by_label("Activity", exact=True).press("Enter"))
    by_operation = shown_ids(page)
    assert page_query(page) == {"operation": operation} and by_operation == [
        r["id"] for r in api_records(served, {"operation": operation})][:100]

    searched(page, page.go_back)
    assert page_query(page) == {"user": user} and shown_ids(page) == by_user
    expect(page.get_by_label("User", exact=True)).to_have_value(user)
    expect(page.get_by_label("Activity", exact=True)).to_have_value("")
    searched(page, page.go_forward)
    assert shown_ids(page) == by_operation
    expect(page.get_by_label("Activity", exact=True)).to_have_value(operation)

    # The copyable link reproduces the query in a fresh page.
    page.get_by_role("button", name="Copy link", exact=True).click()
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == page.url
    fresh = page.context.new_page()
    open_page(fresh, link.split("/api/ui")[0], "?" + link.split("?", 1)[1])
    assert shown_ids(fresh) == by_operation
    expect(fresh.get_by_label("Activity", exact=True)).to_have_value(operation)
    expect(fresh.get_by_label("Quick range", exact=True)).to_have_value("24h")  # no times in the URL: the API's default


def test_times_in_utc_with_a_local_time_toggle(served: str, page: Page, everything: list[dict[str, Any]]):
    open_page(page, served)
    first = page.locator("#results tbody tr").first.locator("time")
    when = datetime.fromisoformat(everything[0]["time"].replace("Z", "+00:00"))
    expect(first).to_have_text(when.strftime("%Y-%m-%d %H:%M:%S UTC"))
    page.get_by_label("Local time", exact=True).check()
    local = when.astimezone(ZoneInfo("Asia/Kolkata"))  # the browser context's time zone
    expect(first).to_have_text(local.strftime("%Y-%m-%d %H:%M:%S UTC+05:30"))
    expect(page.locator("#health-summary time").first).to_contain_text("UTC+05:30")  # one format everywhere
    page.reload()
    page.wait_for_selector("#results[data-searches='1']", state="attached")
    expect(first).to_have_text(local.strftime("%Y-%m-%d %H:%M:%S UTC+05:30"))  # the preference is kept


def test_health_shows_how_fresh_the_data_is(served: str, page: Page):
    health = requests.get(f"{served}/api/health", timeout=30).json()
    open_page(page, served)
    summary = page.locator("#health-summary")
    expect(summary).to_contain_text(f"Collector {health['status']}")

    def shown_time(iso: str) -> str:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S UTC")

    oldest = min(t["checkpoint"] for t in health["contentTypes"])
    latest = max(t["lastSuccessfulCollect"] for t in health["contentTypes"])
    expect(summary).to_contain_text(f"complete up to {shown_time(oldest)}")
    expect(summary).to_contain_text(f"last successful collect {shown_time(latest)}")
    page.locator("#health-details summary").click()
    rows = page.locator("#health-types tr")
    expect(rows).to_have_count(len(health["contentTypes"]))
    for n, entry in enumerate(health["contentTypes"]):
        assert rows.nth(n).locator("td").all_inner_texts() == [
            entry["contentType"], entry["status"], shown_time(entry["checkpoint"]), shown_time(entry["lastSuccessfulCollect"])]


def test_keyboard_focus_and_contrast(served: str, page: Page):
    open_page(page, served)
    # Keyboard only: Tab from the search field reaches the next field; arrows move between rows;
    # Enter opens a record, Escape closes it.
    page.get_by_label("Search", exact=True).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-user"
    page.locator("#results tbody tr").first.locator("button.open").focus()
    page.keyboard.press("ArrowDown")
    second = page.locator("#results tbody tr").nth(1)
    assert page.evaluate("document.activeElement.closest('tr').dataset.id") == second.get_attribute("data-id")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    # Visible focus: a keyboard-focused control has a solid outline of at least 2 px.
    page.keyboard.press("Tab")
    outline = page.evaluate("(() => { const s = getComputedStyle(document.activeElement); "
                            "return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()")
    assert outline[0] == "solid" and outline[1] >= 2, outline
    # Contrast of text against its (first opaque) background: WCAG AA's 4.5:1 for normal text.
    ratios = page.evaluate(CONTRAST, ["td", "th", "label", "button.primary", "button.open", "#status", ".hint",
                                      "#health-summary", "h1 .sub", ".toggle"])
    low = {selector: ratio for selector, ratio in ratios.items() if ratio < 4.5}
    assert not low, low


CONTRAST = """selectors => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = {};
  for (const selector of selectors) {
    const element = document.querySelector(selector);
    if (!element) { out[selector] = 0; continue; }
    const [a, b] = [lum(rgb(getComputedStyle(element).color)), lum(background(element))];
    out[selector] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
}"""
