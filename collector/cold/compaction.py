"""The compaction use case: closed days of the hot index → Parquet files of the cold tier.

For each day of the hot id view up to the last closed one (or `through`):

- no manifest yet: **compact**. Scan the id view (record key → archive blob, position), read each
  archive blob once, re-normalize with collector/normalize.py (and round-trip the fields through
  the index's own payload codec, so a cold entry equals the hot one field for field), write the
  day's files in bounded memory (writer.py), verify count and key digest against the id view,
  upload, and write the manifest last: the commit point.
  A day of more than `part_records` records (a 200,000-seat tenant's ~40 M) is compacted in
  **parts** cut along its sorted archive-blob list: the scan's result is saved as a plan (each
  part's (blob, position) list, record count and key digest), and each part is written, verified
  against its planned digest, uploaded and checkpointed on its own. A run that stops (a time
  budget, a recycled worker) continues at the first part without a checkpoint; the manifest is
  written once every part is there and their digests add up to the id view's.
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
import itertools
import json
import logging
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
from azure.core.exceptions import ResourceExistsError

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
# Records of one part of a large day: about 6 minutes of compaction at the measured ~8,000 rec/s
# (docs/performance.md) plus its blob reads, so a part fits well inside one Flex execution, and a
# 10,000-seat tenant's day (~2 M records) stays one part. Disk: ~2 × 230 B a record (spill + output).
PART_RECORDS = 3_000_000
# A plan whose compaction has not finished for this long is abandoned (a newer scan replaces it):
# until then _clean keeps its files, which no manifest lists yet.
PLAN_AGE = timedelta(days=3)
PLAN_ROW_GROUP = 1_000_000  # (blob, position) rows of a part's plan file per row group
# Archive blobs read at once while compacting. On Azure a blob read waits tens of milliseconds
# for a few of parsing, and a 3 M-record part reads ~12,000 blobs: read one at a time, the waits
# alone would take minutes of the execution. Memory: this many parsed blobs more (a few MB each).
READ_AHEAD = 8


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
    action: str  # compacted | partial | delta | merged | rebuilt | unchanged | empty
    records: int = 0  # records of the day after this pass (partial: of the plan)
    added: int = 0  # records this pass wrote (all of them, a delta's, or a merge's)
    deleted: int = 0  # superseded files deleted
    seconds: float = 0.0
    parts: int = 1  # parts of the day (of its plan when compacted in parts)
    parts_done: int = 0  # parts committed so far (partial: the rest is left)
    parts_written: list[int] = field(default_factory=list)  # parts this pass wrote (1-based)


@dataclass
class CompactionReport:
    days: list[DayReport] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # days not finished because the time budget ran out

    @property
    def records(self) -> int:
        return sum(d.added for d in self.days)

    @property
    def finished(self) -> bool:
        return not self.left


class Budget:
    """A run's time budget (COMPACT_MAX_SECONDS): a part starts only if the longest part this run
    has written would still end inside it, so the run stops between parts, not in one."""

    def __init__(self, seconds: float | None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.monotonic = monotonic
        self.started = monotonic()
        self.longest = 0.0

    def elapsed(self) -> float:
        return self.monotonic() - self.started

    def allows(self, estimate: float | None = None) -> bool:
        if self.seconds is None:
            return True
        return self.elapsed() + (self.longest if estimate is None else estimate) < self.seconds

    def spent(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)


class Compactor:
    """Compacts the hot index's closed days into the cold tier (see the module docstring)."""

    def __init__(self, ids: IdView, archive: RawRecords, store: ColdStore, *, tenant_id: str,
                 clock: Clock | None = None, work_dir: Path | None = None, limits: writer.Limits | None = None,
                 part_records: int = PART_RECORDS, monotonic: Callable[[], float] = time.monotonic,
                 read_ahead: int = READ_AHEAD) -> None:
        if part_records < 1:
            raise ValueError(f"part_records must be a positive number of records, got {part_records}")
        if read_ahead < 1:
            raise ValueError(f"read_ahead must be a positive number of blobs, got {read_ahead}")
        self.ids = ids
        self.archive = archive
        self.store = store
        self.tenant_id = tenant_id
        self.clock = clock or SystemClock()
        self.work_dir = work_dir
        self.limits = limits or writer.Limits()
        self.part_records = part_records
        self.monotonic = monotonic  # the time budget's clock (a seam for tests)
        self.read_ahead = read_ahead

    def last_closed_day(self) -> date:
        return (self.clock.now() - CLOSE_GRACE).astimezone(UTC).date() - timedelta(days=1)

    def run(self, through: date | None = None, progress: Callable[[str], None] | None = None,
            max_seconds: float | None = None) -> CompactionReport:
        """Every hot day up to `through` (default: the last closed day), oldest first. With
        `max_seconds`, stop between parts (or days) once the next one might not end inside it:
        `left` names the days not finished, which the next run continues."""
        last = (through or self.last_closed_day()).strftime("%Y%m%d")
        report = CompactionReport()
        budget = Budget(max_seconds, self.monotonic)
        wanted = [day for day in self.ids.days() if day <= last]
        for number, day in enumerate(wanted):
            if not budget.allows():
                report.left = wanted[number:]
                break
            started = self.monotonic()
            result = self.compact_day(day, budget)
            result.seconds = self.monotonic() - started
            if not result.parts_written:  # a day in one go (a part's own time is counted by _parts)
                budget.spent(result.seconds)
            report.days.append(result)
            log.info("cold.day %s %s: %d records (%d written)", day, result.action, result.records, result.added,
                     extra={"day": day, "action": result.action, "records": result.records, "added": result.added,
                            "parts": result.parts, "partsDone": result.parts_done,
                            "durationMs": int(result.seconds * 1000)})
            if progress is not None and result.action != "unchanged":
                parts = f", part(s) {_ranges(result.parts_written)} of {result.parts}" if result.parts_written else ""
                progress(f"{day}: {result.action}, {result.records:,} records ({result.added:,} written{parts})")
            if result.action == "partial":
                report.left = wanted[number:]
                break
        if report.left:
            # The month filters read every day of a month: they wait for a run with time to spare.
            log.warning("cold.budget_spent after %.0f s: %d day(s) left, from %s", budget.elapsed(), len(report.left),
                        report.left[0], extra={"left": len(report.left), "firstLeft": report.left[0],
                                               "durationMs": int(budget.elapsed() * 1000)})
            return report
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
            hashes = []
            other = False
            for part in manifest.segments:
                ids = pq.read_table(self.store.open(part.files[layout.IDS].name), columns=["key_hash"])
                hashes.append(ids.column("key_hash").to_numpy())
                time_file = pq.read_table(self.store.open(part.files[layout.TIME].name), columns=["organizationId"])
                other = other or self._foreign(time_file.column("organizationId"))
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

    def compact_day(self, day: str, budget: Budget | None = None) -> DayReport:
        loaded = load_manifest(self.store, day)
        if loaded is None:
            return self._full(day, budget=budget)
        manifest, etag = loaded
        result = self._late(day, manifest, etag)
        loaded = load_manifest(self.store, day)
        # not while a rebuild (reindex) compacts the next generation in parts: it would write its names
        if (loaded is not None and self._needs_merge(loaded[0])
                and self.store.get(layout.plan_name(day, loaded[0].generation + 1)) is None):
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

    def _full(self, day: str, generation: int = 1, etag: str | None = None, budget: Budget | None = None) -> DayReport:
        plan = self._load_plan(day, generation)
        if plan is not None and self.clock.now() - parse_time(plan.written_at) > PLAN_AGE:
            # abandoned long ago (the hot day may have been reindexed since): plan the day again
            self.store.delete(layout.plan_name(day, generation))
            plan = None
        if plan is not None:  # a compaction in parts under way: continue it, no new scan
            return self._parts(day, generation, etag, plan, budget)
        watermark = self.clock.now() - CLOCK_SKEW  # before the scan: anything written later is re-examined
        locations: dict[str, array[int]] = {}
        by_blob: dict[str, layout.Digest] = {}
        hot = layout.Digest()
        for key, blob, position in self.ids.locations(day):
            hot.add(key)
            # 4 bytes a record (its position) is the scan's whole memory cost; that the record at
            # the position has the key is checked through the digest (_verify).
            locations.setdefault(blob, array("I")).append(position)
            by_blob.setdefault(blob, layout.Digest()).add(key)
        if hot.count == 0:
            return DayReport(day, "empty")
        if hot.count > self.part_records:
            blobs = sorted(locations)
            ranges = layout.cut_parts([len(locations[b]) for b in blobs], self.part_records)
            if len(ranges) > 1:
                plan = self._write_plan(day, generation, watermark, hot, blobs, ranges, locations, by_blob)
                del locations, by_blob  # the parts read their lists back from the plan
                return self._parts(day, generation, etag, plan, budget)
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
        for blob, records in self._read_blobs(sorted(locations)):
            content_type, created = blob_origin(blob)
            for position in sorted(set(locations[blob])):
                rows.append(self._row(day, blob, records, position, content_type, created))
                if len(rows) >= ADD_ROWS:
                    yield writer.rows_table(rows)
                    rows = []
        if rows:
            yield writer.rows_table(rows)

    def _read_blobs(self, blobs: list[str]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Each blob's records, in the order given, with up to `read_ahead` blobs being read at once.
        A failed read raises when its blob's turn comes; the reads not yet started are cancelled."""
        if self.read_ahead == 1:
            for blob in blobs:
                yield blob, self.archive.records(blob)
            return
        pool = ThreadPoolExecutor(self.read_ahead, thread_name_prefix="compact-read")
        pending: deque[tuple[str, Future[list[dict[str, Any]]]]] = deque()
        try:
            for blob in blobs:
                pending.append((blob, pool.submit(self.archive.records, blob)))
                if len(pending) >= self.read_ahead:
                    name, future = pending.popleft()
                    yield name, future.result()
            while pending:
                name, future = pending.popleft()
                yield name, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

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

    def _upload(self, day: str, generation: int, written: writer.WrittenDay,
                part: int | None = None) -> dict[str, layout.FileInfo]:
        files = {}
        for kind, info in written.files.items():
            name = layout.file_name(day, generation, kind) if part is None else layout.part_file_name(day, generation, part, kind)
            self.store.put_file(name, written.paths[kind])
            if self.store.size(name) != info.bytes:
                raise CompactionError(f"day {day}: {name} has {self.store.size(name)} bytes in storage, {info.bytes} written")
            files[kind] = replace(info, name=name)
        return files

    # ------------------------------------------------------------ a large day, in parts

    def _load_plan(self, day: str, generation: int) -> layout.Plan | None:
        found = self.store.get(layout.plan_name(day, generation))
        if found is None:
            return None
        plan = layout.Plan.from_bytes(found[0])
        if plan.day != day or plan.generation != generation:
            raise CompactionError(f"day {day}: {layout.plan_name(day, generation)} is the plan of day {plan.day} "
                                  f"generation {plan.generation}")
        return plan

    def _write_plan(self, day: str, generation: int, watermark: datetime, hot: layout.Digest, blobs: list[str],
                    ranges: list[tuple[int, int]], locations: dict[str, array[int]],
                    by_blob: dict[str, layout.Digest]) -> layout.Plan:
        """Each part's (blob, position) list, then plan.json (created only if absent): from then
        on the parts are fixed, and every rerun reads them instead of scanning the id view again."""
        import numpy as np
        import pyarrow.parquet as pq

        planned = []
        with tempfile.TemporaryDirectory(prefix=f"auditkeep-plan-{day}-", dir=self.work_dir) as workspace:
            path = Path(workspace) / "plan.parquet"
            for number, (start, end) in enumerate(ranges, start=1):
                names = blobs[start:end]
                counts = np.asarray([len(locations[b]) for b in names], dtype=np.int64)
                positions = np.concatenate([np.frombuffer(locations[b], dtype=np.uint32) for b in names])
                table = pa.table({
                    "blob": pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(len(names)), counts), pa.int32()),
                                                           pa.array(names, pa.string())),
                    "position": pa.array(positions, pa.uint32())})
                pq.write_table(table, str(path), compression=layout.COMPRESSION, row_group_size=PLAN_ROW_GROUP)
                self.store.put_file(layout.part_plan_name(day, generation, number), path)
                digest = layout.Digest()
                for name in names:
                    digest = digest.merge(by_blob[name])
                planned.append(layout.PlannedPart(number, int(counts.sum()), digest.text(), len(names)))
        plan = layout.Plan(day, generation, hot.count, hot.text(), tuple(planned), format_iso(watermark),
                           format_iso(self.clock.now()))
        try:
            self.store.put_manifest(layout.plan_name(day, generation), plan.to_bytes(), None)
        except ResourceExistsError:  # another run planned the day first: follow its plan
            theirs = self._load_plan(day, generation)
            if theirs is None:
                raise
            return theirs
        log.info("cold.plan %s: %d records in %d parts", day, hot.count, len(planned),
                 extra={"day": day, "records": hot.count, "parts": len(planned)})
        return plan

    def _checkpoint(self, day: str, generation: int, planned: layout.PlannedPart) -> layout.Part | None:
        """A part's checkpoint, if it is there and is this plan's part (same count and digest)."""
        found = self.store.get(layout.part_checkpoint_name(day, generation, planned.number))
        if found is None:
            return None
        part = layout.Part.from_json(json.loads(found[0]))
        if part.records != planned.records or part.digest != planned.digest:
            return None  # left by an earlier plan of the generation: written again
        return part

    def _parts(self, day: str, generation: int, etag: str | None, plan: layout.Plan, budget: Budget | None) -> DayReport:
        """Write every part without a checkpoint (while the budget allows), then commit the day."""
        report = DayReport(day, "partial", plan.records, parts=len(plan.parts))
        done: dict[int, layout.Part] = {}
        for planned in plan.parts:
            found = self._checkpoint(day, generation, planned)
            if found is not None:
                done[planned.number] = found
        for planned in plan.parts:
            if planned.number in done:
                continue
            if budget is not None and not budget.allows():
                report.parts_done = len(done)
                log.info("cold.partial %s: %d of %d parts, stopped by the time budget", day, len(done), len(plan.parts),
                         extra={"day": day, "parts": len(plan.parts), "partsDone": len(done)})
                return report
            started = self.monotonic()
            done[planned.number] = self._write_part(day, generation, planned)
            if budget is not None:
                budget.spent(self.monotonic() - started)
            report.parts_written.append(planned.number)
            report.added += planned.records
        parts = tuple(done[planned.number] for planned in plan.parts)
        total = layout.Digest()
        for part in parts:
            total = total.merge(layout.Digest.parse(part.digest))
        if total != layout.Digest.parse(plan.digest):
            raise CompactionError(f"day {day}: its parts hold {total.text()}, the hot id view held {plan.digest}; "
                                  "nothing was committed")
        manifest = layout.Manifest(day=day, generation=generation, records=plan.records, digest=plan.digest,
                                   files=parts[0].files, operations=parts[0].operations, parts=parts,
                                   hot_watermark=plan.hot_watermark, written_at=format_iso(self.clock.now()))
        self._invalidate_filter(day)  # before the day changes: a filter is stale, never wrong
        self.store.put_manifest(layout.manifest_name(day), manifest.to_bytes(), etag)
        for number in range(1, len(plan.parts) + 1):  # the plan is spent: the manifest lists the parts
            self.store.delete(layout.part_checkpoint_name(day, generation, number))
            self.store.delete(layout.part_plan_name(day, generation, number))
        self.store.delete(layout.plan_name(day, generation))
        report.action, report.parts_done = "compacted", len(parts)
        return report

    def _write_part(self, day: str, generation: int, planned: layout.PlannedPart) -> layout.Part:
        """One part: its records read from the archive, written, verified against the plan (the
        hot id view's count and key digest for it), uploaded, then its checkpoint."""
        import pyarrow.parquet as pq

        found = self.store.get(layout.part_plan_name(day, generation, planned.number))
        if found is None:
            raise CompactionError(f"day {day}: {layout.part_plan_name(day, generation, planned.number)} is missing; "
                                  f"delete {layout.plan_name(day, generation)} to plan the day again")
        locations = _plan_locations(pq.read_table(pa.BufferReader(found[0]), read_dictionary=["blob"]))
        expected = layout.Digest.parse(planned.digest)
        with tempfile.TemporaryDirectory(prefix=f"auditkeep-cold-{day}-", dir=self.work_dir) as workspace:
            directory = Path(workspace)
            day_writer = writer.DayWriter(day, directory, expected_rows=planned.records, limits=self.limits)
            for rows in self._records_of(day, locations):
                day_writer.add(rows)
            written = day_writer.finish()
            self._verify(day, expected, day_writer.input_digest, written)
            files = self._upload(day, generation, written, planned.number)
            part = layout.Part(files, written.operations, planned.records, planned.digest)
            checkpoint = directory / "checkpoint.json"
            checkpoint.write_bytes(json.dumps(part.to_json(), separators=(",", ":")).encode("utf-8"))
            self.store.put_file(layout.part_checkpoint_name(day, generation, planned.number), checkpoint)
        log.info("cold.part %s: part %d, %d records", day, planned.number, planned.records,
                 extra={"day": day, "part": planned.number, "records": planned.records})
        return part

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
        """The deltas into a new generation: with the whole day when it is one part (as before
        parts existed); with only its last part when the day has several (or as a part of their
        own when the last one would grow past `part_records`), the other parts kept as they are,
        so a merge of a large day writes at most about one part."""
        generation = manifest.generation + 1
        reader = DayReader(self.store, day, manifest)
        segments = manifest.segments
        delta_rows = sum(d.rows for d in manifest.deltas)
        kept: tuple[layout.Part, ...] = ()
        if len(segments) > 1:
            last = segments[-1]
            kept = segments[:-1] if last.records + delta_rows <= self.part_records else segments
        rewrite = [p.files[layout.RECORDS] for p in segments[len(kept):]] + list(manifest.deltas)
        expected = layout.Digest.parse(manifest.digest)
        for part in kept:
            expected = expected.minus(layout.Digest.parse(part.digest))
        number = len(kept) + 1
        with tempfile.TemporaryDirectory(prefix=f"auditkeep-cold-{day}-", dir=self.work_dir) as workspace:
            directory = Path(workspace)
            day_writer = writer.DayWriter(day, directory, expected_rows=expected.count, limits=self.limits)
            for table in reader.file_tables(rewrite, writer.INPUT_SCHEMA.names):
                day_writer.add(table)
            written = day_writer.finish()
            self._verify(day, expected, day_writer.input_digest, written)
            files = self._upload(day, generation, written, number if len(segments) > 1 else None)
        if len(segments) > 1:
            parts = (*kept, layout.Part(files, written.operations, expected.count, expected.text()))
            merged = replace(manifest, generation=generation, files=parts[0].files, operations=parts[0].operations,
                             parts=parts, deltas=(), written_at=format_iso(self.clock.now()))
        else:
            merged = replace(manifest, generation=generation, files=files, deltas=(), operations=written.operations,
                             written_at=format_iso(self.clock.now()))
        self._invalidate_filter(day)  # before the day changes: a filter is stale, never wrong
        self.store.put_manifest(layout.manifest_name(day), merged.to_bytes(), etag)
        return DayReport(day, "merged", merged.records, expected.count, parts=len(merged.segments),
                         parts_done=len(merged.segments))

    # ------------------------------------------------------------ cleaning

    def _clean(self, day: str, manifest: layout.Manifest) -> int:
        """Delete files no manifest lists: superseded generations at once; other unlisted files
        (a crashed attempt's) once they are ORPHAN_AGE old, as one in progress may still commit them."""
        live = set(manifest.live_files())
        deleted = 0
        # a plan.json first: a plan whose files are going must not be found without them
        names = sorted(self.store.list(layout.day_prefix(day)), key=lambda n: not n.endswith("/" + layout.PLAN))
        planning = {g for n in names if n.endswith("/" + layout.PLAN) and (g := layout.generation_of(n)) is not None
                    and g > manifest.generation and (self.store.age(n) or timedelta(0)) < PLAN_AGE}
        for name in names:
            generation = layout.generation_of(name)
            if name in live or generation is None or generation in planning:
                continue  # a later generation with a live plan: a rebuild in parts under way
            if generation < manifest.generation or (generation == manifest.generation and layout.is_plan_file(name)):
                deleted += self.store.delete(name)  # superseded, or the plan of a committed generation: spent
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


def _plan_locations(table: pa.Table) -> dict[str, array[int]]:
    """A part's plan (rows of blob, position, sorted by blob) → blob → positions. Each row group
    is a chunk with its own dictionary; a blob's run may cross from one chunk to the next."""
    import numpy as np

    locations: dict[str, array[int]] = {}
    for blobs, positions in zip(table.column("blob").chunks, table.column("position").chunks, strict=True):
        if not len(blobs):
            continue
        names = blobs.dictionary.to_pylist()
        indices = blobs.indices.to_numpy(zero_copy_only=False)
        values = positions.to_numpy(zero_copy_only=False).astype(np.uint32)
        edges = [0, *(np.flatnonzero(np.diff(indices)) + 1).tolist(), len(indices)]
        for start, end in itertools.pairwise(edges):
            locations.setdefault(str(names[int(indices[start])]), array("I")).frombytes(values[start:end].tobytes())
    return locations


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 5 → "1-3, 5" (the parts a pass wrote)."""
    out: list[str] = []
    for _, run in itertools.groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
        values = [n for _, n in run]
        out.append(str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}")
    return ", ".join(out)


def _delta_number(name: str) -> int:
    stem = name.rsplit("/", 1)[-1]
    return int(stem[len("delta-"):-len(".parquet")]) if stem.startswith("delta-") else 0


__all__ = ["CLOSE_GRACE", "ColdStore", "CompactionReport", "Compactor", "DayReport", "IdView", "RawRecords"]
