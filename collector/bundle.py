"""Raw archive bundles: a closed day's content blobs of one content type joined into a few large blobs.

Why (docs/archive-bundles.md): once raw blobs reach the Cool, Cold and Archive tiers, every blob
costs per-blob operations (each tier change is a write, an Archive read is $5 per 10,000) and
per-blob metadata overhead, whatever its size; a 10,000-seat tenant writes about 8,000 content
blobs a day. A bundle holds them back to back as they were stored, so every original is still its
exact bytes: the byte range `[offset, offset + length)` of its bundle is the original gzip blob (a
bundle is itself a valid multi-member gzip stream).

Per day prefix `{contentType}/{yyyy}/{MM}/{dd}/`:

    _bundle-{generation:03d}.gz   originals back to back, at most MAX_BUNDLE_BYTES each
    _bundle.json                  the commit point: {"format": 1, "members": {name: [bundle, offset, length]}}

A pass, crash-safe at every step: list the day's originals; upload new bundles (a rerun after a
crash rewrites the same generation names); write `_bundle.json` (ETag-guarded, so two passes
cannot both commit); only then delete the originals. A name the index holds is always readable,
from its original or from its bundle, so readers never miss a record. Days are bundled only
once the API can no longer deliver content for them (CLOSED_AFTER), and never in a container
under an immutability policy (originals there cannot be deleted, so a bundle would only add bytes).
"""

from __future__ import annotations

import gzip
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO, Protocol

from .errors import BundleFormatError, CollectorError, ConfigError, NotFoundError
from .timeutil import Clock

log = logging.getLogger(__name__)

FORMAT = 1
INDEX = "_bundle.json"
BUNDLE_PREFIX = "_bundle"
MAX_BUNDLE_BYTES = 128 * 1024 * 1024  # one rehydration unit; ~2,500 content blobs of ~50 KB
# Content is listed for 7 days and a queued or failed blob may still be fetched until its
# contentExpiration (created + 7 days): a day is final a day after that.
CLOSED_AFTER = timedelta(days=8)


def day_prefix(name: str) -> str:
    """`{contentType}/{yyyy}/{MM}/{dd}/` of an archive blob name (keys.archive_blob_name)."""
    parts = name.split("/")
    if len(parts) < 5:
        raise ValueError(f"not an archive blob name: {name!r}")
    return "/".join(parts[:4]) + "/"


def is_bundle_file(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith(BUNDLE_PREFIX)


@dataclass
class BundleIndex:
    members: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name → (bundle, offset, length)

    def to_bytes(self) -> bytes:
        members = {name: [bundle, offset, length] for name, (bundle, offset, length) in sorted(self.members.items())}
        return json.dumps({"format": FORMAT, "members": members}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> BundleIndex:
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT:
                raise BundleFormatError(f"bundle index format {body.get('format')!r}; this version reads {FORMAT}")
            return cls({str(k): (str(v[0]), int(v[1]), int(v[2])) for k, v in body["members"].items()})
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise BundleFormatError(f"unreadable bundle index: {exc}") from None

    def generations(self) -> int:
        return len({bundle for bundle, _, _ in self.members.values()})


class BundleStore(Protocol):
    """What bundling needs of the archive container (RawArchive's blob seam)."""

    def list_sizes(self, prefix: str) -> dict[str, int]: ...  # name → stored bytes, in name order

    def stored(self, name: str) -> bytes: ...  # the stored (gzip) bytes; NotFoundError if absent

    def get_index(self, name: str) -> tuple[bytes, str] | None: ...  # (bytes, etag)

    def put_index(self, name: str, data: bytes, etag: str | None) -> None: ...  # etag None: must not exist

    def put_file(self, name: str, handle: IO[bytes], length: int) -> None: ...  # overwrites

    def size(self, name: str) -> int | None: ...

    def delete(self, name: str) -> bool: ...  # False: kept (immutability, legal hold) or gone

    def immutable(self) -> bool: ...  # the container has a time-based retention policy or legal hold


@dataclass
class DayBundled:
    prefix: str
    bundled: int = 0  # originals added to bundles in this pass
    deleted: int = 0  # originals deleted (all of them already in a committed bundle)
    kept: int = 0  # originals that could not be deleted (immutability, legal hold)
    bytes: int = 0


@dataclass
class BundleReport:
    days: list[DayBundled] = field(default_factory=list)
    skipped: str = ""  # why nothing was done (immutability)

    @property
    def bundled(self) -> int:
        return sum(d.bundled for d in self.days)


class Bundler:
    """Bundles closed days of the raw archive (the compaction timer and `python -m collector bundle`)."""

    def __init__(self, store: BundleStore, content_types: Iterable[str], *, clock: Clock,
                 max_bundle_bytes: int = MAX_BUNDLE_BYTES) -> None:
        self.store = store
        self.content_types = tuple(content_types)
        self.clock = clock
        self.max_bundle_bytes = max_bundle_bytes

    def last_closed_day(self) -> date:
        return (self.clock.now().astimezone(UTC) - CLOSED_AFTER).date() - timedelta(days=1)

    def run(self, *, since: date | None = None, through: date | None = None,
            progress: Callable[[str], None] | None = None) -> BundleReport:
        """Bundle every day from `since` (default: a week before the last closed day, so a missed
        run catches up) to `through` (default: the last closed day) of every content type. A day
        with nothing new costs two requests per content type (its index and its listing)."""
        if self.store.immutable():
            return BundleReport(skipped="the archive container has an immutability policy: its blobs cannot be "
                                        "deleted, so bundles would only add bytes")
        # --through forces open days too (late content then makes a new generation), never the future
        last = min(through, self.clock.now().astimezone(UTC).date()) if through else self.last_closed_day()
        report = BundleReport()
        day = since or last - timedelta(days=6)
        while day <= last:
            for content_type in self.content_types:
                done = self.bundle_day(f"{content_type}/{day:%Y/%m/%d}/")
                if done.bundled or done.deleted or done.kept:
                    report.days.append(done)
                    if progress is not None:
                        progress(f"{done.prefix}: {done.bundled} bundled, {done.deleted} deleted, {done.kept} kept")
            day += timedelta(days=1)
        return report

    def bundle_day(self, prefix: str) -> DayBundled:
        result = DayBundled(prefix)
        found = self.store.get_index(prefix + INDEX)
        index, etag = (BundleIndex.from_bytes(found[0]), found[1]) if found else (BundleIndex(), None)
        sizes = {n: size for n, size in self.store.list_sizes(prefix).items() if not is_bundle_file(n) and n.count("/") == 5}
        originals = list(sizes)
        new = [n for n in originals if n not in index.members]
        if new:
            generation = index.generations()
            for chunk in self._chunks(new, sizes):
                generation += 1
                bundle = f"{prefix}{BUNDLE_PREFIX}-{generation:03d}.gz"
                members = self._write_bundle(bundle, chunk)
                index.members.update(members)
                result.bundled += len(members)
                result.bytes += sum(length for _, _, length in members.values())
            self.store.put_index(prefix + INDEX, index.to_bytes(), etag)  # the commit point
            log.info("bundle.committed prefix=%s members=%d", prefix, result.bundled,
                     extra={"prefix": prefix, "members": result.bundled, "bytes": result.bytes})
        for name in originals:  # every one is in a committed bundle now
            if self.store.delete(name):
                result.deleted += 1
            else:
                result.kept += 1
        return result

    def _chunks(self, names: list[str], sizes: dict[str, int]) -> Iterator[list[tuple[str, int]]]:
        """`names` in bundles of at most max_bundle_bytes, by the sizes the listing gave."""
        chunk: list[tuple[str, int]] = []
        total = 0
        for name in names:
            size = sizes[name]
            if chunk and total + size > self.max_bundle_bytes:
                yield chunk
                chunk, total = [], 0
            chunk.append((name, size))
            total += size
        if chunk:
            yield chunk

    def _write_bundle(self, bundle: str, chunk: list[tuple[str, int]]) -> dict[str, tuple[str, int, int]]:
        """Spool the originals to a temporary file (memory stays flat), check each is one gzip
        stream, upload, and check the uploaded size."""
        members: dict[str, tuple[str, int, int]] = {}
        with tempfile.TemporaryFile() as spool:
            offset = 0
            for name, _ in chunk:
                try:
                    data = self.store.stored(name)
                except NotFoundError:
                    continue  # deleted since the listing (another pass committed it)
                gzip.decompress(data)  # a damaged original fails here, before anything is committed
                spool.write(data)
                members[name] = (bundle, offset, len(data))
                offset += len(data)
            spool.seek(0)
            self.store.put_file(bundle, spool, offset)
        stored = self.store.size(bundle)
        if stored != offset:
            raise CollectorError(f"bundle {bundle} was not stored whole ({stored} of {offset} bytes)")
        return members


class BundleReader:
    """Reads an original that was bundled: the day's index (cached), then one ranged read."""

    def __init__(self, get_index: Callable[[str], tuple[bytes, str] | None],
                 read_range: Callable[[str, int, int], bytes]) -> None:
        self.get_index = get_index
        self.read_range = read_range
        self._indexes: dict[str, BundleIndex] = {}

    def _index(self, prefix: str, *, fresh: bool) -> BundleIndex:
        if fresh or prefix not in self._indexes:
            found = self.get_index(prefix + INDEX)
            if len(self._indexes) > 256:
                self._indexes.clear()
            self._indexes[prefix] = BundleIndex.from_bytes(found[0]) if found else BundleIndex()
        return self._indexes[prefix]

    def stored(self, name: str) -> bytes | None:
        """The original's stored (gzip) bytes from its bundle, or None if no bundle holds it."""
        try:
            prefix = day_prefix(name)
        except ValueError:
            return None
        cached = prefix in self._indexes
        member = self._index(prefix, fresh=False).members.get(name)
        if member is None and cached:  # the cached index may predate the bundle: ask once more
            member = self._index(prefix, fresh=True).members.get(name)
        if member is None:
            return None
        bundle, offset, length = member
        return self.read_range(bundle, offset, length)

    def names(self, prefix: str, listed: Iterable[str]) -> list[str]:
        """Original names under `prefix`: those `listed` (minus bundle files) and the members of
        every bundle index that covers `prefix`, sorted and without repeats."""
        names = {n for n in listed if not is_bundle_file(n)}
        indexes = {n[: -len(INDEX)] for n in listed if n.endswith("/" + INDEX)}
        if prefix.count("/") >= 4:
            indexes.add("/".join(prefix.split("/")[:4]) + "/")
        for day in indexes:
            names.update(n for n in self._index(day, fresh=True).members if n.startswith(prefix))
        return sorted(names)


def parse_day(text: str, option: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise ConfigError([f"{option} must be a day as YYYY-MM-DD, got {text!r}"]) from None
