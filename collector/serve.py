"""`python -m collector serve`: the query API on a local stdlib HTTP server (no keys; loopback by default).

Same handlers as the Function App (`collector.api.Api`), but CSV/NDJSON exports stream with
chunked transfer encoding instead of being built in memory.
"""

from __future__ import annotations

import logging
import re
import sys
import urllib.parse
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from .api import Api, Response, error_response

if TYPE_CHECKING:
    from .bootstrap import Services

log = logging.getLogger(__name__)

_HOST_HEADER = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
# A client that also talks to the Function App may send its function key as `code=`: never log it.
_FUNCTION_KEY = re.compile(r"([?&]code=)[^&\s]*", re.IGNORECASE)


def _redacted(text: str) -> str:
    return _FUNCTION_KEY.sub(r"\1***", text)


class QueryApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        super().__init__(address, _Handler)
        self.api = api

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses
    server: QueryApiServer
    server_version = "AuditKeep"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Any other method (TRACE, QUERY, PROPFIND…) reaches here as http.server's HTML 501:
        # answer it like POST, with the JSON 405 of the API.
        if code == HTTPStatus.NOT_IMPLEMENTED and getattr(self, "command", None):
            self._dispatch(self.command)
            return
        super().send_error(code, message, explain)

    def _dispatch(self, method: str) -> None:
        self._discard_body()
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        if path != "/api" and not path.startswith("/api/"):
            self._send(method, error_response(404, "NotFound", "the query API lives under /api/ (see /api/openapi.json)"))
            return
        route = urllib.parse.unquote(path[len("/api/"):], errors="replace")
        params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, errors="replace")
        host = self.headers.get("Host", "")
        origin = f"http://{host}" if _HOST_HEADER.fullmatch(host) else self.server.url
        response = self.server.api.handle(method, route, params, dict(self.headers.items()), origin + "/api")
        self._send(method, response)

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= 1 << 20:
            self.rfile.read(int(length))
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # a body we will not read: do not reuse the connection

    def _send(self, method: str, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(response.body, bytes):
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if method == "HEAD":
            _close(response.body)
            return
        self._stream(response.body)

    def _stream(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away
        except Exception:
            # Too late for an error status: end the connection without the final chunk, which
            # every HTTP client reports as an incomplete response.
            log.exception("serve.stream_failed")
            self.close_connection = True
        finally:
            _close(chunks)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if isinstance(code, int) or code.isdigit() else None
        log.info('serve.request "%s" %s %s', _redacted(self.requestline), code, size,
                 # A request line that did not parse has no path yet (http.server answers 400 first).
                 extra={"route": urllib.parse.urlsplit(getattr(self, "path", "")).path, "method": self.command,
                        "status": status})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        log.info("serve.request %s", _redacted(format % args))


def _close(chunks: Iterable[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def make_server(services: Services, host: str = "127.0.0.1", port: int = 7071, *, api: Api | None = None) -> QueryApiServer:
    """A bound, not yet serving, server (port 0 picks a free port; see `.url`)."""
    return QueryApiServer((host, port), api or Api(services, stream=True))


def serve(services: Services, host: str = "127.0.0.1", port: int = 7071) -> None:
    """Serve the query API until interrupted. Binds loopback unless told otherwise; there are no keys."""
    server = make_server(services, host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serve.exposed host=%s: the local server has no authentication", host)
    # CLI output, not a log line: the person who started it needs the URL.
    print(f"AuditKeep query API on {server.url}/api/audit (OpenAPI: {server.url}/api/openapi.json); Ctrl+C stops",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
