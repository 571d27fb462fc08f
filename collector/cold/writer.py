"""Writing a day's Parquet files in bounded memory (docs/cold-tier.md "Memory bound").

A day's records arrive in archive-blob order, which is neither user nor time order. Each output
file goes through a `SpillSorter`: rows are routed by a 64-bit route value that is monotone with
the file's sort order into range buckets; buckets are buffered up to a byte budget and then
appended to one spill file each (compressed Arrow IPC); at the end each bucket is read back, sorted
in memory and written, bucket after bucket, so the file comes out globally sorted. A bucket that
grew past its row limit (a skewed user) is split again at its own quantiles before sorting.

Peak memory ≈ the sorters' buffer budgets + one bucket being sorted (~2.5 × its rows × row size) +
one row group being written; it does not grow with the day's size. Disk ≈ the compressed size of
the day twice (spill files, then the output before upload).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import keys
from ..models import AuditEntry
from . import layout

ROUTE = "_route"
STRING = pa.string()

INPUT_SCHEMA = pa.schema([
    ("order_key", STRING), ("user", STRING), ("operation", STRING), ("object", STRING),
    ("result", STRING), ("clientIp", STRING), ("userAgent", STRING), ("workload", STRING),
    ("recordType", pa.int32()), ("contentType", STRING), ("organizationId", STRING), ("raw", STRING),
])
RECORDS_SCHEMA = pa.schema([("user_hash", pa.int64())] + [INPUT_SCHEMA.field(n) for n in layout.RECORD_COLUMNS[1:]])
TIME_SCHEMA = pa.schema([INPUT_SCHEMA.field(n) for n in layout.TIME_COLUMNS])
IDS_SCHEMA = pa.schema([("key_hash", pa.int64()), ("row", pa.int64())])
_LEN = struct.Struct("<Q")


@dataclass(frozen=True)
class Limits:
    """Memory knobs (bytes and rows); the defaults keep a 40 M-record day under ~1 GB (docs/cold-tier.md)."""

    buffer_bytes: int = 96 * 1024 * 1024  # per sorter, before a spill
    records_bucket_rows: int = 60_000  # ~1.7 KB a row in memory (raw JSON dominates)
    time_bucket_rows: int = 400_000  # ~250 B a row
    ids_bucket_rows: int = 4_000_000  # 16 B a row


def rows_table(rows: Sequence[tuple[str, AuditEntry, str]]) -> pa.Table:
    """(order_key, entry, raw JSON) rows → an INPUT_SCHEMA table."""
    columns: dict[str, list[Any]] = {name: [] for name in INPUT_SCHEMA.names}
    for order, entry, raw in rows:
        columns["order_key"].append(order)
        columns["raw"].append(raw)
        for name in layout.NORMALIZED:
            columns[name].append(getattr(entry, name))
    return pa.table(columns, schema=INPUT_SCHEMA)


class SpillSorter:
    """Sorts a stream of tables by `sort_keys`, given a `_route` uint64 column monotone with that order."""

    def __init__(self, directory: Path, name: str, sort_keys: list[tuple[str, str]], bounds: Sequence[int],
                 *, max_rows: int, buffer_bytes: int) -> None:
        self.directory = directory
        self.name = name
        self.sort_keys = sort_keys
        self.bounds = np.asarray(sorted(set(bounds)), dtype=np.uint64)  # bucket i = [bounds[i], bounds[i+1])
        self.max_rows = max_rows
        self.buffer_bytes = buffer_bytes
        self.buffers: dict[int, list[pa.Table]] = {}
        self.rows = [0] * len(self.bounds)
        self.spilled: set[int] = set()
        self.buffered = 0
        self.peak_buffered = 0

    @classmethod
    def even(cls, directory: Path, name: str, sort_keys: list[tuple[str, str]], low: int, high: int, buckets: int,
             *, max_rows: int, buffer_bytes: int) -> SpillSorter:
        buckets = max(1, min(buckets, high - low))
        step = (high - low) / buckets
        return cls(directory, name, sort_keys, [low + int(i * step) for i in range(buckets)],
                   max_rows=max_rows, buffer_bytes=buffer_bytes)

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        route = table.column(ROUTE).to_numpy()
        bucket = np.searchsorted(self.bounds, route, side="right") - 1
        bucket[bucket < 0] = 0
        order = np.argsort(bucket, kind="stable")
        ordered = table.take(pa.array(order))
        edges = np.searchsorted(bucket[order], np.arange(len(self.bounds) + 1))
        for b in range(len(self.bounds)):
            lo, hi = int(edges[b]), int(edges[b + 1])
            if hi > lo:
                part = ordered.slice(lo, hi - lo)
                self.buffers.setdefault(b, []).append(part)
                self.rows[b] += hi - lo
                self.buffered += part.nbytes
        self.peak_buffered = max(self.peak_buffered, self.buffered)
        if self.buffered > self.buffer_bytes:
            self.spill()

    def _path(self, bucket: int) -> Path:
        return self.directory / f"{self.name}-{bucket:05d}.spill"

    def spill(self) -> None:
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        for bucket, parts in self.buffers.items():
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, parts[0].schema, options=options) as stream:
                for part in parts:
                    stream.write_table(part)
            data = sink.getvalue()
            with open(self._path(bucket), "ab") as handle:
                handle.write(_LEN.pack(data.size))
                handle.write(memoryview(data))
            self.spilled.add(bucket)
        self.buffers.clear()
        self.buffered = 0

    def _chunks(self, bucket: int) -> Iterator[pa.Table]:
        if bucket in self.spilled:
            with open(self._path(bucket), "rb") as handle:
                while header := handle.read(_LEN.size):
                    (size,) = _LEN.unpack(header)
                    yield pa.ipc.open_stream(pa.py_buffer(handle.read(size))).read_all()
        yield from self.buffers.get(bucket, [])

    def _drop(self, bucket: int) -> None:
        self.buffers.pop(bucket, None)
        if bucket in self.spilled:
            os.unlink(self._path(bucket))
            self.spilled.discard(bucket)

    def sorted(self) -> Iterator[pa.Table]:
        """Sorted tables (without `_route`), in global order; each bucket's spill file is removed once read."""
        for bucket in range(len(self.bounds)):
            if self.rows[bucket] == 0:
                continue
            if self.rows[bucket] > self.max_rows:
                child = self._split(bucket)
                if child is not None:
                    yield from child.sorted()
                    continue
            table = pa.concat_tables(list(self._chunks(bucket)))
            self._drop(bucket)
            yield table.sort_by(self.sort_keys).drop_columns([ROUTE])

    def _split(self, bucket: int) -> SpillSorter | None:
        """A child sorter over this bucket's rows with buckets at its own route quantiles (None: one value)."""
        routes = np.sort(np.concatenate([chunk.column(ROUTE).to_numpy() for chunk in self._chunks(bucket)]))
        parts = -(-len(routes) // self.max_rows) * 2
        cuts = sorted({int(routes[i * len(routes) // parts]) for i in range(parts)})
        if len(cuts) < 2:
            return None  # > max_rows rows share one route value (one user in one second): sort them in memory
        child = SpillSorter(self.directory, f"{self.name}.{bucket}", self.sort_keys, cuts,
                            max_rows=self.max_rows, buffer_bytes=self.buffer_bytes)
        for chunk in self._chunks(bucket):
            child.add(chunk)
        self._drop(bucket)
        child.spill()
        return child


class GroupedWriter:
    """A Parquet file written in row groups of exactly `group_rows` (the last one shorter), keeping
    each group's first row, row count and seek-key range for the manifest."""

    def __init__(self, path: Path, schema: pa.Schema, group_rows: int, seek: str) -> None:
        self.path = path
        self.group_rows = group_rows
        self.seek = seek
        self.writer = pq.ParquetWriter(
            str(path), schema, compression=layout.COMPRESSION, compression_level=layout.COMPRESSION_LEVEL,
            use_dictionary=[n for n in schema.names if n not in ("raw", "order_key", "key_hash", "row")],
            write_statistics=[seek], data_page_size=256 * 1024,
        )
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.groups: list[tuple[int, int, Any, Any]] = []

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= self.group_rows:
            whole = pa.concat_tables(self.pending)
            self._group(whole.slice(0, self.group_rows))
            rest = whole.slice(self.group_rows)
            self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def _group(self, table: pa.Table) -> None:
        column = table.column(self.seek)
        low, high = pc.min(column).as_py(), pc.max(column).as_py()
        self.groups.append((self.rows, table.num_rows, low, high))
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows

    def close(self) -> layout.FileInfo:
        if self.pending_rows:
            self._group(pa.concat_tables(self.pending))
            self.pending, self.pending_rows = [], 0
        self.writer.close()
        return layout.FileInfo(self.path.name, self.rows, self.path.stat().st_size, tuple(self.groups))


@dataclass
class WrittenDay:
    """Local files of one generation, ready to upload."""

    paths: dict[str, Path]
    files: dict[str, layout.FileInfo]
    digest: layout.Digest  # of the rows written to records.parquet
    operations: dict[str, list[int]]
    peak_buffered: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class DayWriter:
    """records, time and ids files of one day from INPUT_SCHEMA tables in any order."""

    def __init__(self, day: str, directory: Path, *, expected_rows: int, limits: Limits | None = None) -> None:
        self.day = day
        self.directory = directory
        self.limits = limits or Limits()
        start, end = keys.day_bounds(day)
        self.inv_low = keys.inv(end) + 1  # newest second of the day
        self.inv_high = keys.inv(start)  # oldest second
        lim = self.limits
        n = max(expected_rows, 1)
        span = self.inv_high - self.inv_low + 1
        self.records = SpillSorter.even(directory, "records", [(ROUTE, "ascending"), ("order_key", "ascending")],
                                        0, 1 << 64, -(-n // lim.records_bucket_rows) * 2,
                                        max_rows=lim.records_bucket_rows, buffer_bytes=lim.buffer_bytes)
        self.time = SpillSorter.even(directory, "time", [("order_key", "ascending")], 0, span,
                                     -(-n // lim.time_bucket_rows) * 2,
                                     max_rows=lim.time_bucket_rows, buffer_bytes=lim.buffer_bytes)
        self.input_digest = layout.Digest()

    def add(self, table: pa.Table) -> None:
        """Rows of INPUT_SCHEMA; every order key must fall on this writer's day."""
        if table.num_rows == 0:
            return
        orders = table.column("order_key").to_pylist()
        inv = np.fromiter((int(o[:10]) for o in orders), dtype=np.int64, count=len(orders))
        if int(inv.min()) < self.inv_low or int(inv.max()) > self.inv_high:
            raise ValueError(f"a row's order key is not on day {self.day}")
        for order in orders:
            self.input_digest.add(layout.record_key(order))
        users = np.fromiter((layout.user_hash(u) for u in table.column("user").to_pylist()), dtype=np.int64,
                            count=len(orders))
        second = (inv - self.inv_low).astype(np.uint64)
        with_hash = table.add_column(0, "user_hash", pa.array(users, pa.int64()))
        route = (users.astype(np.uint64) << np.uint64(64 - layout.USER_HASH_BITS)) | second
        self.records.add(with_hash.append_column(ROUTE, pa.array(route, pa.uint64())))
        narrow = table.select(list(layout.TIME_COLUMNS))
        self.time.add(narrow.append_column(ROUTE, pa.array(second, pa.uint64())))

    def finish(self) -> WrittenDay:
        paths = {kind: self.directory / f"{kind}.parquet" for kind in (layout.RECORDS, layout.TIME, layout.IDS)}
        lim = self.limits
        n = sum(self.records.rows)
        ids = SpillSorter.even(self.directory, "ids", [(ROUTE, "ascending")], 0, 1 << 63,
                               -(-max(n, 1) // lim.ids_bucket_rows) * 2,
                               max_rows=lim.ids_bucket_rows, buffer_bytes=lim.buffer_bytes)
        written = layout.Digest()
        records = GroupedWriter(paths[layout.RECORDS], RECORDS_SCHEMA, layout.RECORDS_ROW_GROUP, "user_hash")
        row = 0
        for chunk in self.records.sorted():
            hashes = [layout.key_hash(layout.record_key(o)) for o in chunk.column("order_key").to_pylist()]
            for value in hashes:
                written.add_hash(value)
            numbers = np.arange(row, row + chunk.num_rows, dtype=np.int64)
            ids.add(pa.table({"key_hash": pa.array(hashes, pa.int64()), "row": numbers,
                              ROUTE: pa.array(np.asarray(hashes, dtype=np.uint64), pa.uint64())}))
            row += chunk.num_rows
            records.write(chunk.select(RECORDS_SCHEMA.names))
        files = {layout.RECORDS: records.close()}
        time_file = GroupedWriter(paths[layout.TIME], TIME_SCHEMA, layout.TIME_ROW_GROUP, "order_key")
        pairs: set[tuple[int, str]] = set()
        for chunk in self.time.sorted():
            start_row = time_file.rows + time_file.pending_rows
            ops = chunk.column("operation").to_pylist()
            for offset, op in enumerate(ops):
                pairs.add(((start_row + offset) // layout.TIME_ROW_GROUP, op))
            time_file.write(chunk.select(TIME_SCHEMA.names))
        files[layout.TIME] = time_file.close()
        id_file = GroupedWriter(paths[layout.IDS], IDS_SCHEMA, layout.IDS_ROW_GROUP, "key_hash")
        for chunk in ids.sorted():
            id_file.write(chunk.select(IDS_SCHEMA.names))
        files[layout.IDS] = id_file.close()
        peak = max(self.records.peak_buffered, self.time.peak_buffered, ids.peak_buffered)
        return WrittenDay(paths, files, written, layout.operation_groups(pairs), peak)


def write_delta(path: Path, table: pa.Table) -> layout.FileInfo:
    """A delta file: late records of a compacted day, records schema, sorted by order key (small:
    one pass's late records fit in memory)."""
    users = pa.array([layout.user_hash(u) for u in table.column("user").to_pylist()], pa.int64())
    ordered = table.add_column(0, "user_hash", users).sort_by([("order_key", "ascending")])
    writer = GroupedWriter(path, RECORDS_SCHEMA, layout.RECORDS_ROW_GROUP, "order_key")
    writer.write(ordered.select(RECORDS_SCHEMA.names))
    return writer.close()
