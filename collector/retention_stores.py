"""The three tiers as retention sees them (collector/retention.py's protocols): which days each
holds, and deleting a day. Day listings walk the blob names' date folders with a delimiter, so a
listing costs a few requests per year and month, never one per blob:

- hot index: the day tables of every view (collector/index.py);
- cold tier: `{yyyy}/{MM}/{dd}/...` (collector/cold/layout.py), one flat listing per month;
- raw archive: `{contentType}/{yyyy}/{MM}/{dd}/{HH}/...` (collector/keys.py archive_blob_name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobPrefix, ContainerClient

from . import keys
from .cold.layout import MANIFEST, day_prefix
from .cold.store import ColdBlobStore
from .index import AuditIndex
from .models import View
from .retention import ArchiveBlob

log = logging.getLogger(__name__)


def _folders(container: ContainerClient, prefix: str) -> list[str]:
    """The `name/` folders directly under `prefix` (names without the prefix and slash), sorted;
    none while the container does not exist yet (the cold container before the first compaction)."""
    try:
        found = [item.name[len(prefix):].rstrip("/") for item in container.walk_blobs(name_starts_with=prefix, delimiter="/")
                 if isinstance(item, BlobPrefix)]
    except ResourceNotFoundError:
        return []
    return sorted(found)


def _dated(container: ContainerClient, prefix: str, before: str | None) -> Iterator[tuple[str, str]]:
    """(yyyyMM, `prefix`yyyy/MM/) of every month folder under `prefix` that may hold a day before
    `before`, oldest first."""
    for year in _folders(container, prefix):
        if not (len(year) == 4 and year.isdigit()) or (before is not None and year > before[:4]):
            continue
        for month in _folders(container, f"{prefix}{year}/"):
            if not (len(month) == 2 and month.isdigit()) or (before is not None and year + month > before[:6]):
                continue
            yield year + month, f"{prefix}{year}/{month}/"


class HotDays:
    """The hot index's day tables."""

    def __init__(self, index: AuditIndex) -> None:
        self.index = index

    def days(self) -> dict[str, bool]:
        ids = self.index.tables(View.ID, refresh=True)
        every = set(ids).union(*(self.index.tables(v, refresh=True) for v in keys.VIEWS if v != View.ID))
        return {day: day in ids for day in sorted(every)}

    def drop_day(self, day: str) -> list[str]:
        return self.index.drop_day(day)


class ColdDays:
    """The cold container's day folders. Deletion goes through the cold store's careful delete
    (never a blob under an immutability policy or legal hold: collector/cold/store.py)."""

    def __init__(self, store: ColdBlobStore) -> None:
        self.store = store
        self.container = store.container

    def days(self, before: str | None = None) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for _month, prefix in _dated(self.container, "", before):
            out.update((day, done) for day, done in self._month(prefix).items() if before is None or day < before)
        return dict(sorted(out.items()))

    def oldest(self) -> str | None:
        for _month, prefix in _dated(self.container, "", None):
            committed = sorted(day for day, done in self._month(prefix).items() if done)
            if committed:
                return committed[0]
        return None

    def _month(self, prefix: str) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for blob in self.container.list_blobs(name_starts_with=prefix):
            parts = blob.name.split("/")
            day = "".join(parts[:3])
            if len(parts) >= 4 and len(day) == 8 and day.isdigit():
                out[day] = out.get(day, False) or (len(parts) == 4 and parts[3] == MANIFEST)
        return out

    def delete_day(self, day: str) -> tuple[int, int]:
        prefix = day_prefix(day)
        names = sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))
        # The manifest first: without it the day reads as "not compacted", never half deleted.
        names.sort(key=lambda n: n != prefix + MANIFEST)
        deleted = sum(1 for name in names if self.store.delete(name))
        return deleted, len(names) - deleted


class ArchiveDays:
    """The raw archive's day folders across content types."""

    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    def _types(self) -> list[str]:
        return _folders(self.container, "")

    def days(self, before: str | None = None) -> list[str]:
        found: set[str] = set()
        for content_type in self._types():
            for month, prefix in _dated(self.container, f"{content_type}/", before):
                for dd in _folders(self.container, prefix):
                    day = month + dd
                    if len(day) == 8 and day.isdigit() and (before is None or day < before):
                        found.add(day)
        return sorted(found)

    def oldest(self) -> str | None:
        first: list[str] = []
        for content_type in self._types():
            for month, prefix in _dated(self.container, f"{content_type}/", None):
                days = [d for d in _folders(self.container, prefix) if len(d) == 2 and d.isdigit()]
                if days:
                    first.append(month + days[0])
                    break
        return min(first) if first else None

    def blobs(self, day: str) -> Iterator[ArchiveBlob]:
        for content_type in self._types():
            prefix = f"{content_type}/{day[:4]}/{day[4:6]}/{day[6:]}/"
            for blob in self.container.list_blobs(name_starts_with=prefix, include=["immutabilitypolicy", "legalhold"]):
                policy = blob.immutability_policy
                until = policy.expiry_time if policy is not None else None
                created: datetime = blob.creation_time
                yield ArchiveBlob(blob.name, created, until, bool(blob.has_legal_hold))

    def delete(self, name: str) -> bool:
        try:
            self.container.delete_blob(name)
        except ResourceNotFoundError:
            return False  # deleted meanwhile (the lifecycle rule, another run)
        except HttpResponseError as exc:
            if exc.status_code in (403, 409):  # the service enforces a WORM policy we did not see
                log.warning("retention.archive_refused %s: %s", name, exc.status_code, extra={"blob": name})
                return False
            raise
        return True
