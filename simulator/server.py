"""HTTPS plumbing: a ThreadingHTTPServer on loopback with the simulator's own CA
(docs/api-behaviour.md "Surface"; quoted headings below are sections of that page).

TLS handshakes run on the connection's worker thread (not in the accept loop), connections are
kept alive (HTTP/1.1) so benchmarks are not dominated by handshakes, and every answer carries
`Date` (from the simulator's clock), `Content-Type` and `Content-Length`. An unexpected exception
is logged, recorded in `sim.errors`, and answered with HTTP 500 and an error envelope.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

from . import ca
from .routes import dispatch
from .state import LoggedRequest, Simulator
from .wire import Request, Response, af_error

log = logging.getLogger("simulator")

# IIS/ASP.NET headers the real service sends ("Request conventions"); harmless, and clients that log headers see them.
_SERVICE_HEADERS = (("Cache-Control", "no-cache"), ("Pragma", "no-cache"), ("Expires", "-1"),
                    ("X-AspNet-Version", "4.0.30319"), ("X-Powered-By", "ASP.NET"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _TLSServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET  # noqa: N815

    def _serve(self) -> None:
        sim = self.server.sim
        operation: str | None = None
        request: Request | None = None
        try:
            request = self._request()
            operation, response = dispatch(sim, request)
            date = email.utils.formatdate(sim.now().timestamp(), usegmt=True)
        except Exception as exc:  # the server must answer, and the failure must be visible
            log.exception("simulator failed on %s %s", self.command, self.path)
            sim.record_error(traceback.format_exc())
            response = af_error("AF50000", status=500, message=f"Simulator internal error: {type(exc).__name__}: {exc}")
            date = email.utils.formatdate(usegmt=True)
        # Log before answering: a test that asserts on sim.requests right after its call sees the entry.
        sim.log_request(LoggedRequest(
            method=self.command,
            path=self.path.split("?", 1)[0],
            query=request.query if request else {},
            headers=request.headers if request else {},
            operation=operation,
            status=response.status,
            at=_safe_now(sim),
        ))
        if response.delay_seconds > 0:
            time.sleep(response.delay_seconds)
        self._write(response, date)

    def _request(self) -> Request:
        raw_path = self.path
        path, _, query_string = raw_path.partition("?")
        query: dict[str, str] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            query.setdefault(name.lower(), value)  # "Request conventions": names are case-insensitive; the first value wins
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Request(self.command, unquote(path), query, headers, self._body(), raw_path, headers.get("host", ""))

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()  # the CRLF after the last chunk (no trailers expected)
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, response: Response, date: str) -> None:
        fault = response.transport_fault
        try:
            if fault == "reset":
                self._reset()
                return
            body = response.body if self.command != "HEAD" else b""
            self.send_response_only(response.status)
            self.send_header("Date", date)
            self.send_header("Server", self.server_version)
            self.send_header("Content-Type", response.content_type)
            if fault == "cut_chunked":
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(response.body)))
            for name, value in (*_SERVICE_HEADERS, *response.headers):
                self.send_header(name, value)
            # Headers and body leave in one write: two small writes on a kept-alive connection meet
            # Nagle + delayed ACK and cost ~40 ms per request.
            self._headers_buffer.append(b"\r\n")
            if fault in ("cut", "cut_chunked"):
                part = body[:len(body) // 2]
                body = f"{len(part) + 1:x}\r\n".encode() + part if fault == "cut_chunked" else part
            elif fault == "reset_after_headers":
                body = b""
            if body:
                self._headers_buffer.append(body)
            self.flush_headers()
            if fault in ("cut", "cut_chunked"):
                self._cut()
            elif fault == "reset_after_headers":
                self._reset()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError) as exc:
            # The client went away mid-answer (e.g. its read timeout fired during a scripted delay).
            log.debug("client %s left before the answer was written: %s", self.client_address, exc)
            self.close_connection = True

    def _cut(self) -> None:
        """Close the connection (FIN, no TLS close_notify) in the middle of the answer: a cut-off body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _reset(self) -> None:
        """Reset the connection (RST: SO_LINGER 0, then close): the client sees ECONNRESET."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The read file holds a reference to the socket: close it too, or close() would not
            # close the descriptor (and so would not send the RST) until the handler returns.
            self.rfile.close()
            self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s - " + format, self.client_address[0], *args)


def _safe_now(sim: Simulator) -> Any:
    try:
        return sim.now()
    except Exception:  # a broken injected clock is already reported by the answer above
        from datetime import UTC, datetime

        return datetime.now(UTC)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: Simulator, context: ssl.SSLContext) -> None:
        self.sim = sim
        self.ssl_context = context
        self.connections: set[ssl.SSLSocket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(30)  # bounded handshake
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        with self.connections_lock:
            self.connections.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(tls)
            with contextlib.suppress(OSError):  # already closed by the peer
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()

    def close_connections(self) -> None:
        with self.connections_lock:
            live = list(self.connections)
        for connection in live:
            with contextlib.suppress(OSError):  # the connection is already gone
                connection.shutdown(socket.SHUT_RDWR)


class _TLSServerV6(_TLSServer):
    address_family = socket.AF_INET6


class SimulatorServer:
    """Serve a Simulator over HTTPS on a background thread.

    >>> server = SimulatorServer(sim).start()   # port 0 → a free port
    >>> server.base_url, server.ca_path          # https://127.0.0.1:54321, …/ca.pem
    >>> server.stop()
    """

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0, state_dir: str | Path | None = None) -> None:
        self.sim = sim
        self.host = host
        self.requested_port = port
        self._owns_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._httpd: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self.files: ca.ServerFiles | None = None
        self.on_stop: list[Callable[[], None]] = []  # e.g. the live feed's stop()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            raise RuntimeError("the simulator server is already running")
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="auditkeep-sim-"))
        hosts = tuple(dict.fromkeys((self._url_host_raw(), "127.0.0.1", "localhost", "::1")))
        self.files = ca.write_server_files(self.state_dir, hosts)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.files.cert_path, self.files.key_path)
        server_class = _TLSServerV6 if ":" in self.host else _TLSServer
        self._httpd = server_class((self.host, self.requested_port), self.sim, context)
        self.sim.base_url = self.base_url
        # A short poll interval keeps stop() quick (shutdown waits for the loop's next poll).
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="simulator-https", daemon=True)
        self._thread.start()
        log.info("listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        for callback in self.on_stop:
            callback()
        self.on_stop.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._owns_state_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def __enter__(self) -> SimulatorServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses and files
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the simulator server is not running")
        return int(self._httpd.server_address[1])

    def _url_host_raw(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0") else ("::1" if self.host == "::" else self.host)

    @property
    def base_url(self) -> str:
        host = self._url_host_raw()
        return f"https://[{host}]:{self.port}" if ":" in host else f"https://{host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        """The CA certificate alone: point REQUESTS_CA_BUNDLE (or requests' verify=) at it."""
        if self.files is None:
            raise RuntimeError("the simulator server is not running")
        return self.files.ca_path

    @property
    def ca_bundle_path(self) -> Path:
        """certifi's public roots plus the CA, for processes that also talk to real HTTPS hosts."""
        if self.files is None:
            raise RuntimeError("the simulator server is not running")
        return self.files.ca_bundle_path

    @property
    def managed_identity_endpoint(self) -> str:
        return f"{self.base_url}/msi/token"

    def env(self) -> dict[str, str]:
        """The environment a client needs (Settings names, "Clouds and hosts" overrides, and the CA bundle)."""
        values = {
            "M365_TENANT_ID": self.sim.tenant_id,
            "M365_CLIENT_ID": self.sim.client_id,
            "M365_API_URL": self.base_url,
            "M365_LOGIN_URL": self.base_url,
            "M365_ALLOW_CUSTOM_HOSTS": "true",  # the simulator is not a Microsoft host
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle_path),
        }
        if self.sim.client_secret:
            values["M365_CLIENT_SECRET"] = self.sim.client_secret
        return values
