"""Reading a compacted day (docs/cold-tier.md "Reading"): the functions the query layer builds on.

    reader = DayReader(store, "20240506")          # one day; reads its manifest on first use
    reader.scan()                                   # every record, newest first (time.parquet)
    reader.scan(user="alex@contoso.com")            # one user (records.parquet, row groups by user_hash)
    reader.scan(operation="FileAccessed")           # one operation (time.parquet groups from the manifest)
    reader.scan(..., after=order_key)               # strictly older than a cursor's order key
    reader.scan(..., low=key, high=key)             # order keys in [low, high): a time window of the day
    reader.raw(record_id)                           # the raw JSON bytes, as /api/audit/{id} returns them
    reader.other_org_keys(record_id)                # record keys of that id in other organizations

Scans yield `collector.index.Hit` (order key, AuditEntry) exactly as the hot index's scans do, so
the query layer can merge both tiers by order key and keep one cursor. Deltas (late records) are
merged in, and so are the parts of a day compacted in parts (layout.py). Row groups outside the wanted key range are never read: the manifest holds each group's
key range, so a one-hour window of a day reads one time.parquet group.

Blob reads: a file of at most SMALL_FILE bytes is read whole in one request; a larger one through
ranged reads (its footer, then the column chunks of the groups wanted), and its parsed footer is
kept in a `FooterCache` shared across readers, so later queries skip that round trip (a committed
file's name is never rewritten: a new generation gets new names).
"""

from __future__ import annotations

import heapq
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import keys
from ..errors import ColdFormatError
from ..index import Hit
from . import layout

ENTRY_COLUMNS = ["order_key", *layout.NORMALIZED]
# Small files cost one GET whole rather than a footer read plus a column read: a day of a few
# thousand records is ~200 KB in all. Larger ones are read by range (bytes are billed too).
SMALL_FILE = 256 * 1024
FOOTERS = 512  # parsed footers kept by a FooterCache (a records footer of a 40 M-record day is ~1 MB)


class ReadStore(Protocol):
    def get(self, name: str) -> tuple[bytes, str] | None: ...

    def open(self, name: str, size: int | None = None) -> io.RawIOBase | IO[bytes]: ...


class FooterCache:
    """Parsed Parquet footers by file name, least recently used dropped first (thread-safe)."""

    def __init__(self, size: int = FOOTERS) -> None:
        self.size = size
        self._items: OrderedDict[str, pq.FileMetaData] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> pq.FileMetaData | None:
        with self._lock:
            found = self._items.get(name)
            if found is not None:
                self._items.move_to_end(name)
            return found

    def put(self, name: str, metadata: pq.FileMetaData) -> None:
        with self._lock:
            self._items[name] = metadata
            self._items.move_to_end(name)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def load_manifest(store: ReadStore, day: str) -> tuple[layout.Manifest, str] | None:
    """(manifest, etag) of a day, or None when the day is not compacted."""
    found = store.get(layout.manifest_name(day))
    if found is None:
        return None
    return layout.Manifest.from_bytes(found[0]), found[1]


def record_key(record_id: str, organization_id: str = "", tenant_id: str = "") -> str:
    """The id view's key of a record: the lower-cased id, plus `_org` for another organization than `tenant_id`."""
    return keys.kid(record_id) + keys.org_suffix(organization_id, tenant_id)


class DayReader:
    """One compacted day. Raises ColdFormatError if the day has no manifest."""

    def __init__(self, store: ReadStore, day: str, manifest: layout.Manifest | None = None,
                 footers: FooterCache | None = None) -> None:
        self.store = store
        self.day = day
        self._manifest = manifest
        self.footers = footers
        self._files: dict[str, pq.ParquetFile] = {}

    @property
    def manifest(self) -> layout.Manifest:
        if self._manifest is None:
            loaded = load_manifest(self.store, self.day)
            if loaded is None:
                raise ColdFormatError(f"day {self.day} is not compacted (no {layout.manifest_name(self.day)})")
            self._manifest = loaded[0]
        return self._manifest

    def _parquet(self, info: layout.FileInfo) -> pq.ParquetFile:
        parquet = self._files.get(info.name)
        if parquet is None:
            if info.bytes <= SMALL_FILE:
                with self.store.open(info.name, info.bytes) as handle:
                    data = handle.read()
                parquet = pq.ParquetFile(pa.BufferReader(data))
            else:
                footer = self.footers.get(info.name) if self.footers is not None else None
                parquet = pq.ParquetFile(self.store.open(info.name, info.bytes), metadata=footer)
                if footer is None and self.footers is not None:
                    self.footers.put(info.name, parquet.metadata)
            self._files[info.name] = parquet
        return parquet

    def _groups(self, info: layout.FileInfo, groups: Iterable[int], columns: list[str]) -> pa.Table:
        wanted = sorted(set(groups))
        if not wanted:
            return pa.table({c: [] for c in columns})
        return self._parquet(info).read_row_groups(wanted, columns=columns)

    # ------------------------------------------------------------ scans

    def scan(self, *, user: str | None = None, operation: str | None = None, after: str | None = None,
             low: str | None = None, high: str | None = None) -> Iterator[Hit]:
        """Records of the day newest first (ascending order key), optionally of one user or one
        operation (case-insensitive, as the hot index's views), strictly after order key `after`,
        with order keys in [low, high)."""
        m = self.manifest
        bounds = _Bounds(after, low, high)
        # A day compacted in parts: each part is sorted on its own, so their hits are merged by
        # order key (a first page reads one group of each part).
        mains = [self._part_hits(part, bounds, user, operation) for part in m.segments]
        deltas = [self._delta_hits(d, user, operation, bounds) for d in m.deltas]
        sources = [*mains, *deltas]
        return heapq.merge(*sources, key=lambda hit: hit.key) if len(sources) > 1 else sources[0]

    def _part_hits(self, part: layout.Part, bounds: _Bounds, user: str | None, operation: str | None) -> Iterator[Hit]:
        if user is not None:
            wanted = layout.user_hash(user)
            folded = user.casefold()
            info = part.files[layout.RECORDS]
            groups = [i for i, g in enumerate(info.groups) if g[2] <= wanted <= g[3]]
            table = self._groups(info, groups, ["user_hash", *ENTRY_COLUMNS])
            if table.num_rows:
                table = table.filter(pc.equal(table.column("user_hash"), wanted))
            return _hits(table, bounds, lambda row: str(row["user"]).casefold() == folded)
        if operation is not None:
            folded = operation.casefold()
            return self._time_scan(part, bounds, part.operations.get(folded, []),
                                   lambda row: str(row["operation"]).casefold() == folded)
        return self._time_scan(part, bounds, range(len(part.files[layout.TIME].groups)), None)

    def _time_scan(self, part: layout.Part, bounds: _Bounds, groups: Iterable[int],
                   keep: Callable[[dict[str, Any]], bool] | None) -> Iterator[Hit]:
        """time file groups (sorted by order key, so the groups are too) one at a time: a page
        that stops early never reads the older groups."""
        info = part.files[layout.TIME]
        for index in sorted(groups):
            first, last = info.groups[index][2], info.groups[index][3]
            if bounds.high is not None and str(first) >= bounds.high:
                return
            if not bounds.overlaps(str(first), str(last)):
                continue
            yield from _hits(self._groups(info, [index], ENTRY_COLUMNS), bounds, keep)

    def _delta_hits(self, info: layout.FileInfo, user: str | None, operation: str | None, bounds: _Bounds) -> Iterator[Hit]:
        groups = [i for i, g in enumerate(info.groups) if bounds.overlaps(str(g[2]), str(g[3]))]
        table = self._groups(info, groups, ENTRY_COLUMNS)

        def keep(row: dict[str, Any]) -> bool:
            return ((user is None or str(row["user"]).casefold() == user.casefold())
                    and (operation is None or str(row["operation"]).casefold() == operation.casefold()))
        return _hits(table, bounds, keep)

    # ------------------------------------------------------------ ids

    def raw(self, record_id: str, organization_id: str = "", tenant_id: str = "") -> bytes | None:
        """The raw JSON bytes of a record of this day, or None. The key is the id view's: the
        lower-cased id, plus `_org` for another organization than `tenant_id`."""
        return self.raw_by_key(record_key(record_id, organization_id, tenant_id))

    def raw_by_key(self, key: str) -> bytes | None:
        """The raw JSON bytes of the record with this id-view key (kid + org suffix), or None."""
        m = self.manifest
        wanted = layout.key_hash(key)
        for part in m.segments:  # a key is in one part at most: parts hold disjoint keys
            ids = part.files[layout.IDS]
            groups = [i for i, g in enumerate(ids.groups) if g[2] <= wanted <= g[3]]
            found = self._groups(ids, groups, ["key_hash", "row"])
            if found.num_rows:
                found = found.filter(pc.equal(found.column("key_hash"), wanted))
            records = part.files[layout.RECORDS]
            for row in (int(r) for r in found.column("row").to_pylist()):
                for index, (first, count, _, _) in enumerate(records.groups):
                    if first <= row < first + count:
                        table = self._groups(records, [index], ["order_key", "raw"])
                        if layout.record_key(str(table.column("order_key")[row - first])) == key:
                            return str(table.column("raw")[row - first]).encode("utf-8")
        for delta in m.deltas:
            table = self._groups(delta, range(len(delta.groups)), ["order_key", "raw"])
            for order, raw in zip(table.column("order_key").to_pylist(), table.column("raw").to_pylist(), strict=True):
                if layout.record_key(order) == key:
                    return str(raw).encode("utf-8")
        return None

    def other_org_keys(self, record_id: str, tenant_id: str) -> list[str]:
        """Id-view keys (kid + `_org`) of the records with this id in organizations other than the
        tenant's, oldest organization key first. Reads only the time.parquet row groups whose
        organizationId statistics show another organization (nearly none in a single-tenant
        deployment), plus the deltas."""
        prefix = keys.kid(record_id) + "_"
        m = self.manifest
        own = {"", tenant_id}
        sources: list[tuple[layout.FileInfo, Iterable[int]]] = []
        for part in m.segments:
            info = part.files[layout.TIME]
            parquet = self._parquet(info)
            column = parquet.schema_arrow.get_field_index("organizationId")
            groups = []
            for index in range(parquet.metadata.num_row_groups):
                stats = parquet.metadata.row_group(index).column(column).statistics
                if stats is None or not stats.has_min_max or not (stats.min == stats.max and stats.min in own):
                    groups.append(index)
            sources.append((info, groups))
        found: set[str] = set()
        for source, wanted in (*sources, *((d, range(len(d.groups))) for d in m.deltas)):
            orders = self._groups(source, wanted, ["order_key"]).column("order_key").to_pylist()
            found |= {layout.record_key(o) for o in orders if layout.record_key(o).startswith(prefix)}
        return sorted(found)

    def known(self, record_keys: Iterable[str]) -> set[str]:
        """Which of these record keys the day already holds (files or deltas): reads only the ids
        row groups their hashes fall in, plus the deltas' order keys."""
        m = self.manifest
        by_hash = {layout.key_hash(k): k for k in record_keys}
        if not by_hash:
            return set()
        hashes: set[int] = set()
        for part in m.segments:
            ids = part.files[layout.IDS]
            groups = [i for i, g in enumerate(ids.groups) if any(g[2] <= h <= g[3] for h in by_hash)]
            hashes |= set(self._groups(ids, groups, ["key_hash"]).column("key_hash").to_pylist())
        found = {k for h, k in by_hash.items() if h in hashes}
        wanted = set(by_hash.values())
        for delta in m.deltas:
            orders = self._groups(delta, range(len(delta.groups)), ["order_key"]).column("order_key").to_pylist()
            found |= {layout.record_key(o) for o in orders} & wanted
        return found

    def tables(self, columns: list[str]) -> Iterator[pa.Table]:
        """Every record of the day (each part's records file row group by row group, then each
        delta) with `columns`: what tests compare with the hot index."""
        m = self.manifest
        yield from self.file_tables([*(p.files[layout.RECORDS] for p in m.segments), *m.deltas], columns)

    def file_tables(self, infos: Iterable[layout.FileInfo], columns: list[str]) -> Iterator[pa.Table]:
        """The rows of these records-schema files (a part's records file, deltas), a row group at a
        time: what a merge rewrites."""
        for info in infos:
            for index in range(len(info.groups)):
                yield self._groups(info, [index], columns)


class _Bounds:
    """Order keys wanted: strictly after `after`, at least `low`, below `high` (each optional)."""

    def __init__(self, after: str | None, low: str | None, high: str | None) -> None:
        self.after, self.low, self.high = after, low, high

    def overlaps(self, first: str, last: str) -> bool:
        """Whether a group holding keys first..last (inclusive) may hold a wanted key."""
        return ((self.after is None or last > self.after) and (self.low is None or last >= self.low)
                and (self.high is None or first < self.high))

    def filter(self, table: pa.Table) -> pa.Table:
        column = table.column("order_key")
        masks = []
        if self.after is not None:
            masks.append(pc.greater(column, self.after))
        if self.low is not None:
            masks.append(pc.greater_equal(column, self.low))
        if self.high is not None:
            masks.append(pc.less(column, self.high))
        if not masks:
            return table
        mask = masks[0]
        for more in masks[1:]:
            mask = pc.and_(mask, more)
        return table.filter(mask)


def _hits(table: pa.Table, bounds: _Bounds, keep: Callable[[dict[str, Any]], bool] | None) -> Iterator[Hit]:
    if table.num_rows == 0:
        return iter(())
    table = bounds.filter(table)
    if table.num_rows == 0:
        return iter(())
    rows = table.sort_by([("order_key", "ascending")]).to_pylist()
    return (Hit(str(row["order_key"]), layout.entry_from_row(row)) for row in rows if keep is None or keep(row))
