"""The HTTP contract of the query API, independent of any HTTP framework.

`Api.handle(method, route, params, headers, base_url)` → `Response` (status, headers, and bytes or
an iterator of bytes). `collector.serve` streams the iterator with chunked transfer, and so does the
Function App (HTTP streams, function_app.py), so an export holds one chunk in memory, never the
whole. `stream=False` materializes it instead. Errors are JSON `{"error": {"code", "message"}}`;
user input never causes a 500. The function key (`code`) is never echoed: not in next links, not
in export bodies or headers.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, NotFoundError, QueryError, shown
from .models import FIELDS, AuditEntry
from .query.params import QueryPlan

if TYPE_CHECKING:
    from .bootstrap import Services
    from .query.service import Export, QueryService

log = logging.getLogger(__name__)

JSON = "application/json; charset=utf-8"
CSV = "text/csv; charset=utf-8"
NDJSON = "application/x-ndjson; charset=utf-8"
CHUNK = 64 * 1024
MAX_ID_LENGTH = 256
# The Functions HTTP front end gives up on a request after 230 s (docs/storage-facts.md "Azure
# Functions limits"): an export in the Function App stops scanning well before that and says so in
# its last line (reason "time"), with the link that continues it.
FUNCTION_EXPORT_SECONDS = 180.0
# Cells starting with these make Excel evaluate a formula (CSV injection): the CSV export prefixes
# them with an apostrophe. JSON and NDJSON carry the values unchanged.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Which storage tiers served a response (docs/cold-tier.md "The tiers header"): `hot`, `cold`,
# `hot,cold`, or `none` when no day of the range exists in either.
TIERS_HEADER = "X-AuditKeep-Tiers"


Body = bytes | Iterable[bytes]
# Query parameters as HTTP frameworks hand them over: a mapping (a list value for a repeated name) or pairs.
HttpParams = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = b""

    @property
    def mimetype(self) -> str:
        """The media type of Content-Type, without parameters (`application/json`)."""
        return self.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()

    @property
    def streaming(self) -> bool:
        return not isinstance(self.body, bytes)

    def read(self) -> bytes:
        """The whole body (joins a streamed one)."""
        return self.body if isinstance(self.body, bytes) else b"".join(self.body)

    def json(self) -> Any:  # json.loads gives Any
        return json.loads(self.read())


def param_pairs(params: HttpParams) -> list[tuple[str, str]]:
    """(name, value) pairs from a mapping (str or list values) or from pairs (repeats kept)."""
    if isinstance(params, Mapping):
        out: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str):
                out.append((name, value))
            else:
                out.extend((name, v) for v in value)
        return out
    return list(params)


def _elapsed_ms(since: float) -> int:
    return round((time.monotonic() - since) * 1000)


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON; text with lone surrogates (possible in a raw record's escapes) falls back
    to \\u escapes, which are valid JSON, instead of failing."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def json_response(status: int, value: object, headers: Mapping[str, str] | None = None) -> Response:
    body = json_bytes(value)
    return Response(status, {"Content-Type": JSON, "Cache-Control": "no-store", **(headers or {})}, body)


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def api_root(url: str, route: str) -> str:
    """The API root of a request URL: `https://h/api/audit?x=1` with route `audit` → `https://h/api`."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    suffix = "/" + route.strip("/")
    if path.endswith(suffix):
        path = path[: -len(suffix)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# ---------------------------------------------------------------- body encoders (pure)


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_chunks(entries: Iterable[AuditEntry], trailer: Iterable[str] = ()) -> Iterator[bytes]:
    """UTF-8 CSV with a BOM (Excel then reads UTF-8), a header row, CRLF line ends, RFC 4180 quoting.

    `trailer` is evaluated after the last entry: each line it yields becomes a final one-cell row.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(FIELDS)
    for entry in entries:
        writer.writerow([csv_cell(getattr(entry, name)) for name in FIELDS])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    for line in trailer:
        writer.writerow([line] + [""] * (len(FIELDS) - 1))
    yield buffer.getvalue().encode("utf-8")


def ndjson_chunks(entries: Iterable[AuditEntry], trailer: Iterable[dict[str, object]] = ()) -> Iterator[bytes]:
    parts: list[bytes] = []
    size = 0
    for entry in entries:
        line = json_bytes(entry.as_dict()) + b"\n"
        parts.append(line)
        size += len(line)
        if size >= CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    for extra in trailer:
        parts.append(json_bytes(extra) + b"\n")
    yield b"".join(parts)


def tiers_value(tiers: Iterable[str]) -> str:
    return ",".join(tiers) or "none"


def truncation_note(export: Export, limit: int, next_url: str | None) -> dict[str, object]:
    """What a truncated export says about itself (the last NDJSON line; the last CSV row as text)."""
    why = (f"the export stopped at {export.rows} rows, the limit set by QUERY_MAX_EXPORT_ROWS ({limit})"
           if export.truncated == "limit" else
           f"the export stopped after {export.rows} rows to finish within the HTTP time limit"
           if export.truncated == "time" else
           f"the export stopped after {export.rows} rows at the storage request budget of one response")
    note: dict[str, object] = {"reason": export.truncated, "rows": export.rows, "message": why + "; more rows may follow",
                               "tiers": tiers_value(export.tiers)}
    if next_url:
        note["nextLink"] = next_url
    return note


def openapi_response(base_url: str) -> Response:
    """GET /api/openapi.json (needs no storage)."""
    from .openapi import document

    return json_response(200, document(base_url or None))


def ui_response(name: str) -> Response:
    """GET /api/ui and its assets (`/api/ui/app.js`): the search page, which needs no storage and holds no data."""
    from . import ui

    found = ui.asset(name)
    if found is None:
        return error_response(404, "NotFound", f"no asset /api/ui/{shown(name, 100)[1:-1]}; the search page is /api/ui")
    body, content_type = found
    return Response(200, {"Content-Type": content_type, **ui.HEADERS}, body)


# ---------------------------------------------------------------- the handlers


class Api:
    """The query API's routes over one Services. Exports are bounded by QUERY_MAX_EXPORT_ROWS, the
    export request budget and `export_seconds` (the Function App's HTTP time limit); `stream=False`
    materializes them and then also reports a truncation in headers."""

    def __init__(
        self,
        services: Services | Callable[[], Services],
        *,
        stream: bool = True,
        export_seconds: float | None = None,
        query: QueryService | None = None,
    ) -> None:
        # A factory defers building Services (and any ConfigError) into the request, where it
        # becomes a JSON 500 like every other failure. `query` replaces `services.query` (tests).
        self._services = services
        self.stream = stream
        self.export_seconds = export_seconds
        self._query = query

    @property
    def services(self) -> Services:
        if callable(self._services):
            self._services = self._services()
        return self._services

    @property
    def query(self) -> QueryService:
        return self._query or self.services.query

    # -- dispatcher (serve)

    def handle(
        self,
        method: str,
        route: str,
        params: HttpParams,
        headers: Mapping[str, str] | None = None,
        base_url: str = "",
    ) -> Response:
        """Route a request: `route` is the path after `/api/` (percent-decoded), `base_url` the
        absolute URL of the API root (`http://127.0.0.1:7071/api`), used for `@odata.nextLink`."""
        route = route.strip("/")
        if method not in ("GET", "HEAD"):
            return error_response(405, "MethodNotAllowed", f"{method} is not supported here; use GET", {"Allow": "GET"})
        if route == "audit":
            return self.audit(params, base_url)
        if route.startswith("audit/"):
            return self.record(route[len("audit/"):])
        if route == "health":
            return self.health()
        if route == "alerts":
            return self.alerts(params, base_url)
        if route == "openapi.json":
            return self.openapi(base_url)
        if route == "ui" or route.startswith("ui/"):
            return ui_response(route[len("ui/"):])
        return error_response(404, "NotFound", f"no route /api/{shown(route)[1:-1]}; see /api/openapi.json")

    # -- routes

    def audit(self, params: HttpParams, base_url: str) -> Response:
        """GET /api/audit: a JSON page, or a CSV/NDJSON export of every page."""
        return self._guarded("audit", lambda: self._audit(params, base_url))

    def record(self, record_id: str) -> Response:
        """GET /api/audit/{id}: the raw record exactly as archived."""
        return self._guarded("audit/{id}", lambda: self._record(record_id))

    def health(self) -> Response:
        """GET /api/health: the services' HealthReporter."""
        return self._guarded("health", lambda: json_response(200, self.services.health.report()))

    def alerts(self, params: HttpParams, base_url: str) -> Response:
        """GET /api/alerts: stored alerts, newest first (collector/alerts/query.py)."""
        return self._guarded("alerts", lambda: self._alerts(params, base_url))

    def openapi(self, base_url: str) -> Response:
        return openapi_response(base_url)

    # -- implementation

    def _guarded(self, route: str, run: Callable[[], Response]) -> Response:
        """`route` is the route template (never the request's values) for the log's custom dimensions."""
        try:
            return run()
        except QueryError as exc:
            return error_response(exc.status, exc.code, str(exc))
        except ConfigError as exc:  # its messages name settings, never their secret values
            log.error("api.config_error %s", exc, extra={"route": route, "status": 500})
            return error_response(500, "ConfigurationError", str(exc))
        except Exception:
            log.exception("api.failed", extra={"route": route, "status": 500})
            return error_response(500, "InternalError", "the request failed on the server; see its log")

    def _audit(self, params: HttpParams, base_url: str) -> Response:
        began = time.monotonic()
        pairs = param_pairs(params)
        plan = self.query.parse(pairs)

        def link(key: str) -> str:
            # Never the function key (`code`): a link is saved, logged and shared; clients send the
            # key themselves on every request (x-functions-key, or Power Query's ApiKeyName).
            query = urllib.parse.urlencode(plan.link_params(key), quote_via=urllib.parse.quote)
            return f"{base_url}/audit?{query}"

        if plan.format == "json":
            page = self.query.page(plan)
            body: dict[str, object] = {"value": [entry.as_dict() for entry in page.entries]}
            if page.next_key is not None:
                body["@odata.nextLink"] = link(page.next_key)
            tiers = tiers_value(page.tiers)
            log.info("query.served rows=%d scanned=%d requests=%d next=%s tiers=%s", len(page.entries), page.scanned,
                     page.requests, page.next_key is not None, tiers,
                     extra={"route": "audit", "status": 200, "format": "json", "rows": len(page.entries),
                            "scanned": page.scanned, "requests": page.requests, "next": page.next_key is not None,
                            "tiers": tiers, "duration_ms": _elapsed_ms(began)})
            return json_response(200, body, {TIERS_HEADER: tiers})
        return self._export(plan, link, began)

    def _export(self, plan: QueryPlan, link: Callable[[str], str], began: float) -> Response:
        export = self.query.export(plan, seconds=self.export_seconds)
        limit = self.query.max_export_rows

        def note() -> dict[str, object] | None:
            """Evaluated once, after the last entry: the export's log line, and its truncation note."""
            log.info("query.exported rows=%d truncated=%s tiers=%s", export.rows, export.truncated,
                     tiers_value(export.tiers),
                     extra={"route": "audit", "status": 200, "format": plan.format, "rows": export.rows,
                            "scanned": export.scanned, "requests": export.requests, "truncated": export.truncated,
                            "tiers": tiers_value(export.tiers), "duration_ms": _elapsed_ms(began)})
            if not export.truncated:
                return None
            return truncation_note(export, limit, link(export.next_key) if export.next_key else None)

        if plan.format == "csv":
            def csv_trailer() -> Iterator[str]:
                found = note()
                if found:
                    yield f"@truncated: {found['message']}" + (f"; continue with {found['nextLink']}" if "nextLink" in found else "")

            chunks = csv_chunks(export, csv_trailer())
            headers = {"Content-Type": CSV, "Content-Disposition": 'attachment; filename="audit.csv"'}
        else:
            def ndjson_trailer() -> Iterator[dict[str, object]]:
                found = note()
                if found:
                    yield {"@truncated": found}

            chunks = ndjson_chunks(export, ndjson_trailer())
            headers = {"Content-Type": NDJSON}
        headers.update({"Cache-Control": "no-store", "X-AuditKeep-Export-Limit": str(limit)})
        if not self.stream:
            body = b"".join(chunks)
            headers[TIERS_HEADER] = tiers_value(export.tiers)  # materialized: the tiers it read
            if export.truncated:
                headers["X-AuditKeep-Truncated"] = export.truncated
                if export.next_key:
                    headers["Link"] = f'<{link(export.next_key)}>; rel="next"'
            return Response(200, headers, body)
        # Streamed: the headers leave before the rows, so they name the tiers that hold the range
        # (a truncated export's last line names the tiers it read).
        headers[TIERS_HEADER] = tiers_value(export.planned_tiers)
        # Pull the first chunk now: a storage failure then becomes a JSON 500 instead of a broken stream.
        first = next(chunks)
        return Response(200, headers, _chain(first, chunks))

    def _alerts(self, params: HttpParams, base_url: str) -> Response:
        from .alerts.query import alerts_page

        return json_response(200, alerts_page(self.services.alerts.table, param_pairs(params), base_url))

    def _record(self, record_id: str) -> Response:
        if not record_id or len(record_id) > MAX_ID_LENGTH:
            raise QueryError(f"id must be 1 to {MAX_ID_LENGTH} characters", parameter="id", code="InvalidParameter")
        try:
            record_id.encode("utf-8")
        except UnicodeEncodeError:
            raise QueryError("id must be valid UTF-8 text", parameter="id", code="InvalidParameter") from None
        # Control characters are fine here: keys.kid escapes them (%09) exactly as the index wrote
        # them, so a record whose Id holds a tab is found like any other.
        lookup = self.services.index.lookup(record_id)
        if lookup.found is None:
            # Not in the hot index: the cold tier's days the hot lookup did not read.
            cold = self.services.query_view.find_cold(record_id, lookup)
            if cold.raw is not None:
                return Response(200, {"Content-Type": JSON, "Cache-Control": "no-store", TIERS_HEADER: "cold"}, cold.raw)
            if cold.oldest_day is None:
                where = "the index is empty"
            else:
                day = f"{cold.oldest_day[:4]}-{cold.oldest_day[4:6]}-{cold.oldest_day[6:]}"
                where = (f"searched the newest {cold.days} days of the index, back to {day}; a lookup by id "
                         "reads no older days" if cold.more else
                         f"searched all {cold.days} days of the index, back to {day}")
            raise NotFoundError(f"no audit record with id {shown(record_id, 100)} ({where})")
        blob, position = lookup.found
        try:
            raw = self.services.archive.record(blob, position, record_id)
        except NotFoundError:
            log.error("api.raw_missing blob=%s position=%d", blob, position,
                      extra={"route": "audit/{id}", "status": 404, "blob": blob, "position": position})
            raise NotFoundError(f"audit record {shown(record_id, 100)} is indexed but its archive blob is missing") from None
        return json_response(200, raw, {TIERS_HEADER: "hot"})


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
