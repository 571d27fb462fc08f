"""What the benchmarks share (devtools/bench.py, bench_ingest.py, profile_ingest.py): where they keep
their state, the simulated tenant, the simulator process they start, Azure Table storage's billed
entity size, and plain full batches of entities (Azurite's ceiling)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from collector.index import BATCH_LIMIT

from . import azurite, simulator_process

BENCH_DIR = azurite.REPO_ROOT / ".bench"
TENANT = "5f1c2a3b-0000-4000-8000-00000000beef"


def billed_entity_bytes(entity: dict[str, Any]) -> int:
    """Azure Table storage's billed size of an entity (docs/storage-facts.md "Billed entity size"): 4 + 2·len(PK+RK) + Σ properties.

    A property costs 8 + 2·len(name) plus its value: String 4 + 2·chars, Binary 4 + bytes, Int32 4,
    Int64/Double 8, Bool 1.
    """
    size = 4 + 2 * (len(entity["PartitionKey"]) + len(entity["RowKey"]))
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey", "Timestamp", "etag"):
            continue
        size += 8 + 2 * len(name)
        if isinstance(value, str):
            size += 4 + 2 * len(value)
        elif isinstance(value, bytes):
            size += 4 + len(value)
        elif isinstance(value, bool):
            size += 1
        elif isinstance(value, int):
            size += 4 if -(2**31) <= value < 2**31 else 8
        else:
            size += 8
    return size


def start_simulator(state_dir: Path, records_per_hour: int, days: int, seed: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    return simulator_process.start_simulator(state_dir, [
        "--tenant-id", TENANT, "--days", str(days), "--records-per-hour", str(records_per_hour), "--seed", str(seed),
        "--page-size", "200", "--users", "5000", "--realism", "blob_interval_minutes=60", "--subscribed", "--no-throttle",
    ], timeout=600)


def full_batches(entities: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(table, entity) pairs as plain batches: a partition's entities in order, 100 per transaction.

    A transaction may not touch one entity twice, so a repeated key (the API's duplicates) starts
    the next batch.
    """
    by_partition: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for table, entity in entities:
        by_partition.setdefault((table, entity["PartitionKey"]), []).append(entity)
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for (table, _), rows in by_partition.items():
        batch: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["RowKey"] in batch or len(batch) == BATCH_LIMIT:
                batches.append((table, list(batch.values())))
                batch = {}
            batch[row["RowKey"]] = row
        if batch:
            batches.append((table, list(batch.values())))
    return batches
