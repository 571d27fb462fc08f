"""The cold tier as the query layer reads it: which days are compacted, a day's records in a key
range, and raw records by id, every blob read charged to the caller (docs/cold-tier.md "Reading").

The list of compacted days comes from one listing of the container (manifest names), cached for
CATALOG_SECONDS; manifests are cached as long, parsed footers longer (a committed file's name is
never rewritten). A merge deletes the superseded generation right after committing the new
manifest, so a cached manifest can name files that are gone: a scan then reloads the manifest and
resumes after the last key it yielded (order keys are unique, so nothing repeats or is skipped).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

from azure.core.exceptions import ResourceNotFoundError

from .. import keys
from ..index import Hit
from ..models import View
from . import idfilter, layout

if TYPE_CHECKING:  # pyarrow is imported on the first read of a compacted day, not with the query API
    from .reader import DayReader, FooterCache

CATALOG_SECONDS = 30.0  # as long as the hot index trusts its list of day tables
MANIFESTS = 1024  # cached manifests (a small day's is ~2 KB)
LOOKUP_THREADS = 16  # days probed in parallel by an id lookup, as the hot lookup does

Charge = Callable[[], None]


class ColdStore(Protocol):
    """What reading needs of collector/cold/store.py's ColdBlobStore."""

    def get(self, name: str) -> tuple[bytes, str] | None: ...

    def open(self, name: str, size: int | None = None) -> io.RawIOBase | IO[bytes]: ...

    def list(self, prefix: str) -> list[str]: ...


@dataclass(frozen=True)
class ColdFind:
    """A raw record found in the cold tier, or how far the search went."""

    raw: bytes | None
    day: str | None  # where it was found
    days: int  # days searched


class ColdView:
    """Compacted days for queries (see the module docstring)."""

    def __init__(self, store: ColdStore, tenant_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.clock = clock
        self._footers: FooterCache | None = None
        self._catalog: tuple[float, frozenset[str]] | None = None
        self._manifests: dict[str, tuple[float, layout.Manifest]] = {}
        self._filter_months: dict[str, str] = {}  # month → its id filter's blob, from the same listing
        self._filters: dict[str, idfilter.Header | None] = {}  # by blob name: a name's content never changes
        self._lock = threading.Lock()

    # ------------------------------------------------------------ which days

    def days(self, *, refresh: bool = False, max_age: float = CATALOG_SECONDS) -> frozenset[str]:
        """Compacted days (yyyyMMdd): those with a manifest, from a cached listing."""
        now = self.clock()
        cached = self._catalog
        if cached is None or refresh or now - cached[0] > max_age:
            try:
                names = self.store.list("")
            except ResourceNotFoundError:  # no cold container (yet): nothing is compacted
                names = []
            found = frozenset(n[:4] + n[5:7] + n[8:10] for n in names
                              if n.endswith("/" + layout.MANIFEST) and len(n) == 11 + len(layout.MANIFEST))
            self._filter_months = {m: n for n in sorted(names) if (m := idfilter.month_of_filter(n))}
            cached = (now, found)
            self._catalog = cached
        return cached[1]

    def age(self) -> float:
        """Seconds since the list of days was read (infinite before the first listing)."""
        return float("inf") if self._catalog is None else self.clock() - self._catalog[0]

    # ------------------------------------------------------------ a day's reader

    def reader(self, day: str, charge: Charge | None = None, *, fresh: bool = False) -> DayReader | None:
        """A DayReader whose blob reads call `charge`, or None when the day is not compacted."""
        from .reader import DayReader, FooterCache, load_manifest

        with self._lock:
            if self._footers is None:
                self._footers = FooterCache()
            footers = self._footers
        store: ColdStore = self.store if charge is None else _Charged(self.store, charge)
        manifest = None if fresh else self._cached(day)
        if manifest is None:
            loaded = load_manifest(store, day)
            if loaded is None:
                with self._lock:
                    self._manifests.pop(day, None)
                return None
            manifest = loaded[0]
            with self._lock:
                self._manifests[day] = (self.clock(), manifest)
                while len(self._manifests) > MANIFESTS:
                    self._manifests.pop(next(iter(self._manifests)))
        return DayReader(store, day, manifest, footers)

    def _cached(self, day: str) -> layout.Manifest | None:
        with self._lock:
            found = self._manifests.get(day)
        if found is None or self.clock() - found[0] > CATALOG_SECONDS:
            return None
        return found[1]

    # ------------------------------------------------------------ scans

    def scan(self, day: str, view: View, *, value: str | None = None, after: str | None = None,
             low: str | None = None, high: str | None = None, charge: Charge | None = None) -> Iterator[Hit]:
        """The day's records of `view` (time; user or operation `value`) newest first, with order
        keys in [low, high) strictly after `after`; nothing when the day is not compacted."""
        user = value if view == View.USER else None
        operation = value if view == View.OPERATION else None
        position = after
        for attempt in (0, 1):
            reader = self.reader(day, charge, fresh=attempt == 1)
            if reader is None:
                return
            try:
                for hit in reader.scan(user=user, operation=operation, after=position, low=low, high=high):
                    position = hit.key
                    yield hit
                return
            except ResourceNotFoundError:
                if attempt == 1:
                    raise  # the fresh manifest names a missing file: a damaged day, not a race

    # ------------------------------------------------------------ ids

    def find(self, record_id: str, days: list[str], charge: Charge | None = None) -> ColdFind:
        """The raw JSON bytes of the record with this Id in `days` (newest first), as the hot
        lookup searches: the tenant's own organization in every day first, then (only when that
        found nothing) another organization's record with the same Id; LOOKUP_THREADS days at a time."""

        def own(day: str) -> bytes | None:
            return self._raw(day, lambda reader: reader.raw(record_id, self.tenant_id, self.tenant_id), charge)

        def other(day: str) -> bytes | None:
            def probe(reader: DayReader) -> bytes | None:
                for key in reader.other_org_keys(record_id, self.tenant_id):
                    raw = reader.raw_by_key(key)
                    if raw is not None:
                        return raw
                return None
            return self._raw(day, probe, charge)

        if keys.kid(record_id):
            own_days, other_days = self._probes(record_id, days, charge)
            with ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="cold-lookup") as pool:
                for probe, wanted in ((own, own_days), (other, other_days)):
                    for start in range(0, len(wanted), 2 * LOOKUP_THREADS):  # newest first, in rounds
                        chunk = wanted[start:start + 2 * LOOKUP_THREADS]
                        for day, raw in zip(chunk, pool.map(probe, chunk), strict=True):
                            if raw is not None:
                                return ColdFind(raw, day, len(days))
        return ColdFind(None, None, len(days))

    def _probes(self, record_id: str, days: list[str], charge: Charge | None) -> tuple[list[str], list[str]]:
        """The days worth reading for the tenant's own record with this Id, and for another
        organization's: a month's id filter (idfilter.py) rules out the days it covers that cannot
        hold the key (one ranged read for the whole month); days it does not cover are all read."""
        key_hash = layout.key_hash(keys.kid(record_id))
        own: set[str] = set(days)
        other: set[str] = set(days)
        months = sorted({day[:6] for day in days})
        with ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="cold-filter") as pool:
            for verdict in pool.map(lambda m: self._filter_verdict(m, key_hash, charge), months):
                if verdict is None:
                    continue
                covered, holding, foreign = verdict
                own -= covered - holding
                other -= covered - foreign
        return [d for d in days if d in own], [d for d in days if d in other]

    def _filter_verdict(self, month: str, key_hash: int, charge: Charge | None
                        ) -> tuple[set[str], set[str], set[str]] | None:
        """(days the month's filter covers, those that may hold the key, those with other
        organizations' records), or None without a usable filter."""
        name = self._filter_months.get(month)
        if name is None:
            return None
        store: ColdStore = self.store if charge is None else _Charged(self.store, charge)
        try:
            header = self._filter_header(name, store)
            if header is None:
                return None
            block, _ = idfilter.positions(key_hash, header.blocks)
            offset, length = header.row(block)
            handle = store.open(name)
            handle.seek(offset)
            row = handle.read(length)
        except ResourceNotFoundError:  # replaced since the listing (a day of the month changed): read every day
            return None
        covered = {d.day for d in header.days}
        return covered, idfilter.candidates(header, row, key_hash), {d.day for d in header.days if d.other_orgs}

    def _filter_header(self, name: str, store: ColdStore) -> idfilter.Header | None:
        with self._lock:
            if name in self._filters:
                return self._filters[name]
        handle = store.open(name)
        prefix = handle.read(8)
        need, header = idfilter.parse_header(prefix)
        if header is None:
            prefix += handle.read(need - len(prefix))
            _, header = idfilter.parse_header(prefix)
        with self._lock:
            if len(self._filters) > MANIFESTS:
                self._filters.clear()
            self._filters[name] = header
        return header

    def _raw(self, day: str, read: Callable[[DayReader], bytes | None], charge: Charge | None) -> bytes | None:
        for attempt in (0, 1):
            reader = self.reader(day, charge, fresh=attempt == 1)
            if reader is None:
                return None
            try:
                return read(reader)
            except ResourceNotFoundError:
                if attempt == 1:
                    raise
        return None


class _Charged:
    """A store whose every read request (a GET, or one ranged read of an opened file) calls `charge`."""

    def __init__(self, store: ColdStore, charge: Charge) -> None:
        self.store = store
        self.charge = charge

    def get(self, name: str) -> tuple[bytes, str] | None:
        self.charge()
        return self.store.get(name)

    def open(self, name: str, size: int | None = None) -> io.RawIOBase:
        return _ChargedFile(self.store.open(name, size), self.charge)

    def list(self, prefix: str) -> list[str]:
        return self.store.list(prefix)


class _ChargedFile(io.RawIOBase):
    def __init__(self, inner: io.RawIOBase | IO[bytes], charge: Charge) -> None:
        super().__init__()
        self.inner = inner
        self.charge = charge

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if data:
            self.charge()
        return data or b""

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # RawIOBase takes any writable buffer
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()
