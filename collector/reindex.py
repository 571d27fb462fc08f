"""Reindex: rebuild the hot index and/or the cold tier of a time range from the raw archive.

Used after a normalizer change, or to bring a range the index no longer holds back into it
(`python -m collector reindex`, or a message on the reindex queue in Azure).

- Which blobs: the archive names each blob by content type and contentCreated
  (keys.archive_blob_name), so a range's blobs are listed by day prefix, `{contentType}/{yyyy}/{MM}/{dd}/`,
  from the day of `start` to the day of `end + late`. A blob can hold events days older than its
  contentCreated (docs/api-behaviour.md "Latency"), hence the look-ahead `late`; an event is never
  younger than the blob holding it, so blobs created before `start`'s day hold none of the range.
  Only records with start <= time < end are written.
- Hot: blobs in name order, WINDOW at a time, read and normalized in parallel, then written by the
  index's own `write` with the items ContentProcessor builds (collect.content_items): the same keys
  and bytes, so writing again changes nothing. A window's items are written in name order, so a
  record that two blobs hold (the API's duplicates) points at the later blob on every run.
- Cold: each day of the range compacted again in full from the hot index (Compactor.rebuild_day):
  a new generation, committed by its manifest, the old one in force until then.

Resumable: one checkpoint row per run in the state table (partition `reindex`, RowKey the run id
made of range and target) holds the phase, the last blob and the last day done. After a window's
entities are written the row moves to its last blob; after a day's manifest commits, to that day.
A run that dies anywhere is run again with the same arguments and continues after its checkpoint;
what it did since is done again, writing the same entities and names. A finished run's row says
`done`: the same command later starts over (another normalizer change).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from . import keys
from .cold.hot import blob_origin
from .collect import content_items, parse_records
from .errors import ConfigError, MessageFormatError
from .index import IndexItem
from .settings import CONTENT_TYPES
from .tables import TableClients
from .timeutil import Clock, SystemClock, format_iso, parse_time

if TYPE_CHECKING:
    from .cold.compaction import DayReport

log = logging.getLogger(__name__)

Target = Literal["hot", "cold", "both"]
TARGETS: tuple[Target, ...] = ("hot", "cold", "both")
# Blobs read, normalized and written per step; the checkpoint moves once per step. 32 blobs of
# ~250 records are ~32,000 entities: full batches across blobs, a few seconds of work to redo.
WINDOW = 32
READERS = 8  # archive blobs read at a time
LATE_CONTENT = timedelta(days=7)  # default look-ahead: content is listable for 7 days after its creation
# One queue-triggered run stops after this long and queues its own continuation: the host's
# functionTimeout is 30 minutes (host.json), and a cold day can take a few minutes to rebuild.
FUNCTION_SLICE_SECONDS = 20 * 60.0
CHECKPOINT_PARTITION = "reindex"


@dataclass(frozen=True)
class ReindexRequest:
    """What to rebuild: records with start <= time < end, into `target`."""

    start: datetime
    end: datetime
    target: Target = "hot"
    late: timedelta = LATE_CONTENT

    def __post_init__(self) -> None:
        problems = []
        if self.start.tzinfo is None or self.end.tzinfo is None:
            problems.append("start and end must carry a time zone (UTC)")
        elif self.end <= self.start:
            problems.append(f"end ({format_iso(self.end)}) must be after start ({format_iso(self.start)})")
        if self.target not in TARGETS:
            problems.append(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.late < timedelta(0):
            problems.append("the look-ahead for late content cannot be negative")
        if problems:
            raise ConfigError(problems)

    @property
    def run_id(self) -> str:
        """The checkpoint's key: the same arguments continue the same run."""
        late = int(self.late.total_seconds())
        return f"{self.start:%Y%m%dT%H%M%S}Z-{self.end:%Y%m%dT%H%M%S}Z-{self.target}-{late}"

    @property
    def days(self) -> list[str]:
        """Days (yyyyMMdd) the range touches, oldest first."""
        return list(reversed(keys.days_newest_first(self.start, self.end)))

    def encode(self) -> str:
        return json.dumps({"start": format_iso(self.start), "end": format_iso(self.end), "target": self.target,
                           "lateHours": self.late.total_seconds() / 3600})

    @classmethod
    def decode(cls, body: bytes | str) -> ReindexRequest:
        """A queue message {"start", "end", "target"[, "lateHours"]}; MessageFormatError if it is not one."""
        try:
            data = json.loads(body)
            late = timedelta(hours=float(data.get("lateHours", LATE_CONTENT.total_seconds() / 3600)))
            return cls(parse_time(str(data["start"])), parse_time(str(data["end"])), data.get("target", "hot"), late)
        except (ValueError, TypeError, KeyError, AttributeError, ConfigError) as exc:
            raise MessageFormatError(f"not a reindex request ({exc}): {str(body)[:200]!r}") from exc


@dataclass(frozen=True)
class Checkpoint:
    run_id: str
    status: str = "running"  # running | done
    phase: str = "hot"  # hot | cold
    blob: str = ""  # the last archive blob whose records are written
    day: str = ""  # the last day whose cold files are rebuilt
    blobs: int = 0
    records: int = 0
    entities: int = 0
    started_at: datetime | None = None
    updated_at: datetime | None = None

    def but(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)


@dataclass(frozen=True)
class Progress:
    """Where a run is: blobs done of those listed in the range, and the cold days done."""

    blobs_done: int
    blobs: int
    records: int
    days_done: int = 0
    days: int = 0


def bar(progress: Progress, width: int = 30) -> str:
    """A plain-text progress bar: `[#####.....]  50% 10/20 blobs, 2,500 records` (and the cold days)."""
    steps = progress.blobs + progress.days
    done = progress.blobs_done + progress.days_done
    share = done / steps if steps else 1.0
    filled = int(share * width)
    text = (f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%} {progress.blobs_done:,}/{progress.blobs:,} blobs, "
            f"{progress.records:,} records")
    return text + (f", {progress.days_done}/{progress.days} cold days" if progress.days else "")


@dataclass
class ReindexReport:
    run_id: str
    finished: bool = False
    resumed: bool = False  # continued after an earlier run's checkpoint
    blobs: int = 0  # blobs listed in the range
    blobs_read: int = 0  # of them read by this run
    records: int = 0  # records written by this run
    entities: int = 0
    days: list[tuple[str, str]] = field(default_factory=list)  # (day, cold action) of this run


# ------------------------------------------------------------------ collaborators


class ArchiveBlobs(Protocol):
    def names(self, prefix: str) -> Iterable[str]: ...

    def body(self, name: str) -> bytes: ...


class IndexWriter(Protocol):
    def write(self, items: Iterable[IndexItem]) -> int: ...


class ColdRebuilder(Protocol):
    def rebuild_day(self, day: str) -> DayReport: ...


class CheckpointStore(Protocol):
    def load(self, run_id: str) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...


class RequestQueue(Protocol):
    def send(self, request: ReindexRequest) -> None: ...


# ------------------------------------------------------------------ the use case


def range_blobs(archive: ArchiveBlobs, request: ReindexRequest, content_types: Iterable[str] = CONTENT_TYPES) -> list[str]:
    """Names of the archive blobs that can hold records of the range, in name order."""
    last = request.end + request.late
    names: list[str] = []
    for content_type in content_types:
        for day in reversed(keys.days_newest_first(request.start, last)):
            prefix = f"{content_type}/{day[:4]}/{day[4:6]}/{day[6:]}/"
            names.extend(name for name in archive.names(prefix) if blob_origin(name)[1] < last)
    return sorted(names)


def blob_items(body: bytes, name: str) -> list[IndexItem]:
    """The index items of an archived blob, as ContentProcessor built them: its name holds the
    content type and contentCreated normalization needs (keys.archive_blob_name)."""
    content_type, created = blob_origin(name)
    return content_items(parse_records(body, name), content_type, created, name)


class Reindexer:
    """Rebuilds a range of the index from the archive (see the module docstring)."""

    def __init__(self, archive: ArchiveBlobs, index: IndexWriter, checkpoints: CheckpointStore, *,
                 cold: Callable[[], ColdRebuilder] | None = None, content_types: Iterable[str] = CONTENT_TYPES,
                 clock: Clock | None = None, window: int = WINDOW, readers: int = READERS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.archive = archive
        self.index = index
        self.checkpoints = checkpoints
        self.cold = cold  # built on first use: the cold tier imports pyarrow
        self.content_types = tuple(content_types)
        self.clock = clock or SystemClock()
        self.window = max(1, window)
        self.readers = max(1, readers)
        self.monotonic = monotonic

    def run(self, request: ReindexRequest, *, progress: Callable[[Progress], None] | None = None,
            deadline: float | None = None, restart: bool = False) -> ReindexReport:
        """Rebuild `request`'s range, continuing an unfinished run of the same arguments unless
        `restart`. With `deadline` (monotonic seconds), stop after the step that passes it: the
        report says `finished=False` and the next run continues."""
        now = self.clock.now()
        saved = None if restart else self.checkpoints.load(request.run_id)
        resumed = saved is not None and saved.status != "done"
        checkpoint = saved if saved is not None and resumed else Checkpoint(request.run_id, started_at=now)
        report = ReindexReport(request.run_id, resumed=resumed)
        names = range_blobs(self.archive, request, self.content_types) if request.target != "cold" else []
        report.blobs = len(names)
        days = request.days if request.target != "hot" else []
        log.info("reindex.start %s: %d blobs, %d cold days%s", request.run_id, len(names), len(days),
                 " (resumed)" if resumed else "",
                 extra={"runId": request.run_id, "blobs": len(names), "days": len(days), "resumed": resumed})

        def tell(cp: Checkpoint) -> None:
            if progress is not None:
                done = sum(1 for d in days if d <= cp.day) if cp.phase == "cold" else 0
                progress(Progress(cp.blobs if cp.phase == "hot" else len(names), len(names), cp.records,
                                  done, len(days)))

        if checkpoint.phase == "hot" and request.target != "cold":
            todo = [name for name in names if name > checkpoint.blob]
            checkpoint = checkpoint.but(blobs=len(names) - len(todo))
            tell(checkpoint)
            for window in _windows(todo, self.window):
                if deadline is not None and self.monotonic() > deadline:
                    return report
                records, entities = self._write(window, request)
                checkpoint = checkpoint.but(blob=window[-1], blobs=checkpoint.blobs + len(window),
                                            records=checkpoint.records + records,
                                            entities=checkpoint.entities + entities, updated_at=self.clock.now())
                self.checkpoints.save(checkpoint)  # after the window's entities are written
                report.blobs_read += len(window)
                report.records += records
                report.entities += entities
                tell(checkpoint)
        if request.target != "hot":
            checkpoint = checkpoint.but(phase="cold")
            tell(checkpoint)
            rebuilder = None
            for day in days:
                if day <= checkpoint.day:
                    continue
                if deadline is not None and self.monotonic() > deadline:
                    self.checkpoints.save(checkpoint)
                    return report
                rebuilder = rebuilder or self._cold()
                result = rebuilder.rebuild_day(day)
                report.days.append((day, result.action))
                log.info("reindex.cold_day %s %s: %d records", day, result.action, result.records,
                         extra={"runId": request.run_id, "day": day, "action": result.action, "records": result.records})
                checkpoint = checkpoint.but(day=day, updated_at=self.clock.now())
                self.checkpoints.save(checkpoint)  # after the day's manifest is committed
                tell(checkpoint)
        self.checkpoints.save(checkpoint.but(status="done", updated_at=self.clock.now()))
        report.finished = True
        log.info("reindex.done %s: %d blobs read, %d records, %d entities, %d cold days", request.run_id,
                 report.blobs_read, report.records, report.entities, len(report.days),
                 extra={"runId": request.run_id, "blobsRead": report.blobs_read, "records": report.records,
                        "entities": report.entities, "days": len(report.days)})
        return report

    def _cold(self) -> ColdRebuilder:
        if self.cold is None:
            raise ConfigError(["this reindexer has no cold tier: use target hot"])
        return self.cold()

    def _write(self, window: list[str], request: ReindexRequest) -> tuple[int, int]:
        """Read, normalize and write one window of blobs; (records, entities) written."""
        def items_of(name: str) -> list[IndexItem]:
            return [item for item in blob_items(self.archive.body(name), name)
                    if request.start <= item.when < request.end]

        with ThreadPoolExecutor(max_workers=min(self.readers, len(window))) as pool:
            per_blob = list(pool.map(items_of, window))  # in name order, whatever finished first
        items = [item for blob in per_blob for item in blob]
        return len(items), (self.index.write(items) if items else 0)


def _windows(names: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(names), size):
        yield names[i:i + size]


def run_message(reindexer: Reindexer, queue: RequestQueue, body: bytes | str, *,
                seconds: float = FUNCTION_SLICE_SECONDS) -> ReindexReport:
    """The queue function: one slice of the requested run; an unfinished run queues its continuation
    (the same request: the checkpoint says where it stands) before this message completes."""
    request = ReindexRequest.decode(body)
    report = reindexer.run(request, deadline=time.monotonic() + seconds)
    if not report.finished:
        queue.send(request)
        log.info("reindex.continued %s after %d blobs", request.run_id, report.blobs_read,
                 extra={"runId": request.run_id, "blobsRead": report.blobs_read})
    return report


# ------------------------------------------------------------------ storage adapters


class CheckpointTable:
    """Reindex checkpoints: rows of the state table (`{p}state`) in partition `reindex`."""

    def __init__(self, clients: TableClients, prefix: str) -> None:
        self.name = keys.state_table(prefix)
        self.clients = clients

    def load(self, run_id: str) -> Checkpoint | None:
        try:
            row = self.clients.get(self.name).get_entity(CHECKPOINT_PARTITION, run_id)
        except ResourceNotFoundError:
            return None
        return Checkpoint(run_id, status=str(row.get("status", "running")), phase=str(row.get("phase", "hot")),
                          blob=str(row.get("blob", "")), day=str(row.get("day", "")), blobs=int(row.get("blobs", 0)),
                          records=int(row.get("records", 0)), entities=int(row.get("entities", 0)),
                          started_at=_time(row.get("startedAt")), updated_at=_time(row.get("updatedAt")))

    def save(self, checkpoint: Checkpoint) -> None:
        entity = {"PartitionKey": CHECKPOINT_PARTITION, "RowKey": checkpoint.run_id, "status": checkpoint.status,
                  "phase": checkpoint.phase, "blob": checkpoint.blob, "day": checkpoint.day,
                  "blobs": checkpoint.blobs, "records": checkpoint.records, "entities": checkpoint.entities,
                  "startedAt": format_iso(checkpoint.started_at) if checkpoint.started_at else "",
                  "updatedAt": format_iso(checkpoint.updated_at) if checkpoint.updated_at else ""}
        # write: creates the state table if it is missing
        self.clients.write(self.name, lambda table: table.upsert_entity(entity, mode=UpdateMode.REPLACE))


def _time(value: object) -> datetime | None:
    return parse_time(str(value)) if value else None


class ReindexQueue:
    """The reindex queue (AUDIT_REINDEX_QUEUE): base64 JSON requests, as the Functions trigger expects."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        self.client = service.get_queue_client(name, message_encode_policy=TextBase64EncodePolicy(),
                                               message_decode_policy=TextBase64DecodePolicy())

    @property
    def name(self) -> str:
        return str(self.client.queue_name)

    def ensure(self) -> None:
        try:
            self.client.create_queue()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code != 403:  # created by the template; the role may not allow creating
                raise

    def send(self, request: ReindexRequest) -> None:
        self.client.send_message(request.encode())
