"""Cold-tier benchmark: bytes per record, compaction throughput, peak memory, bytes read per query,
and query latency through the API over a year of cold days on Azurite.

    python -m devtools.bench_cold [--records 100000 400000] [--users 10000] [--part-budget 110000]
                                  [--query-days 365] [--write]

A synthetic day (simulator/synthetic.py) is archived as gzip files on local disk and its id view
streamed from a file, so the measured process holds only what compaction itself holds. Compaction
(collector/cold/compaction.py, default Limits) runs in a child process per size to report its own
peak RSS. The largest day is then compacted again in parts of `--part-budget` records, one child
process per part as one timer execution each (collector/cold/compaction.py resumes at the first
uncommitted part), and the 40 M-record day is projected from it. Queries run over the written files
through a counting file (bytes and reads per query).

Query latency: `--query-days` days of the query benchmark's synthetic tenant (devtools/bench_query.py:
5,000 users, Zipf; ~150 operations; `--query-records` a day) are written as cold days (the
compaction writer, manifests) into a fresh Azurite, with an empty hot index, and queried through
`collector.api.Api` (in process, no HTTP): first pages of one user over the whole range, one
operation over 30 days, one hour, `q` over one day, and raw records by id, each with the blob
requests it cost (cold reads are billed per request).
`--write` replaces the `cold` section of docs/performance.md (devtools/sections.py write_section).
"""

from __future__ import annotations

import argparse
import gzip
import io
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
DAY_START = datetime(2024, 5, 6, tzinfo=UTC)
DAY = "20240506"


def build_day(directory: Path, records: int, users: int, seed: int = 7) -> int:
    """Archive blobs as files and the id view as lines `key blob position`; returns the record count."""
    from collector import keys
    from collector.normalize import normalize_record
    from simulator.synthetic import generate_blobs

    _, specs = generate_blobs(TENANT, DAY_START, DAY_START + timedelta(days=1), records / 24, seed=seed, users=users)
    ids: dict[str, tuple[str, int]] = {}
    (directory / "archive").mkdir(parents=True, exist_ok=True)
    for number, spec in enumerate(specs):
        name = keys.archive_blob_name(spec.content_type, f"c{number}", spec.content_created)
        path = directory / "archive" / name.replace("/", "~")
        path.write_bytes(gzip.compress(spec.body, 1))
        for position, record in enumerate(json.loads(spec.body)):
            entry, when = normalize_record(record, spec.content_type, spec.content_created)
            if keys.day_of(when) == DAY:
                ids[keys.order_key(when, entry.id, entry.organizationId, TENANT)[10:]] = (name, position)
    with open(directory / "ids.txt", "w") as handle:
        for key, (name, position) in ids.items():
            handle.write(f"{key}\t{name}\t{position}\n")
    return len(ids)


class FileIds:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "ids.txt"

    def days(self) -> list[str]:
        return [DAY]

    def locations(self, day: str, since: datetime | None = None) -> Iterator[tuple[str, str, int]]:
        if since is not None:
            return
        with open(self.path) as handle:
            for line in handle:
                key, name, position = line.rstrip("\n").split("\t")
                yield key, name, int(position)


class FileArchive:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "archive"

    def records(self, name: str) -> list[dict[str, Any]]:
        body = json.loads(gzip.decompress((self.directory / name.replace("/", "~")).read_bytes()))
        return body if isinstance(body, list) else [body]


class CountingFile(io.FileIO):
    """A local file that counts reads and bytes, as a ranged blob read would be billed."""

    reads = 0
    bytes = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]  # FileIO.read's signature differs per version
        data = super().read(size)
        CountingFile.reads += 1
        CountingFile.bytes += len(data)
        return data


class FileStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.directory / name.replace("/", "~")

    def put_file(self, name: str, path: Path) -> int:
        self._path(name).write_bytes(path.read_bytes())
        return path.stat().st_size

    def get(self, name: str) -> tuple[bytes, str] | None:
        path = self._path(name)
        if not path.exists():
            return None
        CountingFile.reads += 1
        CountingFile.bytes += path.stat().st_size
        return path.read_bytes(), str(path.stat().st_mtime_ns)

    def put_manifest(self, name: str, data: bytes, etag: str | None) -> None:
        self._path(name).write_bytes(data)

    def size(self, name: str) -> int | None:
        path = self._path(name)
        return path.stat().st_size if path.exists() else None

    def list(self, prefix: str) -> list[str]:
        return sorted(p.name.replace("~", "/") for p in self.directory.iterdir() if p.name.replace("~", "/").startswith(prefix))

    def age(self, name: str) -> timedelta | None:
        return timedelta(0) if self._path(name).exists() else None

    def delete(self, name: str) -> bool:
        self._path(name).unlink(missing_ok=True)
        return True

    def open(self, name: str, size: int | None = None) -> IO[bytes]:
        return CountingFile(self._path(name))  # type: ignore[return-value]  # FileIO is a binary file


def compact_child(directory: str) -> None:
    """Child process: compact the day once and print JSON (seconds, peak RSS)."""
    from collector.cold.compaction import Compactor

    root = Path(directory)
    compactor = Compactor(FileIds(root), FileArchive(root), FileStore(root / "cold"), tenant_id=TENANT,
                          work_dir=root)
    started, cpu = time.perf_counter(), time.process_time()
    report = compactor.compact_day(DAY)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "records": report.records,
                      "peak_rss_mb": peak_rss_mb()}))


def part_child(directory: str, part_records: int) -> None:
    """Child process: one timer execution of a day compacted in parts, which writes one part (the
    first execution also scans the id view and writes the plan); prints JSON (seconds, peak RSS,
    the part written, whether the day is done)."""
    from collector.cold.compaction import Budget, Compactor

    class OnePart(Budget):
        """A budget that lets one part start: each child is one execution of the timer."""

        def allows(self, estimate: float | None = None) -> bool:
            return self.longest == 0.0

    root = Path(directory)
    compactor = Compactor(FileIds(root), FileArchive(root), FileStore(root / "cold"), tenant_id=TENANT,
                          work_dir=root, part_records=part_records)
    started, cpu = time.perf_counter(), time.process_time()
    report = compactor.compact_day(DAY, OnePart(None))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "records": report.added,
                      "written": report.parts_written,
                      "parts": report.parts, "action": report.action, "peak_rss_mb": peak_rss_mb()}))


def measure_parts(root: Path, count: int, part_records: int) -> tuple[list[str], dict[str, float]]:
    """Markdown lines: the day in `root` compacted again in parts of `part_records`, one child
    process (one timer execution) per part; and the figures the projection uses."""
    import shutil

    shutil.rmtree(root / "cold", ignore_errors=True)
    lines = ["", f"The {count:,}-record day compacted again in parts of {part_records:,} records "
             "(`Compactor(part_records=…)`), one process per part as one timer execution each (the first also "
             "scans the id view and writes the plan; each later one reads its part's plan back):", "",
             "| execution | part written | records | seconds | CPU seconds | rec/s (CPU) | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    total_seconds = total_cpu = 0.0
    peak = 0.0
    runs = []
    for execution in range(1, 1000):
        done = subprocess.run([sys.executable, "-m", "devtools.bench_cold", "--part-child", str(root),
                               "--part-budget", str(part_records)], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(result)
        part_rows = result["records"]
        total_seconds += result["seconds"]
        total_cpu += result["cpu_seconds"]
        peak = max(peak, result["peak_rss_mb"])
        written = ", ".join(str(n) for n in result["written"]) or "–"
        lines.append(f"| {execution} | {written} of {result['parts']} | {part_rows:,} | {result['seconds']:.1f} | "
                     f"{result['cpu_seconds']:.1f} | {part_rows / result['cpu_seconds']:,.0f} | "
                     f"{result['peak_rss_mb']:.0f} |")
        print(lines[-1], flush=True)
        if result["action"] == "compacted":
            break
    rate = count / total_cpu
    lines += ["", f"In all {total_seconds:.0f} s ({total_cpu:.0f} CPU s) for {count:,} records: {rate:,.0f} rec/s of "
              f"CPU over the parts, the plan included; peak RSS {peak:.0f} MB in any execution; {len(runs)} executions."]
    return lines, {"rate": rate, "peak": peak}


def projection(rate: float, peak: float) -> list[str]:
    """The 200,000-seat day (~40 M records) from the measured per-part rate (local files: Azure adds
    the archive reads, stated separately)."""
    from collector.cold.compaction import PART_RECORDS
    from collector.settings import Settings

    records = 40_000_000
    parts = -(-records // PART_RECORDS)
    part_seconds = PART_RECORDS / rate
    budget = Settings.from_env({}).compact_max_seconds
    # a part starts only if the longest part so far would still end inside the budget
    per_execution = max(1, int(budget // part_seconds))
    executions = -(-parts // per_execution)
    return ["", f"**Projection for a 200,000-seat tenant's day (~{records / 1e6:.0f} M records)**: {parts} parts of "
            f"{PART_RECORDS:,} (`PART_RECORDS`), each ~{part_seconds / 60:.1f} min of compaction at the rate above "
            f"(plus its archive reads in Azure: ~{PART_RECORDS // 250:,} blobs of ~250 records a part), so with "
            f"`COMPACT_MAX_SECONDS` = {budget} about {per_execution} part(s) per timer execution and "
            f"{executions} executions for the day; peak memory is a part's, {peak:.0f} MB here, not the day's "
            "(the writer's buffers are bounded by `writer.Limits`; the plan scan adds ~4 B a record of the day, "
            f"~{records * 4 / 1e6:.0f} MB, in the first execution only)."]


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec from the
    parent that forked the child, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_queries(root: Path) -> dict[str, tuple[int, int]]:
    """(reads, bytes) per query kind over the compacted day (first page of 100)."""
    from collector.cold.reader import DayReader

    store = FileStore(root / "cold")
    results = {}
    sample = DayReader(store, DAY)
    hits = list(sample.scan())
    user = hits[len(hits) // 3].entry.user
    operation = hits[len(hits) // 3].entry.operation
    hour_key = hits[len(hits) // 2].key
    target = hits[len(hits) // 4].entry
    queries = {
        "manifest": lambda r: r.manifest,
        "one user, first page": lambda r: list(_take(r.scan(user=user), 100)),
        "one operation, first page": lambda r: list(_take(r.scan(operation=operation), 100)),
        "newest first after a cursor, first page": lambda r: list(_take(r.scan(after=hour_key), 100)),
        "id lookup (raw JSON)": lambda r: r.raw(target.id, target.organizationId, TENANT),
    }
    for name, run in queries.items():
        reader = DayReader(store, DAY)
        reader.manifest  # noqa: B018 - counted separately
        CountingFile.reads = CountingFile.bytes = 0
        run(reader)
        results[name] = (CountingFile.reads, CountingFile.bytes)
    return results


def _take(items: Iterator[Any], count: int) -> Iterator[Any]:
    for number, item in enumerate(items):
        if number >= count:
            return
        yield item


# ---------------------------------------------------------------- query latency over many cold days


def cold_day_worker(args: tuple[str, str, str, int, int]) -> int:
    """Write one synthetic day of the query benchmark's tenant as a compacted cold day (files and
    manifest) into the container; returns its record count. Runs in a pool process."""
    connection, container, day, records, seed = args
    from dataclasses import replace

    from azure.storage.blob import BlobServiceClient

    from collector import keys
    from collector.cold import layout, writer
    from collector.cold.store import ColdBlobStore
    from collector.index import entry_from_entity, view_payload
    from devtools.bench_query import TENANT as QUERY_TENANT
    from devtools.bench_query import synthetic_items

    start = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
    store = ColdBlobStore(BlobServiceClient.from_connection_string(connection), container)
    rows = []
    for item in synthetic_items(records, start, 1, seed=seed):
        entry = item.entry
        order = keys.order_key(item.when, entry.id, entry.organizationId, QUERY_TENANT)
        hot = entry_from_entity(order, {"d": view_payload(entry, QUERY_TENANT)}, QUERY_TENANT)
        raw = {"CreationTime": entry.time[:-1], "Id": entry.id, "Operation": entry.operation,
               "OrganizationId": entry.organizationId, "RecordType": entry.recordType, "UserId": entry.user,
               "Workload": entry.workload, "ObjectId": entry.object, "ClientIP": entry.clientIp,
               "UserAgent": entry.userAgent, "ResultStatus": entry.result, "UserType": 0, "Version": 1,
               "UserKey": f"i:0h.f|membership|{abs(hash(entry.user)) % 10**16:016x}@live.com"}
        rows.append((order, hot, layout.raw_json(raw)))
    with tempfile.TemporaryDirectory(prefix=f"bench-cold-{day}-") as tmp:
        day_writer = writer.DayWriter(day, Path(tmp), expected_rows=len(rows))
        day_writer.add(writer.rows_table(rows))
        written = day_writer.finish()
        files = {}
        for kind, info in written.files.items():
            name = layout.file_name(day, 1, kind)
            store.put_file(name, written.paths[kind])
            files[kind] = replace(info, name=name)
    manifest = layout.Manifest(day=day, generation=1, records=len(rows), digest=written.digest.text(), files=files,
                               operations=written.operations, written_at=datetime.now(UTC).isoformat())
    store.put_manifest(layout.manifest_name(day), manifest.to_bytes(), None)
    return len(rows)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure_cold_queries(days: int, records: int, reps: int, processes: int) -> list[str]:
    """Markdown lines: latency and blob requests of the API's queries over `days` cold days."""
    import random
    import urllib.parse
    from concurrent.futures import ProcessPoolExecutor

    from collector.api import TIERS_HEADER, Api
    from collector.bootstrap import Services
    from collector.settings import Settings
    from devtools import azurite
    from devtools.bench_query import TENANT as QUERY_TENANT
    from devtools.bench_query import Universe, synthetic_items

    last = datetime(2024, 12, 31, tzinfo=UTC)
    day_names = [(last - timedelta(days=n)).strftime("%Y%m%d") for n in range(days)]  # newest first
    instance = azurite.start()
    try:
        env = {"M365_TENANT_ID": QUERY_TENANT, "AUDIT_STORAGE_CONNECTION_STRING": instance.connection_string,
               "AUDIT_TABLE_PREFIX": "benchcold", "AUDIT_ARCHIVE_CONTAINER": "bench-archive",
               "AUDIT_COLD_CONTAINER": "bench-cold", "AUDIT_QUEUE_NAME": "bench-cold"}
        services = Services(Settings.from_env(env))
        services.cold_store.ensure_container()
        started = time.perf_counter()
        jobs = [(instance.connection_string, "bench-cold", day, records, 1000 + n) for n, day in enumerate(day_names)]
        with ProcessPoolExecutor(max_workers=processes) as pool:
            total = sum(pool.map(cold_day_worker, jobs))
        # What the compaction timer does once a month has ended: the month id filters (idfilter.py).
        for month in sorted({day[:6] for day in day_names}):
            services.compactor.build_filter(month)
        load_seconds = time.perf_counter() - started
        blobs = len(services.cold_store.list(""))
        print(f"loaded {days} cold days, {total:,} records, {blobs:,} blobs in {load_seconds:.0f} s", flush=True)

        api = Api(services, stream=False)
        store = services.cold_store
        end = last + timedelta(days=1)
        rnd = random.Random(3)
        universe = Universe.build()

        def iso(when: datetime) -> str:
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")

        def run(route: str, params: dict[str, str]) -> tuple[float, int, int, str]:
            before = store.requests
            began = time.perf_counter()
            response = api.handle("GET", route, params, {}, "http://bench/api")
            seconds = time.perf_counter() - began
            if response.status != 200:
                raise RuntimeError(f"{route} {params}: {response.status} {response.read()[:300]!r}")
            rows = len(response.json().get("value", [])) if route == "audit" else 1
            return seconds, store.requests - before, rows, response.headers.get(TIERS_HEADER, "")

        def one_user() -> tuple[str, dict[str, str]]:
            return "audit", {"start": iso(end - timedelta(days=days)), "end": iso(end), "user": universe.user(rnd)}

        def one_operation() -> tuple[str, dict[str, str]]:
            high = end - timedelta(days=rnd.randrange(max(1, days - 30)))
            return "audit", {"start": iso(high - timedelta(days=min(30, days))), "end": iso(high),
                             "operation": universe.operation(rnd)[1]}

        def one_hour() -> tuple[str, dict[str, str]]:
            low = end - timedelta(hours=rnd.randrange(1, 24 * days))
            return "audit", {"start": iso(low), "end": iso(low + timedelta(hours=1))}

        def q_day() -> tuple[str, dict[str, str]]:
            low = end - timedelta(days=rnd.randrange(1, days + 1))
            return "audit", {"start": iso(low), "end": iso(low + timedelta(days=1)), "q": f"198.51.100.{rnd.randint(1, 254)}"}

        def by_id() -> tuple[str, dict[str, str]]:
            number = rnd.randrange(days)
            wanted = rnd.randrange(records)
            start = datetime.strptime(day_names[number], "%Y%m%d").replace(tzinfo=UTC)
            item = next(itertools.islice(synthetic_items(records, start, 1, seed=1000 + number), wanted, None))
            return "audit/" + urllib.parse.quote(item.entry.id, safe=""), {}

        first = run(*one_user())  # a fresh process: the listing of compacted days, every footer uncached
        scenarios = [
            (f"(a) one user × {days} days, first page (top 100)", one_user, "≤ 2 s"),
            ("(b) one operation × 30 days, first page", one_operation, "≤ 2 s"),
            ("(c) one hour, first page", one_hour, "≤ 500 ms"),
            ("(d) `q` (a rare term) over one day, first page", q_day, "≤ 3 s"),
            ("(e) `/api/audit/{id}` (a random record of a random day, newest first)", by_id, "≤ 1 s"),
        ]
        lines = ["", f"Query latency over {days} cold days on Azurite ({total:,} records, {records:,} a day, of the "
                 f"query benchmark's synthetic tenant; {blobs:,} blobs; empty hot index), through `collector.api.Api` "
                 f"in process, {reps} repetitions each with varied values, after one warm-up query. `X-AuditKeep-Tiers` "
                 "was `cold` on each. Blob requests are GETs of manifests and (ranged) Parquet reads, counted by the "
                 "store; the one listing of the container is cached for 30 s.", "",
                 "| query | target | p50 | p95 | max | blob requests p50 / max | rows p50 |", "|---|---|---|---|---|---|---|"]
        for name, make, target in scenarios:
            samples = [run(*make()) for _ in range(reps)]
            seconds = [s[0] for s in samples]
            requests = [s[1] for s in samples]
            rows = [s[2] for s in samples]
            lines.append(f"| {name} | {target} | {_ms(percentile(seconds, 0.5))} | {_ms(percentile(seconds, 0.95))} | "
                         f"{_ms(max(seconds))} | {percentile(requests, 0.5):.0f} / {max(requests)} | "
                         f"{percentile(rows, 0.5):.0f} |")
            print(lines[-1], flush=True)
        lines += ["", f"The first query of the process (the same as (a), every footer and manifest uncached): "
                  f"{_ms(first[0])}, {first[1]} blob requests. Loading the {days} days (the compaction writer in "
                  f"{processes} processes, upload to Azurite) took {load_seconds:.0f} s."]
        return lines
    finally:
        instance.stop()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def import_cost(module: str) -> tuple[float, float] | None:
    code = (f"import time; t = time.perf_counter(); import {module}; s = time.perf_counter() - t; "
            "from devtools.bench_cold import peak_rss_mb; print(s, peak_rss_mb())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    seconds, rss = done.stdout.split()
    return float(seconds), float(rss)


PARTS_MARKER = "bench:cold-parts"


def parts_only(records: int, users: int, part_budget: int, write: bool) -> int:
    """A day of `records` compacted in one part (the baseline) and again in parts of `part_budget`."""
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        root = Path(tmp)
        count = build_day(root, records, users)
        done = subprocess.run([sys.executable, "-m", "devtools.bench_cold", "--child", tmp],
                              capture_output=True, text=True, check=True)
        one = json.loads(done.stdout.strip().splitlines()[-1])
        lines = [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m devtools.bench_cold --parts-only "
                 f"--records {records} --part-budget {part_budget}` "
                 f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start). In one part the "
                 f"{count:,}-record day took {one['seconds']:.1f} s ({one['cpu_seconds']:.1f} CPU s, "
                 f"{count / one['cpu_seconds']:,.0f} rec/s of CPU), peak RSS {one['peak_rss_mb']:.0f} MB."]
        part_lines, figures = measure_parts(root, count, part_budget)
        lines += part_lines + projection(figures["rate"], figures["peak"])
    text = "\n".join(lines)
    print(text)
    if write:
        from .sections import PERFORMANCE_MD, replace_section

        replace_section(PERFORMANCE_MD, PARTS_MARKER, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench_cold", description=__doc__)
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 400_000], help="day sizes (records)")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--query-days", type=int, default=365, help="cold days for the query latency (0: skip)")
    parser.add_argument("--query-records", type=int, default=5_500, help="records a cold day (500,000 / 90 days)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--processes", type=int, default=4, help="processes writing the cold days")
    parser.add_argument("--part-budget", type=int, default=110_000,
                        help="records a part when the largest day is compacted again in parts (0: skip)")
    parser.add_argument("--parts-only", action="store_true",
                        help="only the day in parts (the last --records size), its own marked part of the section")
    parser.add_argument("--write", action="store_true", help="write the cold section of docs/performance.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--part-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        compact_child(args.child)
        return 0
    if args.part_child:
        part_child(args.part_child, args.part_budget)
        return 0
    from collector.cold import layout

    if args.parts_only:
        return parts_only(args.records[-1], args.users, args.part_budget or 110_000, args.write)
    lines = ["## Cold tier (devtools/bench_cold.py)", "",
             f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}; synthetic days "
             f"of {args.users:,} users (simulator/synthetic.py), default `writer.Limits`, local files (no network); "
             f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start (rec/s of the process's CPU "
             "time, all threads, is the figure a busy machine distorts least).", "",
             "| records | raw JSON B/rec | records.parquet | time.parquet | ids.parquet | cold total B/rec | "
             "compaction rec/s (wall) | rec/s (CPU) | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    query_lines: list[str] = []
    part_lines: list[str] = []
    for number, records in enumerate(args.records):
        with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
            root = Path(tmp)
            count = build_day(root, records, args.users)
            raw_bytes = sum(len(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode())
                            for p in (root / "archive").iterdir()
                            for r in json.loads(gzip.decompress(p.read_bytes())))
            done = subprocess.run([sys.executable, "-m", "devtools.bench_cold", "--child", tmp],
                                  capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            manifest = layout.Manifest.from_bytes((root / "cold" / layout.manifest_name(DAY).replace("/", "~")).read_bytes())
            sizes = {kind: info.bytes / count for kind, info in manifest.files.items()}
            total = sum(info.bytes for info in manifest.files.values()) + len(manifest.to_bytes())
            lines.append(f"| {count:,} | {raw_bytes / count:,.0f} | {sizes['records']:.1f} | {sizes['time']:.1f} | "
                         f"{sizes['ids']:.1f} | **{total / count:.1f}** | {count / result['seconds']:,.0f} | "
                         f"{count / result['cpu_seconds']:,.0f} | {result['peak_rss_mb']:.0f} |")
            if not query_lines:
                query_lines = ["", f"Reads per query over one compacted day of {count:,} records (manifest read first, "
                               "not counted; each read is one ranged blob GET in Azure):", "",
                               "| query | reads | bytes read |", "|---|---|---|"]
                for name, (reads, read_bytes) in measure_queries(root).items():
                    query_lines.append(f"| {name} | {reads} | {read_bytes:,} |")
            print(lines[-1], flush=True)
            if number == len(args.records) - 1 and args.part_budget and count > args.part_budget:
                part_lines, figures = measure_parts(root, count, args.part_budget)
                part_lines += projection(figures["rate"], figures["peak"])
    if part_lines:  # its own markers: `--parts-only --write` replaces just this part
        lines += ["", f"<!-- {PARTS_MARKER}:start -->", *part_lines[1:], f"<!-- {PARTS_MARKER}:end -->"]
    lines += query_lines
    lines += ["", "Import cost of the candidate libraries (fresh interpreter):", "", "| library | import s | RSS after import MB |",
              "|---|---|---|"]
    for module in ("pyarrow.parquet", "duckdb"):
        cost = import_cost(module)
        lines.append(f"| {module} | {cost[0]:.2f} | {cost[1]:.0f} |" if cost else f"| {module} | not installed | – |")
    if args.query_days:
        lines += measure_cold_queries(args.query_days, args.query_records, args.reps, args.processes)
    text = "\n".join(lines)
    print(text)
    if args.write:
        from .sections import write_section

        write_section("cold", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
