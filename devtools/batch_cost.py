"""The client-side CPU of one index transaction: the Tables SDK's `submit_transaction` against a
hand-built `$batch` body sent through the same client pipeline (issue 11's profile: the SDK's
multipart encoding and decoding is most of the collector's CPU).

    python -m devtools.batch_cost [--blobs 40] [--rounds 3]

The entities are what `collector.index.plan_batches` writes for synthetic content blobs (the
simulator's generator); both writers send the same transactions, alternately, to one fresh
in-memory Azurite and must leave the same entities behind. A development tool: it measures what
a change in collector/index.py (or tables.py) would save and prints it; nothing in collector/ uses it.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, UpdateMode

from . import azurite

_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)


def _value(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity as the Table service's JSON (odata=minimalmetadata): bytes as Edm.Binary, big ints as Edm.Int64."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, bytes | bytearray):
            out[name] = base64.b64encode(value).decode()
            out[f"{name}@odata.type"] = "Edm.Binary"
        elif isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
            out[name], out[f"{name}@odata.type"] = str(value), "Edm.Int64"
        else:
            out[name] = value
    return out


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def raw_upserts(client: TableClient, entities: list[dict[str, Any]]) -> None:
    """One transaction of upserts (replace), the body written by hand, sent through `client`'s own
    pipeline (its credential, retries, transport)."""
    account = client.url.split("?")[0].rstrip("/")  # a TableClient's url is its account's
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = []
    for n, entity in enumerate(entities):
        url = f"{account}/{client.table_name}(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
        body = json.dumps(_value(entity), separators=(",", ":"))
        parts.append(f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                     f"Content-ID: {n}\r\n\r\nPUT {url} HTTP/1.1\r\nContent-Type: application/json\r\n"
                     "Accept: application/json;odata=minimalmetadata\r\nPrefer: return-no-content\r\n"
                     f"DataServiceVersion: 3.0\r\n\r\n{body}\r\n")
    payload = (f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n" + "".join(parts)
               + f"--{changeset}--\r\n--{batch}--\r\n").encode()
    request = HttpRequest("POST", f"{account}/$batch", content=payload, headers={
        "Content-Type": f"multipart/mixed; boundary={batch}", "x-ms-version": client.api_version,
        "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx", "Accept": "application/json"})
    # the client's pipeline (auth, retries, transport); stream: its JSON decoder must not read multipart
    response = client._client._client.send_request(request, stream=True)
    content = response.read()
    statuses = [int(code) for code in _STATUS.findall(content)]
    if response.status_code != 202 or len(statuses) != len(entities) or any(not 200 <= s < 300 for s in statuses):
        raise RuntimeError(f"transaction failed: HTTP {response.status_code}, parts {statuses[:5]}: "
                           f"{content[:300]!r}")


def main(argv: list[str] | None = None) -> int:
    from collector import keys
    from collector.index import IndexItem, plan_batches
    from collector.normalize import normalize_record
    from collector.tables import TableClients
    from simulator.synthetic import generate_blobs

    parser = argparse.ArgumentParser(prog="python -m devtools.batch_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tenant = "5f1c2a3b-0000-4000-8000-00000000beef"
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    _, blobs = generate_blobs(tenant, start, start + timedelta(hours=4), 3000, users=5000, seed=5)
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for blob in list(blobs)[:args.blobs]:
        name = keys.archive_blob_name(blob.content_type, f"c{blob.content_created:%H%M%S%f}", blob.content_created)
        items = [IndexItem(*normalize_record(r, blob.content_type, blob.content_created), name, i)
                 for i, r in enumerate(json.loads(blob.body))]
        batches += plan_batches(items, "p", tenant)
    entities = sum(len(chunk) for _, chunk in batches)
    storage = azurite.start(in_memory=True)
    try:
        clients = TableClients.from_connection_string(storage.connection_string)
        for table in {table for table, _ in batches}:
            clients.create(table)
        cpu: dict[str, list[float]] = {"sdk": [], "raw": []}
        for _ in range(args.rounds):
            for writer in ("sdk", "raw"):
                started = time.thread_time()
                for table, chunk in batches:
                    client = clients.get(table)
                    if writer == "sdk":
                        client.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in chunk])
                    else:
                        raw_upserts(client, chunk)
                cpu[writer].append(time.thread_time() - started)
        stored = {(t, e["PartitionKey"], e["RowKey"]): e for t, _ in batches for e in clients.get(t).list_entities()}
        wanted = {(t, e["PartitionKey"], e["RowKey"]) for t, chunk in batches for e in chunk}
        if set(stored) != wanted:
            raise RuntimeError("the two writers left different entities")
        last = {(t, e["PartitionKey"], e["RowKey"]): e for t, chunk in batches for e in chunk}  # the API's duplicates
        for key, entity in last.items():  # the raw writer (the last to write) left what was planned
            back = stored[key]
            if any(back[k] != v for k, v in entity.items()):
                raise RuntimeError(f"entity {key} read back differently")
    finally:
        storage.stop()
    sdk, raw = min(cpu["sdk"]), min(cpu["raw"])
    print(f"{len(batches)} transactions, {entities} entities ({entities / len(batches):.1f} per transaction); "
          f"client CPU per transaction (best of {args.rounds}): SDK submit_transaction {1000 * sdk / len(batches):.2f} ms, "
          f"hand-built $batch {1000 * raw / len(batches):.2f} ms: {sdk / raw:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
