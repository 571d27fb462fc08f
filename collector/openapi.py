"""The OpenAPI 3.0 document of the query API, built from the same parameter table the parser uses."""

from __future__ import annotations

from .health import STATUSES
from .models import FIELDS
from .query.budget import EXPORT_REQUESTS, PAGE_REQUESTS, PAGE_ROWS, PAGE_SECONDS
from .query.cursor import CURSOR_PATTERN
from .query.params import DEFAULT_TOP, FORMATS, MAX_LIST_ITEMS, MAX_TOP, MAX_VALUE_LENGTH, PARAMETERS, TIME_PATTERN, Param

VERSION = "1.0.0"

_DESCRIPTION = f"""\
Microsoft 365 audit records collected by AuditKeep, newest first.

**Paging.** A JSON page holds up to `top` records and, unless it is the last page, an absolute
`@odata.nextLink` URL that repeats the query with `start`/`end` pinned and an opaque `cursor`.
Follow it unchanged until a page has no `@odata.nextLink`. To keep every request short and cheap,
a page stops after a bounded amount of work ({PAGE_REQUESTS} storage requests, {PAGE_ROWS:,} index rows or about
{PAGE_SECONDS:.0f} seconds, whichever comes first): with a selective filter over a long range, or values that match
nothing, a page can then hold fewer than `top` records, even none, and still carry an
`@odata.nextLink`. Keep following it: paging reaches every result.

**Exports.** `format=csv` and `format=ndjson` return every matching record in one response (no
`top` cap), up to `QUERY_MAX_EXPORT_ROWS` rows (header `X-AuditKeep-Export-Limit`). When an
export stops early, its last NDJSON line is `{{"@truncated": {{"reason", "rows", "message",
"nextLink"}}}}` and its last CSV row holds a single cell starting with `@truncated:`;
`nextLink` continues the export. `reason` is `limit` (the row cap), `time` (the Function App
stops after about three minutes to stay inside the HTTP time limit) or `requests` (an export makes
at most {EXPORT_REQUESTS:,} storage requests). Exports stream in Azure as locally. CSV is UTF-8 with a BOM, CRLF line ends and RFC 4180 quoting;
cells starting with `=`, `+`, `-`, `@`, tab or CR get a leading `'` so Excel does not evaluate them.

**Ranges.** Any range is allowed, in both tiers: each page and export is bounded by the budget
above, and a page that spends it ends with a `@odata.nextLink` at the position reached (possibly
with no rows: a rare filter over years takes several pages). An operator may cap ranges without
`user` or `operation` with `QUERY_MAX_RANGE_DAYS` (default 0: no cap; longer ranges then get 400
`RangeTooLarge`). Unknown query parameters are refused (400), so
a typo never widens a search.

**Tiers.** Days still in the hot index (Table storage) are read from it; older days that were
compacted into the cold tier (Parquet files in Blob storage) are read from there, with the same
filters, order, paging and formats; a cursor made on one tier continues on the other. The header
`X-AuditKeep-Tiers` says which served a response: `hot`, `cold`, `hot,cold`, or `none` when no
day of the range exists in either (a streamed export names the tiers holding its range; a
truncated export's last line names those it read). Cold blob reads count against the same
storage request budget as index requests.

**Authentication.** In Azure every route needs the function key, in the `x-functions-key` header
(preferred) or the `code` query parameter; responses never repeat the key, so a client sends it
on every request, next links included. `python -m collector serve` (local) needs none.
Records have exactly the fields {", ".join(f"`{f}`" for f in FIELDS)}.
"""


_TIERS_HEADER: dict[str, object] = {
    "description": "The storage tiers that served the response: `hot` (the Table index), `cold` (compacted "
                   "Parquet days), `hot,cold`, or `none`. A streamed export names the tiers holding its range.",
    "schema": {"type": "string", "enum": ["hot", "cold", "hot,cold", "none"]},
}


def _string_list(description: str) -> dict[str, object]:
    return {"type": "array", "maxItems": MAX_LIST_ITEMS, "items": {"type": "string", "maxLength": MAX_VALUE_LENGTH},
            "description": description}


def _schema(param: Param) -> dict[str, object]:
    if param.kind == "datetime":
        return {"type": "string", "pattern": f"^{TIME_PATTERN}$", "example": "2024-05-01T08:00:00Z"}
    if param.kind == "list":
        return _string_list("comma-separated")
    if param.kind == "int-list":
        return {"type": "array", "maxItems": MAX_LIST_ITEMS,
                "items": {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}}
    if param.kind == "top":
        return {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": DEFAULT_TOP}
    if param.kind == "format":
        return {"type": "string", "enum": list(FORMATS), "default": "json"}
    if param.kind == "cursor":
        return {"type": "string", "pattern": f"^{CURSOR_PATTERN}$"}
    return {"type": "string", "maxLength": MAX_VALUE_LENGTH}


def _parameter(param: Param) -> dict[str, object]:
    # allowEmptyValue: the parser reads `name=` as "not given" (clients and forms send empty fields).
    spec: dict[str, object] = {"name": param.name, "in": "query", "required": False, "description": param.description,
                            "allowEmptyValue": True, "schema": _schema(param)}
    if param.kind in ("list", "int-list"):
        spec.update(style="form", explode=False)
    return spec


def _error(description: str) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_UNAUTHORIZED = {"description": "Azure only: the function key is missing or wrong (empty body)."}
# The HTTP front end refuses a long URL before the API sees it: Azure Functions at 4 KB ("Azure
# Functions HTTP trigger", Limits), `collector serve` (http.server) at a 64 KiB request line.
_URI_TOO_LONG = {"description": "The URL is too long for the HTTP front end (Azure Functions: 4 KB; `collector serve`: "
                                "a 64 KiB request line); no JSON body. Split long lists over several requests."}


def document(server_url: str | None = None) -> dict[str, object]:
    """The OpenAPI document; `server_url` is the API root (`http://127.0.0.1:7071/api`), if known."""
    record_properties: dict[str, object] = {name: {"type": "string"} for name in FIELDS}
    record_properties["recordType"] = {"type": "integer", "nullable": True}
    record_properties["time"] = {"type": "string", "format": "date-time", "description": "UTC, `YYYY-MM-DDTHH:MM:SSZ`"}
    server = server_url.rstrip("/") if server_url else "/api"
    return {
        "openapi": "3.0.3",
        "info": {"title": "AuditKeep query API", "version": VERSION, "description": _DESCRIPTION},
        "servers": [{"url": server}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": {
            "/audit": {"get": {
                "operationId": "queryAuditRecords",
                "summary": "Search audit records (JSON pages, CSV or NDJSON export)",
                "parameters": [_parameter(p) for p in PARAMETERS],
                "responses": {
                    "200": {
                        "description": "A JSON page, or the whole CSV/NDJSON export.",
                        "headers": {
                            "X-AuditKeep-Tiers": _TIERS_HEADER,
                            "X-AuditKeep-Export-Limit": {"description": "CSV/NDJSON: the QUERY_MAX_EXPORT_ROWS cap.",
                                                         "schema": {"type": "integer"}},
                            "X-AuditKeep-Truncated": {"description": "Only on a materialized (not streamed) export: "
                                                      "`limit`, `time` or `requests` when it stopped early. Streamed "
                                                      "exports (the Function App, `collector serve`) say so in their "
                                                      "last line instead.",
                                                      "schema": {"type": "string", "enum": ["limit", "time", "requests"]}},
                        },
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/AuditPage"}},
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error("A parameter is invalid or unknown; the message names it and what was expected."),
                    "401": _UNAUTHORIZED,
                    "414": _URI_TOO_LONG,
                    "500": _error("A server-side failure (storage unavailable, bad configuration)."),
                },
            }},
            "/audit/{id}": {"get": {
                "operationId": "getAuditRecord",
                "summary": "The full raw record exactly as archived",
                "parameters": [{"name": "id", "in": "path", "required": True, "description": "The record's `Id`.",
                                "schema": {"type": "string", "minLength": 1, "maxLength": 256}}],
                "responses": {
                    "200": {"description": "The raw record (JSON object, schema varies by workload).",
                            "headers": {"X-AuditKeep-Tiers": _TIERS_HEADER},
                            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}},
                    "400": _error("The id is not valid text."),
                    "401": _UNAUTHORIZED,
                    "414": _URI_TOO_LONG,
                    "404": _error("No record has this id in the newest 366 days of the hot index and the cold "
                                  "tier (the message says how far back it looked)."),
                    "500": _error("A server-side failure."),
                },
            }},
            "/health": {"get": {
                "operationId": "getHealth",
                "summary": "Collector health per content type and overall status",
                "responses": {
                    "200": {"description": "The health report.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                    "401": _UNAUTHORIZED,
                    "500": _error("A server-side failure."),
                },
            }},
            "/alerts": _alerts_path(),
            "/openapi.json": {"get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.0 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    "401": _UNAUTHORIZED,
                },
            }},
        },
        "components": {
            "schemas": {
                "AuditRecord": {"type": "object", "required": list(FIELDS), "properties": record_properties,
                                "additionalProperties": False},
                "AuditPage": {
                    "type": "object", "required": ["value"], "additionalProperties": False,
                    "properties": {
                        "value": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}},
                        "@odata.nextLink": {"type": "string", "format": "uri",
                                            "description": "Absolute URL of the next page; absent on the last page."},
                    },
                },
                "Health": {
                    "type": "object", "required": ["status", "contentTypes"], "additionalProperties": True,
                    "description": "Per content type: last successful collect, checkpoint, lag, records indexed in the "
                                   "last 24 h, expired content skipped, failed content and its next round, content "
                                   "waiting and the oldest of it, last error; overall: the worst status, why "
                                   "(`reasons`), the queues and the oldest waiting item. Statuses, best first: ok, "
                                   "lagging, degraded (failed content healing, poison messages), error (the last "
                                   "listing failed), failing (content waits over HEALTH_MAX_WAIT_MINUTES or nothing "
                                   "listed for HEALTH_MAX_LAG_HOURS).",
                    "properties": {
                        "status": {"type": "string", "enum": list(STATUSES)},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "oldestWaiting": {"type": "object", "nullable": True},
                        "oldestDay": {"type": "object", "nullable": True,
                                      "description": "The oldest day (YYYY-MM-DD) each tier holds: hot, cold, archive."},
                        "contentTypes": {"type": "array", "items": {
                            "type": "object", "required": ["contentType", "status"], "additionalProperties": True,
                            "properties": {"contentType": {"type": "string"},
                                           "status": {"type": "string", "enum": list(STATUSES)}},
                        }},
                    },
                },
                **_alert_schemas(),
                "Error": {
                    "type": "object", "required": ["error"], "additionalProperties": False,
                    "properties": {"error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }},
                },
            },
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key",
                                      "description": "Azure Functions function key (not needed by `collector serve`)."},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code",
                                     "description": "The function key as a query parameter (never repeated in nextLink URLs: send it on every request)."},
            },
        },
    }


def _alerts_path() -> dict[str, object]:
    """GET /api/alerts (collector/alerts/query.py; the rules: docs/alerts.md)."""
    from .alerts.query import DEFAULT_TOP as ALERTS_TOP
    from .alerts.query import MAX_TOP as ALERTS_MAX_TOP
    from .alerts.rules import SEVERITIES

    def query(name: str, description: str, schema: dict[str, object]) -> dict[str, object]:
        return {"name": name, "in": "query", "required": False, "description": description, "allowEmptyValue": True,
                "schema": schema}

    when: dict[str, object] = {"type": "string", "pattern": f"^{TIME_PATTERN}$", "example": "2024-05-01T08:00:00Z"}
    text: dict[str, object] = {"type": "string", "maxLength": MAX_VALUE_LENGTH}
    return {"get": {
        "operationId": "listAlerts",
        "summary": "Alerts raised by the detection rules and the health checks, newest first",
        "parameters": [
            query("start", "Alerts at or after this time (UTC).", when),
            query("end", "Alerts before this time (UTC).", when),
            query("rule", "One rule's alerts (its name, e.g. password-spray).", text),
            query("severity", "One severity.", {"type": "string", "enum": list(SEVERITIES)}),
            query("user", "One user's alerts (case-insensitive).", text),
            query("top", "Alerts per page.", {"type": "integer", "minimum": 1, "maximum": ALERTS_MAX_TOP,
                                              "default": ALERTS_TOP}),
            query("cursor", "Opaque; only from an @odata.nextLink.", {"type": "string", "maxLength": 64}),
        ],
        "responses": {
            "200": {"description": "A page of alerts.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AlertPage"}}}},
            "400": _error("A parameter is invalid or unknown; the message names it."),
            "401": _UNAUTHORIZED,
            "414": _URI_TOO_LONG,
            "500": _error("A server-side failure."),
        },
    }}


def _alert_schemas() -> dict[str, object]:
    from .alerts.rules import SEVERITIES

    return {
        "Alert": {
            "type": "object", "required": ["id", "rule", "severity", "time", "user", "summary", "recordIds", "count"],
            "additionalProperties": True,
            "properties": {
                "id": {"type": "string", "description": "Deterministic: one alert per rule, key and window."},
                "rule": {"type": "string"}, "severity": {"type": "string", "enum": list(SEVERITIES)},
                "time": {"type": "string", "format": "date-time",
                         "description": "The event's time, or the start of the threshold window, or of the health episode."},
                "user": {"type": "string"}, "summary": {"type": "string"},
                "recordIds": {"type": "array", "items": {"type": "string"},
                              "description": "Ids of the matching records (at most 50; /api/audit/{id} returns each)."},
                "count": {"type": "integer", "description": "How many records matched."},
                "kind": {"type": "string", "enum": ["event", "threshold", "first-seen", "health"]},
                "key": {"type": "object", "additionalProperties": {"type": "string"}},
                "windowEnd": {"type": "string", "format": "date-time"},
            },
        },
        "AlertPage": {
            "type": "object", "required": ["value"], "additionalProperties": False,
            "properties": {
                "value": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
                "@odata.nextLink": {"type": "string", "format": "uri",
                                    "description": "Absolute URL of the next page; absent on the last page."},
            },
        },
    }
