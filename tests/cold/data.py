"""Shared helpers of the cold-tier tests: a synthetic hot day and in-memory fakes of compaction's
Protocols (collector/cold/compaction.py), including one that raises at the n-th call."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import GeneratorType
from typing import IO, Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

from collector import api, keys
from collector.index import IndexItem, entry_from_entity, view_payload
from collector.models import AuditEntry, ContentRef
from collector.normalize import normalize_record
from simulator.synthetic import generate_blobs
from tests.constants import OTHER_ORG, TENANT

DAY = "20240506"
DAY_START = datetime(2024, 5, 6, tzinfo=UTC)


@dataclass
class Blob:
    ref: ContentRef
    name: str
    body: bytes


def synthetic_blobs(records_per_hour: float, hours: float = 24.0, seed: int = 5, start: datetime = DAY_START,
                    users: int = 300) -> list[Blob]:
    """Content blobs (as the API would deliver them) with events in [start, start + hours)."""
    _, specs = generate_blobs(TENANT, start, start + timedelta(hours=hours), records_per_hour, seed=seed, users=users)
    out = []
    for number, spec in enumerate(specs):
        ref = ContentRef(spec.content_type, f"content-{seed}-{number}", f"https://example.invalid/{number}",
                         spec.content_created, spec.content_created + timedelta(days=7))
        out.append(Blob(ref, keys.archive_blob_name(ref.content_type, ref.content_id, ref.content_created), spec.body))
    return out


def special_blob(when: datetime) -> Blob:
    """Records that stress normalization and raw fidelity: another organization, a lone surrogate,
    non-ASCII text, an upper-case Id, a missing Id, a 2,000-character ObjectId."""
    records = [
        {"Id": "AAAAAAAA-0000-4000-8000-000000000001", "CreationTime": f"{when:%Y-%m-%dT%H:%M:%S}",
         "Operation": "FileAccessed", "UserId": "Zoë@Contoso.com", "OrganizationId": TENANT.upper(),
         "Workload": "SharePoint", "ObjectId": "x" * 2000, "RecordType": 6, "ClientIP": "[2001:db8::5]:443"},
        {"Id": "aaaaaaaa-0000-4000-8000-000000000002", "CreationTime": f"{when:%Y-%m-%dT%H:%M:%S}",
         "Operation": "MailItemsAccessed", "UserId": "other@fabrikam.com", "OrganizationId": OTHER_ORG,
         "Workload": "Exchange", "Subject": "caf\u00e9 \ud83d\ude00 \ud800 lone", "RecordType": "2"},
        {"CreationTime": f"{when:%Y-%m-%dT%H:%M:%S}", "Operation": "NoId", "UserId": "svc", "OrganizationId": TENANT},
    ]
    body = json.dumps(records, ensure_ascii=True).encode()  # the \ud800 escape survives as the API sends it
    ref = ContentRef("Audit.SharePoint", "special", "https://example.invalid/special", when + timedelta(minutes=30),
                     when + timedelta(days=7))
    return Blob(ref, keys.archive_blob_name(ref.content_type, ref.content_id, ref.content_created), body)


def index_items(blob: Blob) -> list[IndexItem]:
    """What ContentProcessor indexes for a blob (collector/collect.py)."""
    items = []
    for position, record in enumerate(json.loads(blob.body)):
        entry, when = normalize_record(record, blob.ref.content_type, blob.ref.content_created)
        items.append(IndexItem(entry, when, blob.name, position))
    return items


@dataclass
class HotRecord:
    order_key: str
    entry: AuditEntry  # as the hot index returns it
    raw: bytes  # as /api/audit/{id} returns it
    blob: str
    position: int


@dataclass
class HotDay:
    """A hot index in memory: the id view, the archive, and what the hot tier answers per record."""

    ids: dict[str, dict[str, tuple[str, int, datetime]]] = field(default_factory=dict)  # day → key → (blob, pos, written)
    blobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hot: dict[str, dict[str, HotRecord]] = field(default_factory=dict)  # day → key → record
    written_at: datetime = DAY_START + timedelta(days=1)

    def add(self, blob: Blob) -> None:
        records = json.loads(blob.body)
        self.blobs[blob.name] = records
        for item in index_items(blob):
            # The hot index's order key and its payload codec (what its scans return); the index's
            # entity layout is its own business (collector/index.py).
            day = keys.day_of(item.when)
            order = keys.order_key(item.when, item.entry.id, item.entry.organizationId, TENANT)
            key = order[10:]
            entry = entry_from_entity(order, {"d": view_payload(item.entry, TENANT)}, TENANT)
            self.ids.setdefault(day, {})[key] = (blob.name, item.position, self.written_at)
            self.hot.setdefault(day, {})[key] = HotRecord(order, entry, api.json_bytes(records[item.position]),
                                                          blob.name, item.position)

    # -- compaction's Protocols

    def days(self) -> list[str]:
        return sorted(self.ids)

    def locations(self, day: str, since: datetime | None = None) -> Iterator[tuple[str, str, int]]:
        for key, (blob, position, written) in sorted(self.ids.get(day, {}).items()):
            if since is None or written >= since:
                yield key, blob, position

    def records(self, name: str) -> list[dict[str, Any]]:
        return self.blobs[name]


class MemoryStore:
    """The cold container in memory, with etags, ages and blobs under an immutability policy."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, int]] = {}
        self.immutable: set[str] = set()
        self.etag = 0
        self.requests = 0
        self.aged: set[str] = set()  # names that count as ORPHAN_AGE old

    def _put(self, name: str, data: bytes) -> None:
        self.etag += 1
        self.blobs[name] = (data, self.etag)

    def put_file(self, name: str, path: Path) -> int:
        data = path.read_bytes()
        self._put(name, data)
        return len(data)

    def get(self, name: str) -> tuple[bytes, str] | None:
        self.requests += 1
        found = self.blobs.get(name)
        return None if found is None else (found[0], str(found[1]))

    def put_manifest(self, name: str, data: bytes, etag: str | None) -> None:
        current = self.blobs.get(name)
        if etag is None and current is not None:
            raise ResourceExistsError("the manifest exists")
        if etag is not None and (current is None or str(current[1]) != etag):
            raise ResourceModifiedError("the manifest changed")
        self._put(name, data)

    def size(self, name: str) -> int | None:
        found = self.blobs.get(name)
        return None if found is None else len(found[0])

    def list(self, prefix: str) -> list[str]:
        return sorted(n for n in self.blobs if n.startswith(prefix))

    def age(self, name: str) -> timedelta | None:
        if name not in self.blobs:
            return None
        return timedelta(days=1) if name in self.aged else timedelta(0)

    def delete(self, name: str) -> bool:
        if name in self.immutable or name not in self.blobs:
            return False
        del self.blobs[name]
        return True

    def open(self, name: str, size: int | None = None) -> IO[bytes]:
        self.requests += 1
        return io.BytesIO(self.blobs[name][0])


class InjectedFault(Exception):
    """The crash a FaultPlan injects."""


class FaultPlan:
    """Counts calls through every `Faulty` proxy it made and raises InjectedFault at call `fail_at`."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0
        self.names: list[str] = []
        self._lock = threading.Lock()  # compaction reads archive blobs from several threads

    def wrap(self, target: Any, label: str) -> Any:
        return Faulty(target, label, self)

    def tick(self, name: str) -> None:
        with self._lock:
            self.calls += 1
            self.names.append(name)
            failing = self.fail_at is not None and self.calls == self.fail_at
            number = self.calls
        if failing:
            raise InjectedFault(f"crash at call {number}: {name}")


class Faulty:
    """A proxy of one collaborator: every method call (and every item of a returned iterator) ticks the plan."""

    def __init__(self, target: Any, label: str, plan: FaultPlan) -> None:
        self._target = target
        self._label = label
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        if not callable(method):
            return method
        label = f"{self._label}.{name}"

        def call(*args: Any, **kwargs: Any) -> Any:
            self._plan.tick(label)
            result = method(*args, **kwargs)
            if isinstance(result, GeneratorType):
                return self._iterate(label, result)
            return result
        return call

    def _iterate(self, label: str, items: Iterable[Any]) -> Iterator[Any]:
        for number, item in enumerate(items):
            if number % 50 == 49:
                self._plan.tick(label + "[item]")
            yield item
