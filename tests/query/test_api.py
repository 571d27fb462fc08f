"""The HTTP contract through Api.handle (the code both entry points call): bodies, headers, errors."""

from __future__ import annotations

import csv
import io
import json
import urllib.parse

import pytest

from collector.api import Api, Response, csv_chunks
from collector.models import FIELDS, ContentRef
from tests.query.data import NOW, TENANT, WIDE, WIDE_END, WIDE_START, index_view, key_of_record, oracle

BASE = "https://auditkeep.example/api"


def get(api: Api, route: str, params=None) -> Response:
    return api.handle("GET", route, params or {}, {}, BASE)


def assert_error(response: Response, status: int, code: str, *mentions: str) -> dict:
    assert response.status == status
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    for text in mentions:
        assert text in body["error"]["message"]
    return body


def follow(api: Api, params: dict[str, str]) -> list[dict]:
    """Pages via @odata.nextLink: absolute URL on the same base, parsed back into parameters."""
    records: list[dict] = []
    response = get(api, "audit", params)
    for _ in range(500):
        assert response.status == 200, response.read()
        body = response.json()
        assert set(body) <= {"value", "@odata.nextLink"}
        records += body["value"]
        if "@odata.nextLink" not in body:
            return records
        link = urllib.parse.urlsplit(body["@odata.nextLink"])
        assert f"{link.scheme}://{link.netloc}{link.path}" == BASE + "/audit"
        response = get(api, "audit", urllib.parse.parse_qsl(link.query, keep_blank_values=True))
    raise AssertionError("paging did not end")


def test_json_page_shape_and_next_link(api):
    response = get(api, "audit", {**WIDE, "top": "10", "user": "bob@contoso.com"})
    assert response.status == 200 and response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert len(body["value"]) == 10
    assert all(list(record) == list(FIELDS) for record in body["value"])
    link = urllib.parse.urlsplit(body["@odata.nextLink"])
    query = dict(urllib.parse.parse_qsl(link.query))
    assert link.scheme == "https" and link.netloc == "auditkeep.example" and link.path == "/api/audit"
    assert query["user"] == "bob@contoso.com" and query["top"] == "10" and query["cursor"]
    assert query["start"] == "2024-02-22T00:00:00Z" and query["end"] == "2024-03-02T06:00:00Z"


def test_json_paging_reaches_every_record_with_exact_fields(dataset, api):
    records = follow(api, {**WIDE, "top": "9"})
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)
    by_key = {r.order_key: index_view(r.entry).as_dict() for r in dataset.rows}
    assert [by_key[k] for k in expected] == records


def test_next_link_pins_a_defaulted_range_and_never_echoes_the_function_key(api):
    body = get(api, "audit", {"top": "1", "code": "k3y/+=&x", "q": "Shared Documents/"}).json()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(body["@odata.nextLink"]).query))
    assert "code" not in query and "k3y" not in body["@odata.nextLink"] and query["q"] == "Shared Documents/"
    assert query["start"] == "2024-03-01T06:00:00Z" and query["end"] == "2024-03-02T06:00:00Z"
    assert " " not in body["@odata.nextLink"]


def test_materialized_truncated_export_never_echoes_the_function_key(dataset):
    from collector.query.service import QueryService
    from tests.clock import FakeClock

    query = QueryService(dataset.services.index, clock=FakeClock(NOW), max_export_rows=2)
    response = get(Api(dataset.services, stream=False, query=query), "audit", {**WIDE, "format": "csv", "code": "k3y"})
    assert response.headers["X-AuditKeep-Truncated"] == "limit" and response.headers["Link"].startswith(f"<{BASE}/audit?")
    assert b"k3y" not in response.read() and "k3y" not in response.headers["Link"]
    assert b"@truncated:" in response.read()


def test_last_page_has_no_next_link(api):
    body = get(api, "audit", {**WIDE, "user": "dave@fabrikam.com", "top": "1000"}).json()
    assert body["value"] and "@odata.nextLink" not in body


def parse_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "\n" not in text.replace("\r\n", "").replace("line one\nline two", "")  # CRLF line ends
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_export_streams_every_record(dataset, api):
    response = get(api, "audit", {**WIDE, "format": "csv", "top": "5"})
    assert response.status == 200 and response.streaming
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["X-AuditKeep-Export-Limit"] == "1000000"
    rows = parse_csv(response.read())
    assert rows[0] == list(FIELDS)
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)
    assert len(rows) - 1 == len(expected) > 5  # no top cap
    by_key = {r.order_key: index_view(r.entry) for r in dataset.rows}
    for row, key in zip(rows[1:], expected, strict=True):
        entry = by_key[key]
        values = ["" if v is None else str(v) for v in (getattr(entry, f) for f in FIELDS)]
        assert row == [("'" + v if v[:1] in ("=", "+", "-", "@") else v) for v in values]


def test_csv_quoting_and_unicode(api):
    rows = parse_csv(get(api, "audit", {**WIDE, "format": "csv"}).read())
    objects = {row[4] for row in rows[1:]}
    assert 'https://contoso.sharepoint.com/sites/legal/contract, "final".docx' in objects
    assert "line one\nline two" in objects
    assert "https://contoso.sharepoint.com/sites/Финансы/отчёт.pdf" in objects
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in objects  # not a formula in Excel
    assert "Ünïcödé.Üser@contoso.com" in {row[2] for row in rows[1:]}


def test_csv_encoder_quotes_per_rfc_4180():
    from tests.query.data import build_rows

    entry = build_rows()[1].entry
    from dataclasses import replace

    entry = replace(entry, object='a,"b"\r\nc', userAgent="-x", recordType=None)
    data = b"".join(csv_chunks([entry]))
    line = data.decode("utf-8-sig").split("\r\n", 1)[1]
    assert '"a,""b""\r\nc"' in line and ",'-x," in line and line.endswith(",,Audit.SharePoint," + entry.organizationId + "\r\n")


def test_ndjson_export(dataset, api):
    response = get(api, "audit", {**WIDE, "format": "ndjson", "operation": "Send"})
    assert response.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    lines = response.read().decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [key_of_record(r) for r in records] == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: e.operation == "Send")
    assert all(list(r) == list(FIELDS) for r in records)


def capped(dataset, limit: int, stream: bool) -> Api:
    return Api(dataset.services, stream=stream, query=dataset.query(max_export_rows=limit))


def test_ndjson_truncation_is_the_last_line_and_continues(dataset):
    api = capped(dataset, 7, stream=True)
    lines = get(api, "audit", {**WIDE, "format": "ndjson"}).read().decode().splitlines()
    assert len(lines) == 8
    note = json.loads(lines[-1])["@truncated"]
    assert note["reason"] == "limit" and note["rows"] == 7 and "QUERY_MAX_EXPORT_ROWS" in note["message"]
    link = urllib.parse.urlsplit(note["nextLink"])
    rest = get(api, "audit", urllib.parse.parse_qsl(link.query)).read().decode().splitlines()
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)
    assert [key_of_record(json.loads(line)) for line in lines[:-1] + rest[:-1]] == expected[:14]


def test_csv_truncation_is_a_last_one_cell_row(dataset):
    api = capped(dataset, 3, stream=True)
    rows = parse_csv(get(api, "audit", {**WIDE, "format": "csv"}).read())
    assert len(rows) == 5 and rows[-1][0].startswith("@truncated: the export stopped at 3 rows")
    assert "QUERY_MAX_EXPORT_ROWS" in rows[-1][0] and "continue with https://auditkeep.example/api/audit?" in rows[-1][0]
    assert rows[-1][1:] == [""] * 11


def test_materialized_export_sets_headers(dataset):
    api = capped(dataset, 3, stream=False)
    response = get(api, "audit", {**WIDE, "format": "csv"})
    assert isinstance(response.body, bytes)
    assert response.headers["X-AuditKeep-Truncated"] == "limit"
    assert response.headers["Link"].startswith("<https://auditkeep.example/api/audit?") and 'rel="next"' in response.headers["Link"]
    whole = get(capped(dataset, 10_000, stream=False), "audit", {**WIDE, "format": "csv"})
    assert "X-AuditKeep-Truncated" not in whole.headers and "@truncated" not in whole.read().decode()


def test_raw_record_is_returned_exactly_as_archived(dataset, api):
    for row in (dataset.rows[0], dataset.rows[7], dataset.rows[-1], dataset.row("ffff0001-tie0-4000-8000-000000000000")):
        response = get(api, "audit/" + row.entry.id)
        assert response.status == 200 and response.json() == row.raw
    # Ids are case-insensitive in the index.
    assert get(api, "audit/" + dataset.rows[3].entry.id.upper()).json() == dataset.rows[3].raw
    twin = get(api, "audit/twin-0000-4000-8000-000000000000").json()
    assert twin["OrganizationId"] == TENANT


def test_raw_record_with_a_lone_surrogate_escape_is_still_json(dataset, api):
    from dataclasses import replace
    from datetime import UTC, datetime

    from collector.index import IndexItem

    when = datetime(2023, 6, 1, 12, tzinfo=UTC)  # outside every range the other tests query
    body = b'[{"Id": "surrogate-0001", "UserId": "weird@contoso.com", "Note": "\\ud800 and \\u00e9"}]'
    archived = dataset.services.archive.put(ContentRef("Audit.General", "surrogate-blob", "", when, when), body, 1)
    entry = replace(dataset.rows[0].entry, id="surrogate-0001", user="weird@contoso.com", time="2023-06-01T12:00:00Z")
    dataset.services.index.write([IndexItem(entry, when, archived.name, 0)])
    response = get(api, "audit/surrogate-0001")
    assert response.status == 200
    assert json.loads(response.read().decode("ascii"))["Note"] == "\ud800 and \u00e9"


@pytest.mark.parametrize("record_id", ["00000000-0000-0000-0000-000000000000", "nope", "a/b", "x' or '1' eq '1",
                                       "%2F", "..", "\u202e\u0000", "a\x85b", "ü" * 200, "\t"])
def test_unknown_ids_are_404(api, record_id):
    assert_error(get(api, "audit/" + record_id), 404, "NotFound", "no audit record")


@pytest.mark.parametrize("record_id", ["x" * 257, "a\ud800"])
def test_invalid_ids_are_400(api, record_id):
    assert_error(get(api, "audit/" + record_id), 400, "InvalidParameter", "id")


@pytest.mark.parametrize("params, parameter", [
    ({"start": "not a date"}, "start"),
    ({"start": "2024-03-02", "end": "2024-03-01"}, "end"),
    ({"top": "0"}, "top"),
    ({"top": "1001"}, "top"),
    ({"recordType": "abc"}, "recordType"),
    ({"format": "xlsx"}, "format"),
    ({"userr": "x"}, "userr"),
    ({"cursor": "A" * 30}, "cursor"),
])
def test_bad_requests_are_400_and_name_the_parameter(api, params, parameter):
    assert_error(get(api, "audit", params), 400, get(api, "audit", params).json()["error"]["code"], parameter)


@pytest.mark.parametrize("params", [
    {"start": "0001-01-01", "end": "0001-01-02"},
    {"start": "0001-01-01", "end": "9999-12-31T23:59:59Z", "user": "alice@contoso.com"},
    {"start": "9999-12-01", "end": "9999-12-31T23:59:59.999999Z", "operation": "Send"},
    {"start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:59:59Z", "format": "csv"},
    {"start": "1969-12-31T23:00:00Z", "end": "1970-01-01T01:00:00Z", "format": "ndjson"},
    {"start": "2286-01-01", "end": "2286-01-02"},
    {"start": "0001-01-01T00:00:00+14:00", "end": "0001-01-02T00:00:00Z"},
])
def test_extreme_dates_never_fail(api, params):
    response = get(api, "audit", params)
    assert response.status in (200, 400), response.read()
    if response.status == 400:
        assert_error(response, 400, response.json()["error"]["code"])


def test_not_found_routes_and_methods(api):
    assert_error(get(api, "nothing"), 404, "NotFound", "openapi.json")
    assert_error(get(api, ""), 404, "NotFound")
    response = api.handle("POST", "audit", {}, {}, BASE)
    assert_error(response, 405, "MethodNotAllowed", "GET")
    assert response.headers["Allow"] == "GET"


def test_server_failures_are_a_json_500_without_details():
    def broken():
        raise RuntimeError("storage said: AccountKey=secret")

    body = assert_error(Api(broken, stream=False).audit({}, BASE), 500, "InternalError", "server")
    assert "secret" not in json.dumps(body)


class FailingIndex:
    """Our own AuditIndex stand-in: yields a few real rows, then the storage connection 'breaks'."""

    def __init__(self, index, after_rows: int) -> None:
        self.index, self.after_rows = index, after_rows

    def months(self):
        return self.index.months()

    def scan(self, *args, **kwargs):
        for n, hit in enumerate(self.index.scan(*args, **kwargs)):
            if n == self.after_rows:
                raise ConnectionError("storage went away")
            yield hit


def test_a_failure_before_the_first_chunk_is_a_json_500(dataset):
    from collector.query.service import QueryService
    from tests.clock import FakeClock

    query = QueryService(FailingIndex(dataset.services.index, 0), clock=FakeClock(NOW))
    for fmt in ("json", "csv", "ndjson"):
        assert_error(get(Api(dataset.services, query=query), "audit", {"format": fmt}), 500, "InternalError")


def test_configuration_errors_are_a_json_500():
    from collector.settings import Settings

    response = Api(lambda: __import__("collector.bootstrap").bootstrap.Services(
        Settings.from_env({"QUERY_MAX_RANGE_DAYS": "zero"}))).audit({}, BASE)
    assert_error(response, 500, "ConfigurationError", "QUERY_MAX_RANGE_DAYS")


def test_openapi_route(api):
    response = get(api, "openapi.json")
    assert response.status == 200 and response.json()["servers"] == [{"url": BASE}]


def test_now_for_the_default_range_comes_from_the_services_clock(dataset, api):
    body = get(api, "audit", {"top": "1"}).json()
    assert body["value"][0]["time"] <= NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_long_unfiltered_range_is_served_page_by_page_within_the_budget(api):
    """Issue 10: no 31-day cap by default; the budget bounds the page, and paging continues."""
    page = get(api, "audit", {"start": "2020-01-01", "top": "5"})
    assert page.status == 200
    body = page.json()
    assert len(body["value"]) == 5 and "@odata.nextLink" in body
