"""The client-side CPU of one index transaction: the Tables SDK's `submit_transaction` against
collector/transaction.py's hand-encoded `$batch`, sent through the same client pipeline (issue
11's profile: the SDK's multipart encoding and decoding was most of the collector's CPU).

    python -m devtools.batch_cost [--blobs 40] [--rounds 3]

The entities are what `collector.index.plan_batches` writes for synthetic content blobs (the
simulator's generator); both writers send the same transactions, alternately, to one fresh
in-memory Azurite and must leave the same entities behind. A development tool: it prints what
transaction.py saves; nothing in collector/ uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import UpdateMode

from . import azurite


def main(argv: list[str] | None = None) -> int:
    from collector import keys, transaction
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
                        transaction.upsert(client, chunk)
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
