"""`collector serve` over real HTTP on a free port: same contract, streamed exports, Power Query-style paging."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from collector.api import Api
from collector.index import Hit
from collector.models import FIELDS
from collector.query.service import QueryService
from collector.serve import QueryApiServer, make_server
from tests.clock import FakeClock
from tests.query.data import NOW, WIDE, WIDE_END, WIDE_START, index_view, key_of_record, oracle
from tests.serving import running

DOCS = Path(__file__).resolve().parents[2] / "docs" / "powerbi.md"


@pytest.fixture(scope="module")
def server(dataset) -> Iterator[QueryApiServer]:
    with running(make_server(dataset.services, "127.0.0.1", 0)) as srv:
        yield srv


@pytest.fixture(scope="module")
def web() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_binds_loopback_on_the_requested_port(server):
    host, port = server.server_address[:2]
    assert host == "127.0.0.1" and port > 0 and server.url == f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- the client of docs/powerbi.md


def audit_records(base_url: str, key: str, query: dict[str, str], session: requests.Session) -> Iterator[dict]:
    """What the Power Query function in docs/powerbi.md does: one static base URL, RelativePath
    "api/audit", Query = the previous page's nextLink query (Uri.Parts(next)[Query]), the function key in
    x-functions-key; stop when a page has no @odata.nextLink."""
    while True:
        response = session.get(base_url.rstrip("/") + "/api/audit", params=query, headers={"x-functions-key": key},
                               timeout=30)
        response.raise_for_status()
        page = response.json()
        yield from page["value"]
        link = page.get("@odata.nextLink")
        if not link:
            return
        assert link.startswith(base_url.rstrip("/") + "/api/audit?")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query, keep_blank_values=True))


def test_python_client_pages_like_power_query(dataset, server, web):
    records = list(audit_records(server.url, "unused-locally", {**WIDE, "top": "11"}, web))
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)
    assert [key_of_record(r) for r in records] == expected
    assert len({(r["id"], r["organizationId"]) for r in records}) == len(records)


def test_python_client_through_short_pages(dataset, web):
    query = QueryService(dataset.services.index, clock=FakeClock(NOW), scan_budget_rows=6)
    with running(make_server(dataset.services, "127.0.0.1", 0, api=Api(dataset.services, query=query))) as srv:
        records = list(audit_records(srv.url, "k", {**WIDE, "workload": "Exchange", "result": "Failed", "top": "2"}, web))
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: e.workload == "Exchange" and e.result == "Failed")
    assert [key_of_record(r) for r in records] == expected and expected


def test_docs_describe_the_same_paging(dataset):
    text = DOCS.read_text(encoding="utf-8")
    for needle in ("@odata.nextLink", "x-functions-key", "RelativePath", "Uri.Parts", "Web.Contents", "Query =",
                   "format=csv", "Anonymous", "Invoke-RestMethod", "QUERY_MAX_EXPORT_ROWS", "@truncated"):
        assert needle in text, needle


# ---------------------------------------------------------------- the contract over HTTP


def test_json_over_http(dataset, server, web):
    response = web.get(server.url + "/api/audit", params={**WIDE, "user": "carol@contoso.com", "top": "3"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert [list(r) for r in body["value"]] == [list(FIELDS)] * 3
    assert body["@odata.nextLink"].startswith(server.url + "/api/audit?")


def test_host_header_builds_the_next_link_unless_it_is_odd(server):
    port = server.server_address[1]
    for host, expected in ((f"localhost:{port}", f"http://localhost:{port}/api/audit?"),
                           ("bad host\t<x>", server.url + "/api/audit?")):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("GET", "/api/audit?top=1", skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        body = json.loads(connection.getresponse().read())
        connection.close()
        assert body["@odata.nextLink"].startswith(expected)


def test_csv_streams_with_chunked_transfer(dataset, server):
    url = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("GET", "/api/audit?" + urllib.parse.urlencode({**WIDE, "format": "csv"}))
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Length") is None
    assert response.getheader("Content-Type") == "text/csv; charset=utf-8"
    data = response.read()
    connection.close()
    assert data.startswith(b"\xef\xbb\xbf" + ",".join(FIELDS).encode() + b"\r\n")
    import csv
    import io

    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert len(rows) - 1 == len(oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True))


def test_ndjson_truncation_over_http(dataset, web):
    query = QueryService(dataset.services.index, clock=FakeClock(NOW), max_export_rows=4)
    with running(make_server(dataset.services, "127.0.0.1", 0, api=Api(dataset.services, query=query))) as srv:
        response = web.get(srv.url + "/api/audit", params={**WIDE, "format": "ndjson"})
        lines = response.text.splitlines()
        assert response.headers["X-AuditKeep-Export-Limit"] == "4" and len(lines) == 5
        note = json.loads(lines[-1])["@truncated"]
        follow = web.get(note["nextLink"]).text.splitlines()
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)
    assert [key_of_record(json.loads(line)) for line in lines[:-1] + follow[:-1]] == expected[:8]


class BreakingIndex:
    """Our own index stand-in: many large rows, then the storage connection fails mid-export."""

    def __init__(self, template) -> None:
        self.template = template

    def months(self) -> list[str]:
        return ["202403"]

    def scan(self, *args, **kwargs) -> Iterator[Hit]:
        for n in range(3000):
            yield Hit(f"{8290000000 + n:010d}id{n}", replace(self.template, id=f"id{n}", object="o" * 300))
        raise ConnectionError("storage went away")


def test_a_failure_mid_stream_ends_the_response_incomplete(dataset, web):
    template = index_view(dataset.rows[0].entry)
    query = QueryService(BreakingIndex(template), clock=FakeClock(NOW))
    with running(make_server(dataset.services, "127.0.0.1", 0, api=Api(dataset.services, query=query))) as srv:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            _ = web.get(srv.url + "/api/audit", params={"format": "csv"}).content
        assert web.get(srv.url + "/api/openapi.json").status_code == 200  # the server lives on


def test_raw_record_and_404_over_http(dataset, server, web):
    row = dataset.rows[5]
    response = web.get(server.url + "/api/audit/" + urllib.parse.quote(row.entry.id))
    assert response.status_code == 200 and response.json() == row.raw
    missing = web.get(server.url + "/api/audit/" + urllib.parse.quote("no/such id", safe=""))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"


@pytest.mark.parametrize("query, parameter", [
    ("start=garbage", "start"), ("top=5000", "top"), ("recordType=x", "recordType"), ("format=pdf", "format"),
    ("start=2024-03-02&end=2024-03-01", "end"), ("usre=a", "usre"), ("cursor=%00%01", "cursor"),
    ("user=%ED%A0%80&q=%FF%FE", None), ("q=" + "%E2%80%AE" * 2000, "q"),
])
def test_errors_over_http(server, web, query, parameter):
    response = web.get(server.url + "/api/audit?" + query)
    if parameter is None:  # undecodable bytes become U+FFFD and simply match nothing
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.text
    assert parameter in response.json()["error"]["message"]


def test_methods_and_unknown_paths(server, web):
    head = web.head(server.url + "/api/audit")
    assert head.status_code == 200 and head.content == b""
    post = web.post(server.url + "/api/audit", data=b"{}")
    assert post.status_code == 405 and post.json()["error"]["code"] == "MethodNotAllowed"
    for path in ("/", "/index.html", "/api", "/api/audits", "/apix/audit"):
        response = web.get(server.url + path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "NotFound", path


def test_openapi_over_http_points_at_this_server(server, web):
    document = web.get(server.url + "/api/openapi.json").json()
    assert document["servers"] == [{"url": server.url + "/api"}]


def test_default_range_uses_the_injected_clock(dataset, server, web):
    records = web.get(server.url + "/api/audit", params={"top": "1000"}).json()["value"]
    assert [key_of_record(r) for r in records] == oracle(dataset.rows, NOW - timedelta(hours=24), NOW, lambda e: True)
