"""Ingest benchmark of the lean hot index (issue 11): one simulated backfill, three writers, one run.

    python -m devtools.bench_ingest [--records-per-hour 240] [--days 7] [--workers 4] [--rounds 2]

The simulator serves a 7-day backfill (about 40,000 records at the default rate: the issue's
measurement). Each round runs, each on a fresh in-memory Azurite and one after the other:

- **format 2**: the pipeline as deployed (`collector.collect`: listing → queue → fetch → archive →
  index → ledger, drained by `collector.drain` with `--workers` threads, detection rules on);
- **format 1**: the same pipeline with the previous index layout (devtools/legacy_index.py: one
  entity per record and view);
- **peer**: the write pattern of the simplest peer (ddbnl/office365-audit-log-collector, Python line:
  list every content blob, fetch them on `--workers` threads, one `create_entity` per record into one
  table keyed by content type and record Id, a conflict counted as success; no archive, no queue, no
  ledger). It uses our HTTP client for the API, so the difference is the storage work.

Measured per writer: records/s (wall time from the first listing request to the last write), the
collector process's CPU per 1,000 records (`time.process_time`; Azurite and the simulator run in
their own processes), storage requests per 1,000 records by service (counted at the HTTP layer), index
bytes per record (Table billed size of every index entity, read back; docs/storage-facts.md "Billed
entity size"), and records lost or duplicated against the archive's records. A development tool,
not a test; the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests

from . import azurite
from .benchkit import BENCH_DIR, billed_entity_bytes, start_simulator
from .sections import write_section

CONTENT_TYPES = ("Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All")
FLEX_INSTANCE_GB = 2.048  # Flex Consumption's 2,048 MB instance size (docs/deploy.md)


# ---------------------------------------------------------------- counting requests (HTTP layer)


class RequestCounter:
    """Counts every HTTP request this process sends, by Azurite service (blob, queue, table) or
    'api' (the simulator), through requests.Session.send (what the Azure SDK and msal use)."""

    def __init__(self) -> None:
        self.ports: dict[int, str] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._send: Callable[..., Any] | None = None

    def __enter__(self) -> RequestCounter:
        original = requests.Session.send
        counter = self

        def send(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            url = urlsplit(request.url or "")
            kind = counter.ports.get(url.port or 443, "api")
            if kind == "table":
                kind = f"table:{table_role(url.path, request.body)}"
            with counter._lock:
                counter.counts[kind] += 1
            return original(session, request, **kwargs)

        self._send = original
        requests.Session.send = send  # type: ignore[method-assign]  # the benchmark's own counting seam
        return self

    def __exit__(self, *exc: object) -> None:
        requests.Session.send = self._send  # type: ignore[method-assign]

    def watch(self, storage: azurite.Azurite) -> None:
        for kind in ("blob", "queue", "table"):
            self.ports[getattr(storage, f"{kind}_port")] = kind

    def take(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self.counts)
            self.counts.clear()
        return counts


INDEX_LETTERS = ("t", "u", "o", "i", "k", "j")  # format 1: t u o i; format 2: t k j (ids), k with ids before
_BATCH_TABLE = re.compile(rb"/[A-Za-z0-9]+/([A-Za-z][A-Za-z0-9]*)\(")


def table_role(path: str, body: Any) -> str:
    """What a Table request is for, from its table's name: index, ledger, state, alerts, create (or other)."""
    name = path.split("/")[2].split("(")[0] if path.count("/") >= 2 else ""
    if name == "$batch" and isinstance(body, bytes | bytearray):
        found = _BATCH_TABLE.search(bytes(body))
        name = found.group(1).decode() if found else name
    if name == "Tables":
        return "create"  # create_table (once per table and process) and table listings
    rest = name[len("bench"):] if name.startswith("bench") else name
    if rest == "peer" or (rest[:1] in INDEX_LETTERS and rest[1:].isdigit()):
        return "index"
    for role in ("ledger", "state", "alert"):
        if rest.startswith(role):
            return role
    return "other"


@dataclass
class Result:
    writer: str
    records: int  # records in the fetched content (duplicates included)
    unique: int  # distinct (organization, Id) the content holds
    stored: int  # distinct records the writer's storage holds
    duplicated: int
    seconds: float
    cpu_seconds: float
    requests: dict[str, int]
    index_bytes: float  # per stored record
    entities: int
    by_table: dict[str, float] = field(default_factory=dict)  # billed bytes per record, per table letter
    blobs: int = 0
    azurite_cpu: float = 0.0  # CPU seconds of the run's Azurite process (it serves every storage request)
    archive_bytes: int = 0  # stored (gzip) bytes of the raw archive
    load: tuple[str, str] = ("", "")  # /proc/loadavg's 1-minute figure at the start and the end

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    def per_thousand(self, kinds: Iterable[str]) -> float:
        """Requests per 1,000 records of the given kinds ("table" counts every table role)."""
        wanted = set(kinds)
        return 1000 * sum(count for kind, count in self.requests.items()
                          if kind in wanted or kind.split(":")[0] in wanted) / self.records


@contextmanager
def fresh_storage(counter: RequestCounter, name: str) -> Iterator[azurite.Azurite]:
    storage = azurite.start(in_memory=True, log_path=BENCH_DIR / f"azurite-{name}.log")
    counter.watch(storage)
    try:
        yield storage
    finally:
        storage.stop()


def _env(simulator_env: dict[str, str], storage: azurite.Azurite) -> dict[str, str]:
    return {**simulator_env, "AUDIT_STORAGE_CONNECTION_STRING": storage.connection_string, "AUDIT_TABLE_PREFIX": "bench",
            "M365_CONTENT_TYPES": ",".join(CONTENT_TYPES), "COLLECT_MAX_RUNTIME_SECONDS": "7200"}


def _table_bytes(tables: Any, prefix: str, letters: str) -> tuple[dict[str, int], int]:
    """Billed bytes per table letter of the tables `{prefix}{letter}{yyyyMMdd}`, and their entity count."""
    sizes: collections.Counter[str] = collections.Counter()
    entities = 0
    for name in tables.names(prefix, prefix + "~"):
        letter = name[len(prefix):len(prefix) + 1]
        if letter not in letters or not name[len(prefix) + 1:].isdigit():
            continue
        for entity in tables.get(name).list_entities():
            sizes[letter] += billed_entity_bytes(dict(entity))
            entities += 1
    return dict(sizes), entities


def _archived(services: Any) -> tuple[int, set[tuple[str, str]], int]:
    records = blobs = 0
    unique: set[tuple[str, str]] = set()
    for name in services.archive.names(""):
        if not name.endswith(".json.gz"):
            continue
        blobs += 1
        for record in services.archive.records(name):
            records += 1
            unique.add((str(record.get("OrganizationId", "")).lower(), str(record.get("Id", "")).lower()))
    return records, unique, blobs


def run_pipeline(simulator_env: dict[str, str], counter: RequestCounter, workers: int, legacy: bool,
                 rules: bool = True) -> Result:
    from collector.bootstrap import Services
    from collector.collect import ContentProcessor
    from collector.drain import drain
    from collector.index import AuditIndex, IndexItem
    from collector.settings import Settings

    from . import legacy_index

    class LegacyIndex(AuditIndex):
        """Format 1's writer (devtools/legacy_index.py) behind the index's write seam."""

        def write(self, items: Iterable[IndexItem]) -> int:
            batches = legacy_index.plan_batches(items, self.prefix, self.tenant_id)
            for table in {table for table, _ in batches}:
                self.ensure_table(table)
            with ThreadPoolExecutor(max_workers=self.writers) as pool:
                list(pool.map(lambda batch: self._submit(*batch), batches))
            return sum(len(chunk) for _, chunk in batches)

    name = ("format1" if legacy else "format2") + ("" if rules else "-norules")
    with fresh_storage(counter, name) as storage:
        services = Services(Settings.from_env({**_env(simulator_env, storage), "ALERTS_ENABLED": str(rules).lower()}))
        services.ensure_storage()
        processor = services.processor
        if legacy:
            index = LegacyIndex(services.tables, services.settings.table_prefix, services.settings.tenant_id)
            processor = ContentProcessor(services.settings, services.api, services.archive, index, services.ledger,
                                         alerts=services.alerts.sink)
        counter.take()
        with measured(storage) as took:
            listing = services.listing.run()
            if not listing.ok:
                raise RuntimeError(f"listing errors: {listing.types}")
            result = drain(services.queue, processor, workers=workers)
            if result.poisoned or result.failed_attempts or services.queue.depth():
                raise RuntimeError(f"pipeline errors: {result}")
        requests_made = counter.take()
        records, unique, blobs = _archived(services)
        archive_bytes = sum(services.archive.list_sizes("").values())
        prefix = services.settings.table_prefix
        sizes, entities = _table_bytes(services.tables, prefix, "tuoi" if legacy else "tkj")
        stored, duplicated = _stored(services, legacy)
    total = sum(sizes.values())
    writer = ("format 1" if legacy else "format 2") + ("" if rules else ", rules off")
    return Result(writer, records, len(unique), stored, duplicated, took.seconds, took.cpu, requests_made,
                  total / max(stored, 1), entities, {k: v / max(stored, 1) for k, v in sizes.items()}, blobs,
                  took.azurite_cpu, archive_bytes, took.load)


@dataclass
class Took:
    seconds: float = 0.0
    cpu: float = 0.0  # this process (the collector)
    azurite_cpu: float = 0.0
    load: tuple[str, str] = ("", "")


@contextmanager
def measured(storage: azurite.Azurite) -> Iterator[Took]:
    """Wall time, this process's CPU, the Azurite process's CPU and the machine's load over the block."""
    took = Took()
    load, azurite_cpu = loadavg(), process_cpu(storage.process.pid)
    started, cpu = time.perf_counter(), time.process_time()
    yield took
    took.seconds, took.cpu = time.perf_counter() - started, time.process_time() - cpu
    took.azurite_cpu, took.load = process_cpu(storage.process.pid) - azurite_cpu, (load, loadavg())


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (0 where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    """The 1-minute load average (other work on the machine weighs on every rate here)."""
    try:
        with open("/proc/loadavg") as handle:
            return handle.read().split()[0]
    except OSError:
        return "?"


def _stored(services: Any, legacy: bool) -> tuple[int, int]:
    """Distinct records in the time view (every day, read the way queries read it), and rows that
    came twice."""
    from collector.models import View

    seen: collections.Counter[str] = collections.Counter()
    now = datetime.now(UTC)
    for hit in services.index.scan(View.TIME, now - timedelta(days=30), now + timedelta(days=1)):
        seen[hit.key] += 1
    return len(seen), sum(count - 1 for count in seen.values())


def run_peer(simulator_env: dict[str, str], counter: RequestCounter, workers: int, days: int) -> Result:
    """The simplest peer's write pattern (module docstring): one create_entity per record."""
    from azure.core.exceptions import ResourceExistsError

    from collector.bootstrap import Services
    from collector.errors import ContentUnavailableError
    from collector.models import Window
    from collector.settings import Settings

    with fresh_storage(counter, "peer") as storage:
        services = Services(Settings.from_env(_env(simulator_env, storage)))
        table = services.tables.get("peer")
        services.tables.create("peer")
        api = services.api
        counter.take()
        with measured(storage) as took:
            now = api.server_now()
            refs = []
            for content_type in CONTENT_TYPES:
                for day in range(days, 0, -1):  # 24-hour slices back to the 7-day edge, as the peer lists
                    start = max(now - timedelta(days=day), now - timedelta(days=7) + timedelta(minutes=5))
                    refs += api.list_content(content_type, Window(start, now - timedelta(days=day - 1)))
            records = 0
            unique: set[tuple[str, str]] = set()
            lock = threading.Lock()

            def fetch_and_write(ref: Any) -> None:
                nonlocal records
                try:
                    body = json.loads(api.fetch_content(ref.content_uri))
                except ContentUnavailableError:
                    return  # expired at the 7-day edge while the earlier writers ran: the peer logs and skips it
                for record in body:
                    with contextlib.suppress(ResourceExistsError):  # the peer counts a conflict as success
                        table.create_entity({"PartitionKey": ref.content_type, "RowKey": str(record["Id"]),
                                             "Data": json.dumps(record)[:30000]})
                with lock:
                    records += len(body)
                    unique.update((str(r.get("OrganizationId", "")).lower(), str(r["Id"]).lower()) for r in body)

            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fetch_and_write, refs))
        requests_made = counter.take()
        stored = sum(1 for _ in table.list_entities(select=["RowKey"]))
        sizes = {"peer": sum(billed_entity_bytes(dict(e)) for e in table.list_entities())}
        entities = stored
    return Result("peer", records, len(unique), stored, 0, took.seconds, took.cpu, requests_made,
                  sum(sizes.values()) / max(stored, 1), entities, azurite_cpu=took.azurite_cpu, load=took.load)


# ---------------------------------------------------------------- billed size by tenant size (pure)

TENANT_SIZES = (50, 1_000, 10_000)  # seats; 200 records per seat and day (docs/prices.md, assumptions)


def by_tenant_size(hours: float = 2.0, seats: Iterable[int] = TENANT_SIZES) -> list[dict[str, float]]:
    """Billed index bytes and index transactions per record of the entities both formats would write
    for `hours` of a synthetic working day of each tenant size (the simulator's realism: one blob per
    content type and 5 minutes): no storage involved, the entities are what `plan_batches` sends."""
    from collector import keys
    from collector.index import IndexItem, plan_batches
    from collector.normalize import normalize_record
    from simulator.synthetic import generate_blobs

    from . import legacy_index

    tenant = "5f1c2a3b-0000-4000-8000-00000000beef"
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)  # a Tuesday morning
    out = []
    for size in seats:
        _, blobs = generate_blobs(tenant, start, start + timedelta(hours=hours), size * 200 / 24, users=size, seed=5)
        totals = {"seats": float(size), "records": 0.0, "blobs": 0.0, "new_bytes": 0.0, "old_bytes": 0.0,
                  "new_transactions": 0.0, "old_transactions": 0.0}
        for blob in blobs:
            stamp = f"{blob.content_created:%Y%m%d%H%M%S%f}"  # the API's contentId shape (api-behaviour.md)
            name = keys.archive_blob_name(blob.content_type, f"{stamp}0$${stamp}1$${blob.content_type.lower()}$"
                                          f"{blob.content_type.replace('.', '_')}$na0017", blob.content_created)
            items = [IndexItem(*normalize_record(record, blob.content_type, blob.content_created), name, position)
                     for position, record in enumerate(json.loads(blob.body))]
            totals["records"] += len(items)
            totals["blobs"] += 1
            for key, plan in (("new", plan_batches), ("old", legacy_index.plan_batches)):
                batches = plan(items, "p", tenant)
                totals[f"{key}_transactions"] += len(batches)
                totals[f"{key}_bytes"] += sum(billed_entity_bytes(entity) for _, chunk in batches for entity in chunk)
        out.append(totals)
    return out


def size_table(rows: list[dict[str, float]]) -> str:
    lines = ["| tenant | records (2 h of a working morning) | records per blob | index B/record format 2 | format 1 | "
             "index transactions per 1,000 records format 2 | format 1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        n = r["records"]
        lines.append(f"| {r['seats']:,.0f} seats | {n:,.0f} | {n / r['blobs']:,.0f} | **{r['new_bytes'] / n:,.0f}** | "
                     f"{r['old_bytes'] / n:,.0f} | **{1000 * r['new_transactions'] / n:,.1f}** | "
                     f"{1000 * r['old_transactions'] / n:,.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- report


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


WRITERS = ("format 2", "format 2, rules off", "format 1", "peer")
RULES = ("table:alert",)  # the detection rules' tables (alerts, alertw windows, alertseen first-seen)
STORAGE = ("table", "blob", "queue")


def report(rounds: list[dict[str, Result]], workers: int) -> str:
    last = rounds[-1]
    runs = [last[w] for w in WRITERS]
    new, old = last["format 2"], last["format 1"]

    def ratio(a: str, b: str) -> float:
        return median([r[a].rate / r[b].rate for r in rounds])

    def row(label: str, cell: Callable[[Result], str], bold: tuple[int, ...] = ()) -> str:
        cells = [f"**{cell(r)}**" if i in bold else cell(r) for i, r in enumerate(runs)]
        return f"| {label} | " + " | ".join(cells) + " |"

    def per_k(kinds: Iterable[str], minus: Iterable[str] = ()) -> Callable[[Result], str]:
        return lambda r: f"{r.per_thousand(kinds) - r.per_thousand(minus):,.0f}"

    old_storage = old.per_thousand(STORAGE) - old.per_thousand(RULES)
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Azurite 3.35.0 in memory, a fresh one per run), `python -m devtools.bench_ingest` "
        f"(in `make bench`): the simulator's {new.records:,}-record 7-day backfill ({new.unique:,} distinct records; the "
        f"rest are the API's duplicates; 5,000 users, one content blob per content type and hour), {workers} worker "
        f"threads, {len(rounds)} round(s) of the four writers one after the other; rates are the last round's, ratios "
        "the median over rounds.",
        "",
        "| measure | format 2 (this version) | format 2, detection rules off | format 1 (previous) | peer write pattern |",
        "|---|---:|---:|---:|---:|",
        row("records/s", lambda r: f"{r.rate:,.0f}", (0, 1)),
        row("ratio to the peer (goal ≥ 1.5)", lambda r: f"{ratio(r.writer, 'peer'):.2f}", (0, 1)),
        row("records lost / duplicated", lambda r: f"{r.unique - r.stored} / {r.duplicated if r.writer != 'peer' else '—'}"),
        row("index bytes per record (Table billed size, all views; goal ≤ 400)",
            lambda r: f"{r.index_bytes:,.0f} ({_split(r)})" if r.writer != "peer" else f"{r.index_bytes:,.0f} (the record's JSON)",
            (0, 1)),
        row("index entities per record", lambda r: f"{r.entities / max(r.stored, 1):.2f}"),
        row("storage requests per 1,000 records (table + blob + queue)", per_k(STORAGE)),
        row("the same without the detection rules' tables (goal ≤ half of format 1: "
            f"{old_storage / 2:,.0f})", per_k(STORAGE, RULES), (0, 1)),
        row("of which table: index", per_k(["table:index"])),
        row("of which table: ledger + state", per_k(["table:ledger", "table:state"])),
        row("of which table: creating tables (once per table and process)", per_k(["table:create", "table:other"])),
        row("of which blob / queue", lambda r: f"{r.per_thousand(['blob']):,.0f} / {r.per_thousand(['queue']):,.0f}"),
        row("detection rules' table requests (issue 14: windows, first-seen, alerts)", per_k(RULES)),
        row("API requests per 1,000 records (listing, content, token)", lambda r: f"{r.per_thousand(['api']):,.1f}"),
        row("archive bytes per record (gzip, as stored)",
            lambda r: f"{r.archive_bytes / r.records:,.0f}" if r.archive_bytes else "— (none)"),
        row("collector CPU per 1,000 records (this process: fetch, parse, normalize, encode, the SDKs' requests)",
            lambda r: f"{1000 * r.cpu_seconds / r.records:,.2f} s", (0, 1)),
        row("Azurite CPU per 1,000 records (its own process: the storage service's work)",
            lambda r: f"{1000 * r.azurite_cpu / r.records:,.2f} s"),
        row(f"Functions GB-s per million records, floor (collector CPU s × {FLEX_INSTANCE_GB} GB: busy only while "
            "computing)", lambda r: f"{r.cpu_seconds / r.records * 1e6 * FLEX_INSTANCE_GB:,.0f}", (0, 1)),
        row(f"Functions GB-s per million records, as run here (wall s × {FLEX_INSTANCE_GB} GB: one instance, "
            "waiting included)", lambda r: f"{r.seconds / r.records * 1e6 * FLEX_INSTANCE_GB:,.0f}"),
        row("machine load (1-minute load average at the writer's start → end, 2 cores)",
            lambda r: f"{r.load[0]} → {r.load[1]}"),
        "",
        "How to read it: every writer fetches the same content over HTTPS from the simulator; the pipeline also "
        "archives each blob, keeps its ledger row, moves its queue message and (unless off) runs the detection rules. "
        "Azurite runs on the same two cores, so records/s compares the writers' storage work on this machine, not "
        "Azure's throughput. GB-s is a floor: on Azure an execution also waits on storage round trips, which "
        "concurrent invocations on one instance overlap (host.json `batchSize`); the wall figure is this machine's "
        "Azurite and load, an upper bound. The peer row keeps only a JSON copy of "
        "each record: no query views, no raw archive, no duplicates collapsed across content types. The load row says "
        "how busy the two cores were (the collector, Azurite and the simulator make about 2 to 3; more is other "
        "work): rates move with that load, CPU per record and requests per record much less. Where the collector's time and CPU go, phase by phase: the section "
        "\"Ingest: where the time goes\" below (devtools/profile_ingest.py, devtools/batch_cost.py).",
    ]
    return "\n".join(lines)


def _split(result: Result) -> str:
    return ", ".join(f"{letter} {value:,.0f}" for letter, value in sorted(result.by_table.items()) if letter != "peer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench_ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records-per-hour", type=int, default=240)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/performance.md")
    args = parser.parse_args(argv)
    BENCH_DIR.mkdir(exist_ok=True)
    simulator, env = start_simulator(BENCH_DIR / "simulator-ingest", args.records_per_hour, args.days, args.seed)
    os.environ.update({k: v for k, v in env.items() if k == "REQUESTS_CA_BUNDLE"})
    rounds: list[dict[str, Result]] = []
    try:
        with RequestCounter() as counter:
            for number in range(1, args.rounds + 1):
                results = {}
                for run in (lambda: run_pipeline(env, counter, args.workers, legacy=False),
                            lambda: run_pipeline(env, counter, args.workers, legacy=False, rules=False),
                            lambda: run_pipeline(env, counter, args.workers, legacy=True),
                            lambda: run_peer(env, counter, args.workers, args.days)):
                    result = run()
                    results[result.writer] = result
                    print(f"  round {number}: {result.writer}: {result.records:,} records in {result.seconds:,.1f} s "
                          f"({result.rate:,.0f}/s), {result.index_bytes:,.0f} B/record, requests {result.requests}",
                          file=sys.stderr, flush=True)
                rounds.append(results)
    finally:
        simulator.terminate()
        simulator.wait(timeout=20)
    sizes = by_tenant_size()
    text = ("## Ingest: the lean hot index (issue 11)\n\n" + report(rounds, args.workers)
            + "\n\nBy tenant size: the billed bytes and transactions of the index entities each format writes for the "
            "same synthetic records (`by_tenant_size`: no storage involved; a blob per content type and 5 minutes, "
            "the simulator's default). Bigger tenants have bigger blobs, so more of a user's or an operation's records "
            "share a block; collector/cost.py takes the 10,000-seat figures.\n\n" + size_table(sizes))
    summary = {writer: {"records": r.records, "unique": r.unique, "stored": r.stored, "seconds": r.seconds,
                        "cpu_seconds": r.cpu_seconds, "requests": r.requests, "index_bytes_per_record": r.index_bytes,
                        "entities": r.entities, "by_table": r.by_table, "blobs": r.blobs}
               for writer, r in rounds[-1].items()}
    summary["by_tenant_size"] = sizes  # type: ignore[assignment]  # a list beside the writers' records
    (BENCH_DIR / "ingest-lean.json").write_text(json.dumps(summary, indent=2))
    print(text)
    if not args.no_write:
        write_section("ingest-lean", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
