"""Table clients that are safe to create while other threads use them: one per table, reused.

`TableServiceClient.get_table_client` (which its `create_table` and `delete_table` call too) builds
each child client's pipeline from the service client's own policy objects. Doing so re-points the
shared retry and redirect policies at the new pipeline while other threads are sending requests
through them, and a request in flight can step into a pipeline not yet linked up:
`AttributeError: '_SansIOHTTPPolicyRunner' object has no attribute 'next'` (azure-data-tables
12.7 with azure-core 1.41; seen under `make run`, where blobs are indexed on several threads, as
the Functions worker does with concurrent invocations). Blob and queue clients do not have the
problem: their children re-link the parent's pipeline in the same order.

Here every table client is built on its own, with policies of its own, and kept for reuse. All of
them send through one shared connection pool, as the SDK's children do.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import HttpRequest, HttpResponse, HttpTransport, RequestsTransport
from azure.core.rest import HttpRequest as RestHttpRequest
from azure.core.rest import HttpResponse as RestHttpResponse
from azure.data.tables import TableClient, TableServiceClient

MAX_CACHED = 4096  # table clients kept; a long-lived worker touches ~5 new tables a day


# RequestsTransport sends either request type (the legacy pipeline one and azure.core.rest's).
_Request = HttpRequest | RestHttpRequest
_Response = HttpResponse | RestHttpResponse


class _SharedTransport(HttpTransport[_Request, _Response]):
    """One transport for every table client; closing a client must not close it for the others."""

    def __init__(self, transport: RequestsTransport) -> None:
        self._transport = transport

    def send(self, request: _Request, **kwargs: Any) -> _Response:
        response: _Response = self._transport.send(request, **kwargs)  # its overloads leave kwargs untyped: Any
        return response

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _SharedTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass


class TableClients:
    """Table clients by name for one storage account, plus the account-level table listing."""

    def __init__(self, service: TableServiceClient, **client_options: Any) -> None:
        self.service = service  # for query_tables only: it never builds child clients
        self._options = client_options
        transport = RequestsTransport()
        transport.open()  # now, not lazily from several threads at once
        self._transport = _SharedTransport(transport)
        self._clients: dict[str, TableClient] = {}
        self._created: set[str] = set()  # tables this process has made sure of: one request each
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str, **client_options: Any) -> TableClients:
        return cls(TableServiceClient.from_connection_string(connection_string, **client_options), **client_options)

    def get(self, name: str) -> TableClient:
        client = self._clients.get(name)
        if client is None:
            with self._lock:
                client = self._clients.get(name)
                if client is None:
                    if len(self._clients) >= MAX_CACHED:
                        self._clients.clear()  # clients in use elsewhere keep working; new ones are cheap
                    client = TableClient(self.service.url, table_name=name, credential=self.service.credential,
                                         api_version=self.service.api_version, transport=self._transport,
                                         **self._options)
                    self._clients[name] = client
        return client

    def create(self, name: str) -> None:
        """Create the table unless it exists (asked once per table and process)."""
        if name in self._created:
            return
        with contextlib.suppress(ResourceExistsError):
            self.get(name).create_table()
        with self._lock:
            self._created.add(name)

    def delete(self, name: str) -> None:
        """Delete the table (nothing happens when it does not exist)."""
        self.get(name).delete_table()
        with self._lock:
            self._clients.pop(name, None)
            self._created.discard(name)

    def names(self, low: str, high: str) -> list[str]:
        """Names of the tables with low <= name < high."""
        return [table.name for table in self.service.query_tables(
            "TableName ge @low and TableName lt @high", parameters={"low": low, "high": high})]
