"""Entity group transactions of upserts, encoded and decoded here instead of by the Tables SDK.

Why: the SDK's `TableClient.submit_transaction` builds a full `HttpRequest` per operation, runs
each through header policies, serializes them into nested multipart bodies with the `email`
package and parses the response back the same way. Measured on the index's own transactions
(devtools/batch_cost.py: same entities, same Azurite, same client pipeline), that costs 26.4 ms of
client CPU per transaction against 4.2 ms for the body written here, and it was 69% of the
collector's CPU during ingest (docs/performance.md, "Ingest: the lean hot index").

What stays the SDK's: the request goes through the table client's own pipeline (credential,
retries, logging, transport), the same way `submit_transaction` sends it (azure-data-tables
12.7, `TablesBaseClient._batch_send`: `self._client.send_request(request, stream=True)`). The
wire format is the one Microsoft documents ("Performing entity group transactions", Table
service REST API): a `multipart/mixed` batch holding one change set whose parts are the
operations; the response holds one status line per operation, or, when the change set failed,
one part for the failed operation, whose error message starts with its index ("0:The table
specified does not exist."). Errors are raised as the SDK raises them, with its classes
(`TableTransactionError` for a failed operation, `RequestTooLargeError` for 413) and its
`error_code`, so `tables.table_missing` and every caller's handling are unchanged.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest
from azure.data.tables import RequestTooLargeError, TableClient, TableTransactionError, UpdateMode

LIMIT = 100  # operations in one transaction (Table service limit; docs/storage-facts.md)
_INT32 = range(-(2**31), 2**31)
_METHOD = {UpdateMode.REPLACE: "PUT", UpdateMode.MERGE: "PATCH"}  # an upsert: no If-Match
_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})[^\r\n]*\r?\n(.*?)\r?\n\r?\n(.*?)(?=\r?\n--|\Z)", re.MULTILINE | re.DOTALL)
_XML_CODE = re.compile(rb"<Code>(.*?)</Code>", re.DOTALL)
_XML_MESSAGE = re.compile(rb"<Message>(.*?)</Message>", re.DOTALL)
_AUTH_CODES = {"AuthenticationFailed", "InvalidAuthenticationInfo"}


def property_json(entity: Mapping[str, Any]) -> dict[str, Any]:
    """`entity` as the Table service's JSON, as the SDK's `_add_entity_properties` sends the same
    Python values: bytes as Edm.Binary (base64), float as Edm.Double, int as Edm.Int32; None is left out."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if value is None:
            continue
        if isinstance(value, bool | str):
            out[name] = value
        elif isinstance(value, int):
            if value not in _INT32:  # the SDK refuses them too (its int is Edm.Int32)
                raise TypeError(f"entity property {name!r}: {value} does not fit in Edm.Int32")
            out[name] = value
        elif isinstance(value, bytes | bytearray | memoryview):
            out[name], out[f"{name}@odata.type"] = base64.b64encode(value).decode("ascii"), "Edm.Binary"
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise TypeError(f"entity property {name!r}: {value} is not a finite number")
            out[name], out[f"{name}@odata.type"] = value, "Edm.Double"
        else:
            raise TypeError(f"entity property {name!r}: {type(value).__name__} is not written by transaction.py "
                            "(str, bool, int, float, bytes)")
    return out


def _key(value: str) -> str:
    """A key in an entity URL: quotes doubled (OData string literal), then percent-encoded, as the SDK does."""
    return quote(value.replace("'", "''"), safe="")


def encode(table_url: str, entities: Sequence[Mapping[str, Any]], mode: UpdateMode,
           batch: str, changeset: str) -> bytes:
    """The `$batch` body that upserts `entities` (one partition, at most LIMIT) into the table at
    `table_url` (the account URL and the table name, no query)."""
    method = _METHOD[mode]
    parts = []
    for n, entity in enumerate(entities):
        url = f"{table_url}(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
        body = json.dumps(property_json(entity), separators=(",", ":"))  # ASCII: non-ASCII is escaped
        parts.append(f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                     f"Content-ID: {n}\r\n\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json\r\n"
                     "Accept: application/json\r\nDataServiceVersion: 3.0\r\n\r\n"
                     f"{body}\r\n")
    return (f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n" + "".join(parts)
            + f"--{changeset}--\r\n--{batch}--\r\n").encode("ascii")


@dataclass(frozen=True)
class Part:
    """One operation's answer inside a transaction's response."""

    status: int
    headers: dict[str, str]
    body: bytes


def parts(content: bytes) -> list[Part]:
    """The operations' answers in a `$batch` response body, in order."""
    out = []
    for match in _STATUS.finditer(content):
        headers = {}
        for line in match.group(2).decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        out.append(Part(int(match.group(1)), headers, match.group(3)))
    return out


def _service_error(body: bytes) -> tuple[str | None, str | None]:
    """(code, message) of a Table service error body: JSON (`{"odata.error": {"code", "message":
    {"value"}}}`) from the table endpoint, or XML (`<Error><Code/><Message/></Error>`) when the
    request was refused before it (authorization)."""
    if body.lstrip().startswith(b"<"):
        code, message = _XML_CODE.search(body), _XML_MESSAGE.search(body)
        return (code.group(1).decode("utf-8", "replace") if code else None,
                message.group(1).decode("utf-8", "replace") if message else None)
    try:
        error = json.loads(body).get("odata.error", {})
    except (ValueError, AttributeError):
        return None, None
    message = error.get("message")
    return error.get("code"), message.get("value") if isinstance(message, dict) else message


def failed_part(part: Part) -> TableTransactionError:
    """The error of the operation that failed the transaction, as the SDK raises it."""
    code, message = _service_error(part.body)
    code = code or part.headers.get("x-ms-error-code")
    error_type = RequestTooLargeError if part.status == 413 else TableTransactionError
    text = message or repr(part.body[:300])
    # TableTransactionError reads the failed operation's index from the message's "N:" start
    error = error_type(message=f"{text}\nErrorCode:{code}")
    error.status_code = part.status
    error.error_code = code  # type: ignore[attr-defined]  # the SDK sets it so too (_error._decode_error)
    return error


def failed_batch(status: int, reason: str, headers: Mapping[str, str], content: bytes) -> HttpResponseError:
    """The error of a `$batch` request the service refused as a whole, with the SDK's class for its status."""
    code, message = _service_error(content)
    code = code or headers.get("x-ms-error-code")
    text = f"{message or reason}\nErrorCode:{code}"
    error: HttpResponseError
    if status == 413:
        error = RequestTooLargeError(message="The transaction request was too large")
    elif status in (401, 403) and code in _AUTH_CODES:
        error = ClientAuthenticationError(message=text)
    elif status == 404:
        error = ResourceNotFoundError(message=text)
    elif status == 409:
        error = ResourceExistsError(message=text)
    elif status == 412:
        error = ResourceModifiedError(message=text)
    else:
        error = HttpResponseError(message=text)
    error.status_code, error.reason = status, reason
    error.error_code = code  # type: ignore[attr-defined]  # the SDK sets it so too (_error._decode_error)
    return error


def upsert(client: TableClient, entities: Sequence[Mapping[str, Any]], mode: UpdateMode = UpdateMode.REPLACE) -> None:
    """Upsert `entities` (one partition, 1 to LIMIT) into `client`'s table in one transaction;
    nothing is written unless everything is."""
    if not 0 < len(entities) <= LIMIT:
        raise ValueError(f"a transaction holds 1 to {LIMIT} operations, not {len(entities)}")
    if len({entity["PartitionKey"] for entity in entities}) != 1:  # Azurite would accept it; Azure refuses
        raise ValueError("the entities of one transaction must share their PartitionKey")
    account = client.url.split("?")[0].rstrip("/")  # a TableClient's url is its account's (a SAS is a policy)
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    request = HttpRequest("POST", f"{account}/$batch",
                          content=encode(f"{account}/{client.table_name}", entities, mode, batch, changeset),
                          headers={"Content-Type": f"multipart/mixed; boundary={batch}",
                                   "x-ms-version": client.api_version, "DataServiceVersion": "3.0",
                                   "MaxDataServiceVersion": "3.0;NetFx", "Accept": "application/json"})
    # the client's own pipeline, as submit_transaction sends its batch; stream: the body is multipart,
    # not JSON for the pipeline's decoder
    response = client._client.send_request(request, stream=True)
    content = response.read()
    if response.status_code != 202:
        raise failed_batch(response.status_code, response.reason or "", response.headers, content)
    answers = parts(content)
    for part in answers:
        if not 200 <= part.status < 300:
            raise failed_part(part)
    if len(answers) != len(entities):
        raise HttpResponseError(message=f"transaction of {len(entities)} operations on {client.table_name}: "
                                        f"the service answered {len(answers)}")
