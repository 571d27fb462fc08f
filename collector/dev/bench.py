"""`make bench`: the ingestion benchmark (issue 2), then the query benchmark (issue 3).

Ingestion: a synthetic 7-day backfill of at least 200,000 records goes through the whole pipeline
(simulator over HTTPS → listing → queue → fetch → archive → index) on a fresh Azurite. In the same
run, Azurite's own ceiling is measured: the very same index entities written as plain 100-entity
batch upserts with the same writer threads and nothing else going on, into a second, empty Azurite
(the pipeline also started from an empty one). The ratio of the two rates
per index entity is the figure of merit (target ≥ 0.7). Numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import azurite

BENCH_DIR = azurite.REPO_ROOT / ".bench"
PERFORMANCE_MD = azurite.REPO_ROOT / "docs" / "performance.md"
TENANT = "5f1c2a3b-0000-4000-8000-00000000beef"


def billed_entity_bytes(entity: dict[str, Any]) -> int:
    """Azure Table storage's billed size of an entity (cost-anchors §4): 4 + 2·len(PK+RK) + Σ properties.

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


def write_section(name: str, text: str) -> None:
    """Replace the text between `<!-- bench:{name}:start -->` and its end marker in docs/performance.md."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    current = PERFORMANCE_MD.read_text() if PERFORMANCE_MD.exists() else "# Performance\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        current = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, current, flags=re.DOTALL)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    PERFORMANCE_MD.write_text(current)


def start_simulator(state_dir: Path, records_per_hour: int, days: int, seed: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    # A separate process: the simulator's serving must not compete for our GIL.
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    log = open(state_dir / "simulator.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "collector", "simulate", "--port", str(azurite.free_port()), "--state-dir", str(state_dir),
         "--tenant-id", TENANT, "--days", str(days), "--records-per-hour", str(records_per_hour), "--seed", str(seed),
         "--page-size", "200", "--users", "5000", "--realism", "blob_interval_minutes=60", "--subscribed", "--no-throttle"],
        cwd=azurite.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    env_file = state_dir / "env"
    deadline = time.monotonic() + 600
    while not env_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"simulator did not start; see {state_dir / 'simulator.log'}")
        time.sleep(0.2)
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return process, env


def ingestion(records_per_hour: int, days: int, workers: int, seed: int) -> str:
    from azure.data.tables import TableServiceClient, UpdateMode

    from .. import keys
    from ..bootstrap import Services
    from ..collect import drain
    from ..index import IndexItem, entities_for
    from ..normalize import normalize_record
    from ..settings import Settings

    BENCH_DIR.mkdir(exist_ok=True)
    storage = azurite.start(in_memory=True, log_path=BENCH_DIR / "azurite-ingest.log")
    simulator = None
    try:
        print(f"generating {days} days × {records_per_hour:,} records/hour in the simulator...", file=sys.stderr, flush=True)
        simulator, env = start_simulator(BENCH_DIR / "simulator", records_per_hour, days, seed)
        os.environ.update({k: v for k, v in env.items() if k == "REQUESTS_CA_BUNDLE"})
        env.update({
            "AUDIT_STORAGE_CONNECTION_STRING": storage.connection_string, "AUDIT_TABLE_PREFIX": "bench",
            "M365_CONTENT_TYPES": "Audit.AzureActiveDirectory,Audit.Exchange,Audit.SharePoint,Audit.General,DLP.All",
            "COLLECT_MAX_RUNTIME_SECONDS": "7200",
        })
        services = Services(Settings.from_env(env))
        services.ensure_storage()

        print("pipeline: listing → queue → fetch → archive → index ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        listing = services.listing.run()
        listed = time.perf_counter()
        result = drain(services.queue, services.processor, workers=workers,
                       progress=lambda line: print("  " + line, file=sys.stderr, flush=True))
        finished = time.perf_counter()
        pipeline_seconds = finished - started
        if result.poisoned or not listing.ok:
            raise RuntimeError(f"pipeline errors: {listing.types} {result}")

        blobs = list(services.archive.container.list_blobs(include=["metadata"]))
        archive_bytes = sum(blob.size for blob in blobs)
        # The ceiling writes the very same entity upserts the pipeline made (blob by blob, the API's
        # duplicates included), but as plain full batches: all of a partition's entities in
        # 100-entity transactions, nothing else going on. Also the billed size of each unique entity.
        writes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        sizes: dict[str, list[int]] = {view: [] for view in keys.VIEWS}
        unique: set[tuple[str, str, str]] = set()
        for blob in blobs:
            records = services.archive.records(blob.name)
            created = datetime.fromisoformat(blob.metadata["contentcreated"].replace("Z", "+00:00"))
            for position, record in enumerate(records):
                entry, when = normalize_record(record, blob.metadata["contenttype"], created)
                for view, entity in entities_for(IndexItem(entry, when, blob.name, position), TENANT):
                    table = keys.table_name("ceiling", view, keys.month_of(when))
                    writes.setdefault((table, entity["PartitionKey"]), []).append(entity)
                    if (view, entity["PartitionKey"], entity["RowKey"]) not in unique:
                        unique.add((view, entity["PartitionKey"], entity["RowKey"]))
                        sizes[view].append(billed_entity_bytes(entity))
        batches: list[tuple[str, list[dict[str, Any]]]] = []
        for (table, _), rows in writes.items():
            batch: dict[str, dict[str, Any]] = {}
            for row in rows:
                # a transaction may not touch one entity twice: a duplicate starts the next batch
                if row["RowKey"] in batch or len(batch) == 100:
                    batches.append((table, list(batch.values())))
                    batch = {}
                batch[row["RowKey"]] = row
            if batch:
                batches.append((table, list(batch.values())))
        ceiling_entities = sum(len(rows) for _, rows in batches)
        writers = services.index.writers
        # The ceiling starts from an empty Azurite, as the pipeline did: Azurite slows down as it
        # holds more data, so writing the ceiling on top of the pipeline's data would flatter the ratio.
        storage.stop()
        storage = azurite.start(in_memory=True, log_path=BENCH_DIR / "azurite-ceiling.log")
        ceiling_service = TableServiceClient.from_connection_string(storage.connection_string)
        for table in {table for table, _ in batches}:
            ceiling_service.create_table(table)

        def submit(batch: tuple[str, list[dict[str, Any]]]) -> None:
            table, rows = batch
            ceiling_service.get_table_client(table).submit_transaction(
                [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in rows])

        print(f"ceiling: {ceiling_entities:,} entities as plain 100-entity batches, {writers} threads, fresh Azurite ...",
              file=sys.stderr, flush=True)
        ceiling_started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=writers) as pool:
            list(pool.map(submit, batches))
        ceiling_seconds = time.perf_counter() - ceiling_started
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(timeout=20)
        storage.stop()

    records = result.records
    unique_records = len(sizes["i"])
    pipeline_rate = result.entities / pipeline_seconds
    ceiling_rate = ceiling_entities / ceiling_seconds
    view_bytes = {view: sum(values) / len(values) for view, values in sizes.items() if values}
    index_per_record = sum(view_bytes.values())
    index_per_entity = sum(sum(v) for v in sizes.values()) / sum(len(v) for v in sizes.values())
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, Azurite 3.35.0 in memory), "
        f"`python -m collector.dev.bench`.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| records through the pipeline ({days}-day backfill, all five content types) | {records:,} ({unique_records:,} unique; the rest are the API's duplicates) |",
        f"| content blobs | {len(blobs):,} (mean {records / len(blobs):,.0f} records) |",
        f"| pipeline wall time (listing {listed - started:.1f} s + queue drain, {workers} workers) | {pipeline_seconds:.1f} s |",
        f"| records/s | {records / pipeline_seconds:,.0f} |",
        f"| index entities written (4 per record) | {result.entities:,} |",
        f"| pipeline index entities/s | {pipeline_rate:,.0f} |",
        f"| Azurite ceiling: the same {ceiling_entities:,} entities as plain 100-entity batch upserts into a fresh Azurite | {ceiling_rate:,.0f} entities/s |",
        f"| **ratio pipeline / ceiling (target ≥ 0.7)** | **{pipeline_rate / ceiling_rate:.2f}** |",
        f"| archive bytes per record (gzip JSON, as stored) | {archive_bytes / records:,.0f} B |",
        f"| index bytes per entity (Table billed size, mean of all views) | {index_per_entity:,.0f} B |",
        f"| index bytes per record (t + u + o views + id entity) | {index_per_record:,.0f} B "
        f"(t {view_bytes.get('t', 0):,.0f}, u {view_bytes.get('u', 0):,.0f}, o {view_bytes.get('o', 0):,.0f}, i {view_bytes.get('i', 0):,.0f}) |",
    ]
    summary = {"records": records, "pipeline_seconds": pipeline_seconds, "ratio": pipeline_rate / ceiling_rate,
               "archive_bytes_per_record": archive_bytes / records, "index_bytes_per_record": index_per_record,
               "index_bytes_per_entity": index_per_entity}
    (BENCH_DIR / "ingest.json").write_text(json.dumps(summary, indent=2))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--records-per-hour", type=int, default=1250, help="× 24 × days ≥ 200,000 (default 1,250 × 168 h)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-query", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_ingest:
        text = ingestion(args.records_per_hour, args.days, args.workers, args.seed)
        print(text)
        write_section("ingest", "## Ingestion (issue 2)\n\n" + text)
    if not args.skip_query:
        from . import bench_query

        bench_query.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
