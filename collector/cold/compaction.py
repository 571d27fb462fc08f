"""The compaction use case: closed days of the hot index → Parquet files of the cold tier.

For each day of the hot id view up to the last closed one (or `through`):

- no manifest yet: **compact**. Scan the id view (record key → archive blob, position), read each
  archive blob once, re-normalize with collector/normalize.py (and round-trip the fields through
  the index's own payload codec, so a cold entry equals the hot one field for field), write the
  day's files in bounded memory (writer.py), verify count and key digest against the id view,
  upload, and write the manifest last: the commit point.
- a manifest: look for **late records**: id entities the service wrote since the manifest's
  watermark that the day does not hold yet go into a delta file, committed by a new manifest.
- too many deltas: **merge** the day into a new generation from its own cold files (the hot
  tables may be gone by then).

A crash at any step leaves the previous manifest in force; the rerun writes the same names again
(overwrite) and commits. Files that no manifest lists are deleted only after the manifest that
replaced them is written, and never under an immutability policy or legal hold (store.py).
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa

from .. import keys
from ..errors import CompactionError
from ..index import entry_from_entity, view_payload
from ..models import AuditEntry
from ..normalize import normalize_record
from ..timeutil import Clock, SystemClock, format_iso, parse_time
from . import idfilter, layout, writer
from .hot import blob_origin
from .reader import DayReader, load_manifest

log = logging.getLogger(__name__)

# A day is closed once it ended this long ago: most content is listed within ~90 min of its
# events (docs/api-behaviour.md), so fewer records end up in deltas.
CLOSE_GRACE = timedelta(hours=2)
# The id view's Timestamp is the storage service's clock: the watermark stays this far behind ours.
CLOCK_SKEW = timedelta(minutes=15)
MERGE_DELTAS = 4  # merge a day once it has this many deltas...
MERGE_FRACTION = 0.1  # ...or its deltas hold this share of its records
ORPHAN_AGE = timedelta(hours=6)  # unlisted files younger than this may belong to a compaction in progress
ADD_ROWS = 20_000  # rows handed to the writer at a time


class IdView(Protocol):
    def days(self) -> list[str]: ...

    def locations(self, day: str, since: datetime | None = None) -> Iterable[tuple[str, str, int]]: ...


class RawRecords(Protocol):
    def records(self, name: str) -> list[dict[str, Any]]: ...


class ColdStore(Protocol):
    def put_file(self, name: str, path: Path) -> int: ...

    def get(self, name: str) -> tuple[bytes, str] | None: ...

    def put_manifest(self, name: str, data: bytes, etag: str | None) -> None: ...

    def size(self, name: str) -> int | None: ...

    def list(self, prefix: str) -> list[str]: ...

    def age(self, name: str) -> timedelta | None: ...

    def delete(self, name: str) -> bool: ...

    def open(self, name: str, size: int | None = None) -> io.RawIOBase | IO[bytes]: ...


@dataclass
class DayReport:
    day: str
    action: str  # compacted | delta | merged | rebuilt | unchanged | empty
    records: int = 0  # records of the day after this pass
    added: int = 0  # records this pass wrote (all of them, a delta's, or a merge's)
    deleted: int = 0  # superseded files deleted
    seconds: float = 0.0


@dataclass
class CompactionReport:
    days: list[DayReport] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(d.added for d in self.days)


class Compactor:
    """Compacts the hot index's closed days into the cold tier (see the module docstring)."""

    def __init__(self, ids: IdView, archive: RawRecords, store: ColdStore, *, tenant_id: str,
                 clock: Clock | None = None, work_dir: Path | None = None, limits: writer.Limits | None = None) -> None:
        self.ids = ids
        self.archive = archive
        self.store = store
        self.tenant_id = tenant_id
        self.clock = clock or SystemClock()
        self.work_dir = work_dir
        self.limits = limits or writer.Limits()

    def last_closed_day(self) -> date:
        return (self.clock.now() - CLOSE_GRACE).astimezone(UTC).date() - timedelta(days=1)

    def run(self, through: date | None = None, progress: Callable[[str], None] | None = None) -> CompactionReport:
        """Every hot day up to `through` (default: the last closed day), oldest first."""
        last = (through or self.last_closed_day()).strftime("%Y%m%d")
        report = CompactionReport()
        for day in self.ids.days():
            if day > last:
                continue
            started = time.monotonic()
            result = self.compact_day(day)
            result.seconds = time.monotonic() - started
            report.days.append(result)
            log.info("cold.day %s %s: %d records (%d written)", day, result.action, result.records, result.added,
                     extra={"day": day, "action": result.action, "records": result.records, "added": result.added,
                            "durationMs": int(result.seconds * 1000)})
            if progress is not None and result.action != "unchanged":
                progress(f"{day}: {result.action}, {result.records:,} records ({result.added:,} written)")
        for month in self._months_without_filter(last):
            days = self.build_filter(month)
            if progress is not None and days:
                progress(f"{month}: id filter over {days} day(s)")
        return report

    # ------------------------------------------------------------ id filters (idfilter.py)

    def _foreign(self, organizations: Any) -> bool:
        """Whether a column of organizationId holds another organization than the tenant's."""
        import pyarrow.compute as pc

        tenant = self.tenant_id.lower()
        lowered = pc.utf8_lower(organizations)
        return bool(pc.any(pc.and_(pc.is_valid(lowered), pc.not_equal(lowered, tenant))).as_py() or False)

    def _invalidate_filter(self, day: str) -> None:
        for name in self._filters_of(day[:6]):
            self.store.delete(name)

    def _filters_of(self, month: str) -> list[str]:
        return [n for n in self.store.list(f"{month[:4]}/{month[4:]}/{idfilter.PREFIX}") if idfilter.month_of_filter(n)]

    def _months_without_filter(self, last: str) -> list[str]:
        """Months that have ended by `last` (the last closed day) with compacted days and no filter."""
        names = self.store.list("")
        months = {n[:4] + n[5:7] for n in names if n.endswith("/" + layout.MANIFEST) and len(n.split("/")) == 4}
        built = {m for m in (idfilter.month_of_filter(n) for n in names) if m}
        ended = [m for m in months - built if _month_end(m) <= last]
        return sorted(ended)

    def build_filter(self, month: str) -> int:
        """Write the month's id filter from its compacted days (ids files, deltas' keys, whether
        other organizations' records are there); the number of days it covers."""
        import numpy as np
        import pyarrow.parquet as pq

        entries: list[tuple[idfilter.DayEntry, Any]] = []
        prefix = f"{month[:4]}/{month[4:]}/"
        for name in sorted(self.store.list(prefix)):
            parts = name.split("/")
            if len(parts) != 4 or parts[3] != layout.MANIFEST:
                continue
            day = "".join(parts[:3])
            loaded = load_manifest(self.store, day)
            if loaded is None:
                continue
            manifest = loaded[0]
            ids = pq.read_table(self.store.open(manifest.files[layout.IDS].name), columns=["key_hash"])
            hashes = [ids.column("key_hash").to_numpy()]
            time_file = pq.read_table(self.store.open(manifest.files[layout.TIME].name), columns=["organizationId"])
            other = self._foreign(time_file.column("organizationId"))
            for delta in manifest.deltas:
                rows = pq.read_table(self.store.open(delta.name), columns=["order_key", "organizationId"])
                keys_ = [layout.key_hash(layout.record_key(str(k))) for k in rows.column("order_key").to_pylist()]
                hashes.append(np.asarray(keys_, dtype=np.int64))
                other = other or self._foreign(rows.column("organizationId"))
            entry = idfilter.DayEntry(day, manifest.generation, len(manifest.deltas), bool(other))
            entries.append((entry, np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)))
        if not entries:
            return 0
        data = idfilter.build(month, entries)
        name = idfilter.filter_name(month, data)
        stale = [n for n in self._filters_of(month) if n != name]
        with tempfile.TemporaryDirectory(prefix="auditkeep-filter-") as directory:
            path = Path(directory) / "filter.bin"
            path.write_bytes(data)
            self.store.put_file(name, path)
        for old in stale:  # after the new one: a reader always finds one
            self.store.delete(old)
        log.info("cold.id_filter %s: %d days", month, len(entries), extra={"month": month, "days": len(entries)})
        return len(entries)

    def compact_day(self, day: str) -> DayReport:
        loaded = load_manifest(self.store, day)
        if loaded is None:
            return self._full(day)
        manifest, etag = loaded
        result = self._late(day, manifest, etag)
        loaded = load_manifest(self.store, day)
        if loaded is not None and self._needs_merge(loaded[0]):
            result = self._merge(day, *loaded)
        current = load_manifest(self.store, day)
        if current is not None:
            result.deleted += self._clean(day, current[0])
        return result

    def rebuild_day(self, day: str) -> DayReport:
        """Compact `day` again in full from the hot index into the next generation (reindex.py, after a
        normalizer change): the day's manifest in force stays so until the new one commits (its etag
        guards the swap), then the superseded generation is deleted. A day without hot entries is
        left as it is ("empty")."""
        loaded = load_manifest(self.store, day)
        if loaded is None:
            return self._full(day)
        manifest, etag = loaded
        result = self._full(day, manifest.generation + 1, etag)
        if result.action == "compacted":
            result.action = "rebuilt"
            current = load_manifest(self.store, day)
            if current is not None:
                result.deleted += self._clean(day, current[0])
        return result

    # ------------------------------------------------------------ full compaction

    def _full(self, day: str, generation: int = 1, etag: str | None = None) -> DayReport:
        watermark = self.clock.now() - CLOCK_SKEW  # before the scan: anything written later is re-examined
        locations: dict[str, array[int]] = {}
        hot = layout.Digest()
        for key, blob, position in self.ids.locations(day):
            hot.add(key)
            # 4 bytes a record (its position) is the scan's whole memory cost; that the record at
            # the position has the key is checked through the digest (_verify).
            locations.setdefault(blob, array("I")).append(position)
        if hot.count == 0:
            return DayReport(day, "empty")
        with tempfile.TemporaryDirectory(prefix=f"auditkeep-cold-{day}-", dir=self.work_dir) as workspace:
            directory = Path(workspace)
            day_writer = writer.DayWriter(day, directory, expected_rows=hot.count, limits=self.limits)
            for table in self._records_of(day, locations):
                day_writer.add(table)
            written = day_writer.finish()
            self._verify(day, hot, day_writer.input_digest, written)
            files = self._upload(day, generation, written)
        manifest = layout.Manifest(day=day, generation=generation, records=hot.count, digest=hot.text(), files=files,
                                   operations=written.operations, hot_watermark=format_iso(watermark),
                                   written_at=format_iso(self.clock.now()))
        self._invalidate_filter(day)  # before the day changes: a filter is stale, never wrong
        self.store.put_manifest(layout.manifest_name(day), manifest.to_bytes(), etag)
        return DayReport(day, "compacted", hot.count, hot.count)

    def _records_of(self, day: str, locations: dict[str, array[int]]) -> Iterator[pa.Table]:
        """INPUT_SCHEMA tables of the records at `locations` (each archive blob read once)."""
        rows: list[tuple[str, AuditEntry, str]] = []
        for blob in sorted(locations):
            content_type, created = blob_origin(blob)
            records = self.archive.records(blob)
            for position in sorted(set(locations[blob])):
                rows.append(self._row(day, blob, records, position, content_type, created))
                if len(rows) >= ADD_ROWS:
                    yield writer.rows_table(rows)
                    rows = []
        if rows:
            yield writer.rows_table(rows)

    def _row(self, day: str, blob: str, records: list[dict[str, Any]], position: int, content_type: str,
             created: datetime) -> tuple[str, AuditEntry, str]:
        if not 0 <= position < len(records):
            raise CompactionError(f"day {day}: archive blob {blob!r} has no record at position {position}")
        record = records[position]
        entry, when = normalize_record(record, content_type, created)
        if keys.day_of(when) != day:
            raise CompactionError(f"day {day}: record {entry.id} of {blob!r} now normalizes to day {keys.day_of(when)}")
        order = keys.order_key(when, entry.id, entry.organizationId, self.tenant_id)
        # The hot index's own codec: truncation of object/userAgent, the tenant's organization id,
        # the lower-cased id from the key. Cold and hot entries are then equal by construction.
        hot_entry = entry_from_entity(order, {"d": view_payload(entry, self.tenant_id)}, self.tenant_id)
        return order, hot_entry, layout.raw_json(record)

    def _verify(self, day: str, hot: layout.Digest, given: layout.Digest, written: writer.WrittenDay) -> None:
        counts = {kind: info.rows for kind, info in written.files.items()}
        if given != hot or written.digest != hot or set(counts.values()) != {hot.count}:
            raise CompactionError(
                f"day {day}: the cold files do not match the hot id view (hot {hot.text()}, read {given.text()}, "
                f"written {written.digest.text()}, rows {counts}); nothing was committed")

    def _upload(self, day: str, generation: int, written: writer.WrittenDay) -> dict[str, layout.FileInfo]:
        files = {}
        for kind, info in written.files.items():
            name = layout.file_name(day, generation, kind)
            self.store.put_file(name, written.paths[kind])
            if self.store.size(name) != info.bytes:
                raise CompactionError(f"day {day}: {name} has {self.store.size(name)} bytes in storage, {info.bytes} written")
            files[kind] = replace(info, name=name)
        return files

    # ------------------------------------------------------------ late records

    def _late(self, day: str, manifest: layout.Manifest, etag: str) -> DayReport:
        watermark = self.clock.now() - CLOCK_SKEW
        since = parse_time(manifest.hot_watermark) if manifest.hot_watermark else None
        candidates: dict[str, tuple[str, int]] = {}
        for key, blob, position in self.ids.locations(day, since=since):
            candidates[key] = (blob, position)
        if not candidates:
            return DayReport(day, "unchanged", manifest.records)
        reader = DayReader(self.store, day, manifest)
        known = reader.known(candidates)
        new = {k: v for k, v in candidates.items() if k not in known}
        if not new:
            return DayReport(day, "unchanged", manifest.records)
        locations: dict[str, array[int]] = {}
        added = layout.Digest()
        for key, (blob, position) in new.items():
            locations.setdefault(blob, array("I")).append(position)
            added.add(key)
        tables = list(self._records_of(day, locations))
        table = pa.concat_tables(tables)
        written = layout.Digest()
        for order in table.column("order_key").to_pylist():
            written.add(layout.record_key(order))
        if written != added:
            raise CompactionError(f"day {day}: late records read {written.text()}, expected {added.text()}")
        number = max([_delta_number(d.name) for d in manifest.deltas] + [0]) + 1
        name = layout.delta_name(day, manifest.generation, number)
        with tempfile.TemporaryDirectory(prefix=f"auditkeep-cold-{day}-", dir=self.work_dir) as workspace:
            directory = Path(workspace)
            path = directory / "delta.parquet"
            info = writer.write_delta(path, table)
            self.store.put_file(name, path)
            if self.store.size(name) != info.bytes:
                raise CompactionError(f"day {day}: {name} did not upload completely")
        updated = replace(manifest, deltas=(*manifest.deltas, replace(info, name=name)),
                          records=manifest.records + added.count,
                          digest=layout.Digest.parse(manifest.digest).merge(added).text(),
                          hot_watermark=format_iso(watermark), written_at=format_iso(self.clock.now()))
        self._invalidate_filter(day)  # before the day changes: a filter is stale, never wrong
        self.store.put_manifest(layout.manifest_name(day), updated.to_bytes(), etag)
        return DayReport(day, "delta", updated.records, added.count)

    # ------------------------------------------------------------ merge

    def _needs_merge(self, manifest: layout.Manifest) -> bool:
        delta_rows = sum(d.rows for d in manifest.deltas)
        return bool(manifest.deltas) and (len(manifest.deltas) >= MERGE_DELTAS
                                          or delta_rows > MERGE_FRACTION * manifest.records)

    def _merge(self, day: str, manifest: layout.Manifest, etag: str) -> DayReport:
        generation = manifest.generation + 1
        reader = DayReader(self.store, day, manifest)
        expected = layout.Digest.parse(manifest.digest)
        with tempfile.TemporaryDirectory(prefix=f"auditkeep-cold-{day}-", dir=self.work_dir) as workspace:
            directory = Path(workspace)
            day_writer = writer.DayWriter(day, directory, expected_rows=manifest.records, limits=self.limits)
            for table in reader.tables(writer.INPUT_SCHEMA.names):
                day_writer.add(table)
            written = day_writer.finish()
            self._verify(day, expected, day_writer.input_digest, written)
            files = self._upload(day, generation, written)
        merged = replace(manifest, generation=generation, files=files, deltas=(), operations=written.operations,
                         written_at=format_iso(self.clock.now()))
        self._invalidate_filter(day)  # before the day changes: a filter is stale, never wrong
        self.store.put_manifest(layout.manifest_name(day), merged.to_bytes(), etag)
        return DayReport(day, "merged", merged.records, merged.records)

    # ------------------------------------------------------------ cleaning

    def _clean(self, day: str, manifest: layout.Manifest) -> int:
        """Delete files no manifest lists: superseded generations at once; other unlisted files
        (a crashed attempt's) once they are ORPHAN_AGE old, as one in progress may still commit them."""
        live = set(manifest.live_files())
        deleted = 0
        for name in self.store.list(layout.day_prefix(day)):
            generation = layout.generation_of(name)
            if name in live or generation is None:
                continue
            if generation < manifest.generation:
                deleted += self.store.delete(name)
            else:
                age = self.store.age(name)
                if age is not None and age >= ORPHAN_AGE:
                    deleted += self.store.delete(name)
        return deleted


def _month_end(month: str) -> str:
    """yyyyMMdd of the last day of a month given as yyyyMM."""
    first = date(int(month[:4]), int(month[4:]), 1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (following - timedelta(days=1)).strftime("%Y%m%d")


def _delta_number(name: str) -> int:
    stem = name.rsplit("/", 1)[-1]
    return int(stem[len("delta-"):-len(".parquet")]) if stem.startswith("delta-") else 0


__all__ = ["CLOSE_GRACE", "ColdStore", "CompactionReport", "Compactor", "DayReport", "IdView", "RawRecords"]
