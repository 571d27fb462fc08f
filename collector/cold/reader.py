"""Reading a compacted day (docs/cold-tier.md "Reading"): the functions the query layer builds on.

    reader = DayReader(store, "20240506")          # one day; reads its manifest on first use
    reader.scan()                                   # every record, newest first (time.parquet)
    reader.scan(user="alex@contoso.com")            # one user (records.parquet, row groups by user_hash)
    reader.scan(operation="FileAccessed")           # one operation (time.parquet groups from the manifest)
    reader.scan(..., after=order_key)               # strictly older than a cursor's order key
    reader.raw(record_id)                           # the raw JSON bytes, as /api/audit/{id} returns them

Scans yield `collector.index.Hit` (order key, AuditEntry) exactly as the hot index's scans do, so
the query layer can merge both tiers by order key and keep one cursor. Deltas (late records) are
merged in. `store.requests` counts the blob reads a query cost.
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from .. import keys
from ..errors import ColdFormatError
from ..index import Hit
from . import layout

ENTRY_COLUMNS = ["order_key", *layout.NORMALIZED]


class ReadStore(Protocol):
    def get(self, name: str) -> tuple[bytes, str] | None: ...

    def open(self, name: str, size: int | None = None) -> io.RawIOBase | IO[bytes]: ...


def load_manifest(store: ReadStore, day: str) -> tuple[layout.Manifest, str] | None:
    """(manifest, etag) of a day, or None when the day is not compacted."""
    found = store.get(layout.manifest_name(day))
    if found is None:
        return None
    return layout.Manifest.from_bytes(found[0]), found[1]


class DayReader:
    """One compacted day. Raises ColdFormatError if the day has no manifest."""

    def __init__(self, store: ReadStore, day: str, manifest: layout.Manifest | None = None) -> None:
        self.store = store
        self.day = day
        self._manifest = manifest
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
            parquet = pq.ParquetFile(self.store.open(info.name, info.bytes))
            self._files[info.name] = parquet
        return parquet

    def _groups(self, info: layout.FileInfo, groups: Iterable[int], columns: list[str]) -> pa.Table:
        wanted = sorted(set(groups))
        if not wanted:
            return pa.table({c: [] for c in columns})
        return self._parquet(info).read_row_groups(wanted, columns=columns)

    # ------------------------------------------------------------ scans

    def scan(self, *, user: str | None = None, operation: str | None = None, after: str | None = None) -> Iterator[Hit]:
        """Records of the day newest first (ascending order key), optionally of one user or one
        operation (case-insensitive, as the hot index's views), strictly after order key `after`."""
        m = self.manifest
        if user is not None:
            wanted = layout.user_hash(user)
            info = m.files[layout.RECORDS]
            groups = [i for i, g in enumerate(info.groups) if g[2] <= wanted <= g[3]]
            table = self._groups(info, groups, ENTRY_COLUMNS)
            main = _sorted_hits(table, lambda row: str(row["user"]).casefold() == user.casefold(), after)
        elif operation is not None:
            info = m.files[layout.TIME]
            table = self._groups(info, m.operations.get(operation.casefold(), []), ENTRY_COLUMNS)
            main = _sorted_hits(table, lambda row: str(row["operation"]).casefold() == operation.casefold(), after)
        else:
            main = self._time_scan(after)
        deltas = [self._delta_hits(d, user, operation, after) for d in m.deltas]
        return heapq.merge(main, *deltas, key=lambda hit: hit.key) if deltas else main

    def _time_scan(self, after: str | None) -> Iterator[Hit]:
        info = self.manifest.files[layout.TIME]
        for index, group in enumerate(info.groups):
            if after is not None and str(group[3]) <= after:
                continue
            yield from _sorted_hits(self._groups(info, [index], ENTRY_COLUMNS), None, after)

    def _delta_hits(self, info: layout.FileInfo, user: str | None, operation: str | None, after: str | None) -> Iterator[Hit]:
        table = self._groups(info, range(len(info.groups)), ENTRY_COLUMNS)

        def keep(row: dict[str, Any]) -> bool:
            return ((user is None or str(row["user"]).casefold() == user.casefold())
                    and (operation is None or str(row["operation"]).casefold() == operation.casefold()))
        return _sorted_hits(table, keep, after)

    # ------------------------------------------------------------ ids

    def raw(self, record_id: str, organization_id: str = "", tenant_id: str = "") -> bytes | None:
        """The raw JSON bytes of a record of this day, or None. The key is the id view's: the
        lower-cased id, plus `_org` for another organization than `tenant_id`."""
        key = keys.kid(record_id) + keys.org_suffix(organization_id, tenant_id)
        m = self.manifest
        wanted = layout.key_hash(key)
        ids = m.files[layout.IDS]
        groups = [i for i, g in enumerate(ids.groups) if g[2] <= wanted <= g[3]]
        found = self._groups(ids, groups, ["key_hash", "row"]).to_pylist()
        rows = [int(r["row"]) for r in found if r["key_hash"] == wanted]
        records = m.files[layout.RECORDS]
        for row in rows:
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

    def known(self, record_keys: Iterable[str]) -> set[str]:
        """Which of these record keys the day already holds (files or deltas): reads only the ids
        row groups their hashes fall in, plus the deltas' order keys."""
        m = self.manifest
        by_hash = {layout.key_hash(k): k for k in record_keys}
        if not by_hash:
            return set()
        ids = m.files[layout.IDS]
        groups = [i for i, g in enumerate(ids.groups) if any(g[2] <= h <= g[3] for h in by_hash)]
        hashes = set(self._groups(ids, groups, ["key_hash"]).column("key_hash").to_pylist())
        found = {k for h, k in by_hash.items() if h in hashes}
        wanted = set(by_hash.values())
        for delta in m.deltas:
            orders = self._groups(delta, range(len(delta.groups)), ["order_key"]).column("order_key").to_pylist()
            found |= {layout.record_key(o) for o in orders} & wanted
        return found

    def tables(self, columns: list[str]) -> Iterator[pa.Table]:
        """Every record of the day (records.parquet row group by row group, then each delta) with
        `columns`: what a merge rewrites, and what tests compare with the hot index."""
        m = self.manifest
        for info in (m.files[layout.RECORDS], *m.deltas):
            for index in range(len(info.groups)):
                yield self._groups(info, [index], columns)


def _sorted_hits(table: pa.Table, keep: Any, after: str | None) -> Iterator[Hit]:
    if table.num_rows == 0:
        return iter(())
    rows = table.sort_by([("order_key", "ascending")]).to_pylist()
    return (Hit(str(row["order_key"]), layout.entry_from_row(row)) for row in rows
            if (after is None or str(row["order_key"]) > after) and (keep is None or keep(row)))
