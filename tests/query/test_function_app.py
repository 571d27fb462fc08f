"""The query API through function_app.py: HTTP bindings, and real calls of the user functions."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import azure.functions as func
import fastapi
import pytest

from collector import bootstrap
from tests.app_functions import functions
from tests.query.data import WIDE, WIDE_END, WIDE_START, key_of_record, make_services, oracle

HOST = "https://func-auditkeep.azurewebsites.net"
ROUTES = {
    "query_audit_records": "audit",
    "get_audit_record": "audit/{id}",
    "get_health": "health",
    "get_openapi": "openapi.json",
}


@pytest.mark.parametrize("name, route", ROUTES.items())
def test_http_functions_are_get_routes_with_function_keys(name, route):
    fn = functions()[name]
    raw = [json.loads(b) for b in fn.get_raw_bindings()]  # type: ignore[attr-defined]  # azure.functions' FunctionBuilder output, untyped there
    trigger = next(b for b in raw if b["type"] == "httpTrigger")
    assert trigger["route"] == route
    assert [m.lower() for m in trigger["methods"]] == ["get"]
    assert trigger["authLevel"].lower() == "function"
    assert any(b["type"] == "http" and b["direction"] == "OUT" for b in raw)


@pytest.fixture
def services(dataset, monkeypatch) -> Iterator[object]:
    # What the Function App host does: settings from the environment, Services built once.
    built = make_services(dataset.env)
    bootstrap.set_services(built)
    yield built
    bootstrap.set_services(None)


@dataclass
class Called:
    """What a route returned, read the way the host reads it: chunk by chunk."""

    status_code: int
    headers: dict[str, str]
    chunks: list[bytes]
    streamed: bool

    @property
    def mimetype(self) -> str:
        return self.headers["content-type"].split(";")[0]

    def get_body(self) -> bytes:
        return b"".join(self.chunks)


def call(name: str, path: str, params: dict[str, str] | None = None, route_params: dict[str, str] | None = None) -> Called:
    """Call the user function with a FastAPI request, as the worker does with HTTP streams."""
    query = urllib.parse.urlencode(params or {})
    scope = {"type": "http", "method": "GET", "scheme": "https", "path": f"/api/{path}", "root_path": "",
             "query_string": query.encode(), "headers": [(b"host", urllib.parse.urlsplit(HOST).netloc.encode())],
             "server": (urllib.parse.urlsplit(HOST).netloc, 443), "path_params": route_params or {}}

    async def run() -> Called:
        response = await functions()[name].get_user_function()(fastapi.Request(scope))
        assert isinstance(response, fastapi.Response)
        streamed = isinstance(response, fastapi.responses.StreamingResponse)
        chunks = [chunk async for chunk in response.body_iterator] if streamed else [bytes(response.body)]
        return Called(response.status_code, dict(response.headers), [bytes(c) for c in chunks], streamed)

    return asyncio.run(run())


def test_query_pages_follow_next_links(dataset, services):
    records = []
    params = {**WIDE, "top": "25", "code": "the-function-key"}
    for _ in range(100):
        response = call("query_audit_records", "audit", params)
        assert response.status_code == 200 and response.mimetype == "application/json"
        body = json.loads(response.get_body())
        records += body["value"]
        if "@odata.nextLink" not in body:
            break
        link = urllib.parse.urlsplit(body["@odata.nextLink"])
        assert f"{link.scheme}://{link.netloc}{link.path}" == f"{HOST}/api/audit"
        params = dict(urllib.parse.parse_qsl(link.query))
        assert "code" not in params and "the-function-key" not in body["@odata.nextLink"]  # never echoed
        params["code"] = "the-function-key"  # the client sends its key on every request
    assert [key_of_record(r) for r in records] == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)


def test_csv_streams_chunk_by_chunk_with_the_limit_header(dataset, services):
    response = call("query_audit_records", "audit", {**WIDE, "format": "csv", "code": "the-function-key"})
    assert response.status_code == 200 and response.streamed
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["x-auditkeep-export-limit"] == "1000000"
    assert "content-length" not in response.headers
    # More than one chunk: the export is not built in memory first (api.CHUNK bytes at a time).
    assert len(response.chunks) > 1 and all(len(c) < 2 * 64 * 1024 for c in response.chunks)
    import csv
    import io

    rows = list(csv.reader(io.StringIO(response.get_body().decode("utf-8-sig"), newline="")))
    assert len(rows) - 1 == len(oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True))


def test_export_cap_from_settings_ends_with_a_note_without_the_key(dataset):
    bootstrap.set_services(make_services({**dataset.env, "QUERY_MAX_EXPORT_ROWS": "3"}))
    try:
        response = call("query_audit_records", "audit", {**WIDE, "format": "ndjson", "code": "the-function-key"})
        csv_response = call("query_audit_records", "audit", {**WIDE, "format": "csv", "code": "the-function-key"})
    finally:
        bootstrap.set_services(None)
    lines = response.get_body().decode().splitlines()
    note = json.loads(lines[-1])["@truncated"]
    assert len(lines) == 4 and note["rows"] == 3 and note["reason"] == "limit"
    assert note["nextLink"].startswith(f"{HOST}/api/audit?")
    for body in (response.get_body(), csv_response.get_body()):
        assert b"the-function-key" not in body and b"code=" not in body
    assert not any("the-function-key" in v for v in {**response.headers, **csv_response.headers}.values())


def test_range_limit_from_settings(dataset):
    bootstrap.set_services(make_services({**dataset.env, "QUERY_MAX_RANGE_DAYS": "2"}))
    try:
        response = call("query_audit_records", "audit", {"start": "2024-02-25", "end": "2024-03-01"})
    finally:
        bootstrap.set_services(None)
    assert response.status_code == 400
    error = json.loads(response.get_body())["error"]
    assert error["code"] == "RangeTooLarge" and "QUERY_MAX_RANGE_DAYS" in error["message"] and "2 days" in error["message"]


@pytest.mark.parametrize("params, status, code", [
    ({"top": "0"}, 400, "InvalidParameter"),
    ({"start": "x' or '1' eq '1"}, 400, "InvalidParameter"),
    ({"Top": "5"}, 400, "UnknownParameter"),
    ({"user": "x' or '1' eq '1"}, 200, None),
])
def test_query_errors(services, params, status, code):
    response = call("query_audit_records", "audit", params)
    assert response.status_code == status
    if code:
        assert json.loads(response.get_body())["error"]["code"] == code
    else:
        assert json.loads(response.get_body()) == {"value": []}


def test_raw_record_and_404(dataset, services):
    row = dataset.rows[11]
    response = call("get_audit_record", f"audit/{row.entry.id}", route_params={"id": row.entry.id})
    assert response.status_code == 200 and json.loads(response.get_body()) == row.raw
    missing = call("get_audit_record", "audit/nope", route_params={"id": "nope"})
    assert missing.status_code == 404 and json.loads(missing.get_body())["error"]["code"] == "NotFound"


def test_openapi_document(services):
    response = call("get_openapi", "openapi.json")
    assert response.status_code == 200
    document = json.loads(response.get_body())
    assert document["servers"] == [{"url": f"{HOST}/api"}] and "/audit" in document["paths"]


def test_openapi_needs_no_storage_settings(monkeypatch):
    bootstrap.set_services(None)
    monkeypatch.setenv("QUERY_MAX_RANGE_DAYS", "not a number")
    assert call("get_openapi", "openapi.json").status_code == 200
    response = call("query_audit_records", "audit")
    assert response.status_code == 500
    assert json.loads(response.get_body())["error"]["code"] == "ConfigurationError"
    bootstrap.set_services(None)


def test_health_returns_the_health_report(dataset, services):
    response = call("get_health", "health")
    assert response.status_code == 200
    body = json.loads(response.get_body())
    expected = services.health.report()
    assert body == json.loads(json.dumps(expected))  # same clock, same storage: same report
    assert body


class _Timer(func.TimerRequest):
    past_due = False


def test_http_routes_need_no_credentials_and_the_timer_still_fails_clearly(dataset, monkeypatch):
    """One Services per worker, whichever function runs first: the routes never build the API client,
    and the timer gets the ConfigError of the missing credential when it builds it."""
    from collector.errors import ConfigError

    for name, value in {**dataset.env, "M365_AUTH": "secret"}.items():
        monkeypatch.setenv(name, value)
    bootstrap.set_services(None)
    try:
        assert call("get_health", "health").status_code == 200
        assert call("query_audit_records", "audit", {"top": "1"}).status_code == 200
        with pytest.raises(ConfigError) as caught:
            functions()["collect_audit_logs"].get_user_function()(_Timer())
        assert caught.value.problems == ["M365_CLIENT_ID is required (a GUID such as 00000000-0000-0000-0000-000000000000)",
                                         "M365_AUTH=secret needs M365_CLIENT_SECRET"]
    finally:
        bootstrap.set_services(None)
