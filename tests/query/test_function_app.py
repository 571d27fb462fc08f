"""The query API through function_app.py: HTTP bindings, and real calls of the user functions."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import azure.functions as func
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


def call(name: str, path: str, params: dict[str, str] | None = None, route_params: dict[str, str] | None = None):
    query = urllib.parse.urlencode(params or {})
    request = func.HttpRequest(method="GET", url=f"{HOST}/api/{path}" + (f"?{query}" if query else ""),
                               params=params or {}, route_params=route_params or {}, body=b"")
    response = functions()[name].get_user_function()(request)
    assert isinstance(response, func.HttpResponse)
    return response


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
        assert params["code"] == "the-function-key"
    assert [key_of_record(r) for r in records] == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)


def test_csv_is_materialized_with_the_limit_header(dataset, services):
    response = call("query_audit_records", "audit", {**WIDE, "format": "csv", "workload": "Exchange"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["X-AuditKeep-Export-Limit"] == "1000000"
    assert "X-AuditKeep-Truncated" not in response.headers
    text = response.get_body().decode("utf-8-sig")
    assert text.count("\r\n") >= len(oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: e.workload == "Exchange")) + 1


def test_export_cap_from_settings_sets_the_truncated_header(dataset):
    bootstrap.set_services(make_services({**dataset.env, "QUERY_MAX_EXPORT_ROWS": "3"}))
    try:
        response = call("query_audit_records", "audit", {**WIDE, "format": "ndjson"})
    finally:
        bootstrap.set_services(None)
    lines = response.get_body().decode().splitlines()
    assert response.headers["X-AuditKeep-Truncated"] == "limit"
    assert response.headers["Link"].startswith(f"<{HOST}/api/audit?")
    assert len(lines) == 4 and json.loads(lines[-1])["@truncated"]["rows"] == 3


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
    from collector.health import HealthReporter

    response = call("get_health", "health")
    assert response.status_code == 200
    body = json.loads(response.get_body())
    expected = HealthReporter(content_types=services.settings.content_types, state=services.state, ledger=services.ledger,
                              queue=services.queue, clock=services.clock).report()
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
