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

Tables this process created are remembered (one create request per table and process), so a table
that another process dropped meanwhile (`python -m collector prune-index`, the ledger's prune) is
still believed to exist: `write` recreates it and sends the write once more when the service
answers TableNotFound.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.pipeline.transport import HttpRequest, HttpResponse, HttpTransport, RequestsTransport
from azure.core.rest import HttpRequest as RestHttpRequest
from azure.core.rest import HttpResponse as RestHttpResponse
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from . import transaction
from .transport import storage_transport

log = logging.getLogger(__name__)

MAX_CACHED = 4096  # table clients kept; a long-lived worker touches ~5 new tables a day
T = TypeVar("T")


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
        self._transport = _SharedTransport(storage_transport())
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

    def write(self, name: str, action: Callable[[TableClient], T]) -> T:
        """`action(client)` on table `name`, created first if this process has not yet; when the
        table turns out to be gone (dropped by another process since), create it and run `action`
        once more. Writes are idempotent upserts, so running one twice is harmless."""
        self.create(name)
        try:
            return action(self.get(name))
        except HttpResponseError as exc:
            if not table_missing(exc):
                raise
            log.warning("tables.recreate %s: dropped since this process created it", name, extra={"table": name})
            with self._lock:
                self._created.discard(name)
            self.create(name)
            return action(self.get(name))

    def upsert(self, name: str, entities: Sequence[Mapping[str, Any]], mode: UpdateMode = UpdateMode.REPLACE) -> None:
        """Upsert `entities` (one partition, at most transaction.LIMIT) into table `name` in one
        transaction (transaction.py: a hand-encoded batch, about 6x less client CPU than the SDK's),
        through `write`: a table dropped meanwhile is recreated."""
        self.write(name, lambda client: transaction.upsert(client, entities, mode))

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


def table_missing(error: HttpResponseError) -> bool:
    """The service said the table does not exist (a single write's 404 or a transaction's error)."""
    code = getattr(error, "error_code", None)  # a TableErrorCode (a str enum) or a plain str
    return code == "TableNotFound" or (code is None and "TableNotFound" in str(error))
