"""A realistic synthetic tenant: audit events of every content type, grouped into content blobs the
way the service does it — with latency, out-of-order records, duplicates and late blobs (docs/api-behaviour.md
"Duplicates and late content", "Record schema"; quoted headings below are sections of that page).

Model (deterministic for a seed):
1. Events: `records_per_hour` on average over [start, end), shaped by a working-hours/weekday curve,
   split between content types by weight, each by a Zipf-skewed user.
2. Availability: event CreationTime + latency (log-normal, minutes; a tail of hours) ("Latency").
3. Blobs: per content type, events that become available in the same `blob_interval_minutes` bucket
   form one blob (split at `max_records_per_blob`); contentCreated = bucket end + seconds;
   T1 = bucket start; contentExpiration = T1 + 7 d (or 14 d at `expiration_14d_rate`) ("Content lifetime",
   "Content and page identifiers").
4. Quirks: records shuffled inside a blob; a record repeated in its blob or re-delivered in a later
   blob ("Duplicates"); now and then a separate late blob whose events are days old ("Latency").

Record bodies are built and serialised per blob and then dropped, so 250,000 records cost only
their JSON bytes in memory.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import itertools
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from . import timefmt
from .content_types import CONTENT_TYPES
from .records import Mix, Population, Quirks, Record, new_guid


class _TenantInfo(Protocol):
    tenant_id: str
    domain: str


class BlobSink(Protocol):
    """What `generate` fills: the Simulator (simulator/state.py), declared here so that this module
    does not import the state it feeds."""

    def tenant(self, tenant_id: str | None = None) -> _TenantInfo: ...

    def add_rendered_blob(self, content_type: str, content_created: datetime, body: bytes, record_count: int, *,
                          content_id: str | None = None, expiration: datetime | None = None,
                          tenant_id: str | None = None, t1: datetime | None = None) -> object: ...

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "Audit.AzureActiveDirectory": 0.28, "Audit.Exchange": 0.32, "Audit.SharePoint": 0.30, "Audit.General": 0.08, "DLP.All": 0.02,
}
# Relative activity per UTC hour on a weekday (a working day in Europe/Americas overlap) and weekend factor.
_HOURLY = (0.15, 0.12, 0.1, 0.1, 0.12, 0.2, 0.45, 0.8, 1.2, 1.5, 1.6, 1.55, 1.4, 1.5, 1.6, 1.55, 1.4, 1.2, 0.9, 0.6, 0.45, 0.35, 0.25, 0.2)
_WEEKEND = 0.3


@dataclass(frozen=True)
class Realism:
    """Knobs of the synthetic tenant (pass them as keyword arguments to `generate`)."""

    users: int = 200  # user pool size; activity per user is Zipf-skewed
    zipf_exponent: float = 1.1
    content_type_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    diurnal: bool = True  # working-hours and weekday shape of the event rate
    blob_interval_minutes: float = 5.0  # aggregation bucket of one blob
    max_records_per_blob: int = 2000
    latency_median_minutes: float = 12.0  # event → available ("Latency": minutes typical)
    latency_sigma: float = 0.8
    latency_tail_rate: float = 0.03  # share of events delayed 1 h … latency_tail_hours
    latency_tail_hours: float = 8.0
    duplicate_within_blob_rate: float = 0.005  # a record repeated inside its blob ("Duplicates")
    duplicate_across_blobs_rate: float = 0.01  # a record re-delivered in a later blob ("Duplicates")
    late_blobs_per_day: float = 0.5  # per content type: blobs whose events are days old ("Latency")
    late_blob_days: tuple[float, float] = (1.0, 4.0)
    late_blob_records: int = 25
    expiration_14d_rate: float = 0.0  # blobs whose contentExpiration is T1 + 14 d ("Content lifetime")
    quirks: Quirks = field(default_factory=Quirks)

    @classmethod
    def from_kwargs(cls, values: Mapping[str, Any]) -> Realism:
        """Accept Realism and Quirks field names side by side (e.g. users=50, ipv6_rate=0.3)."""
        own = {f.name for f in dataclasses.fields(cls)}
        quirk_names = {f.name for f in dataclasses.fields(Quirks)}
        unknown = set(values) - own - quirk_names
        if unknown:
            raise TypeError(f"unknown realism knob(s) {sorted(unknown)}; known: {sorted(own | quirk_names)}")
        quirks = Quirks(**{k: v for k, v in values.items() if k in quirk_names})
        fields = {k: v for k, v in values.items() if k in own}
        fields.setdefault("quirks", quirks)
        return cls(**fields)


class BlobSpec(NamedTuple):
    """One generated content blob, ready for Simulator.add_rendered_blob."""

    content_type: str
    content_created: datetime
    t1: datetime
    body: bytes
    record_count: int
    expiration: datetime | None  # None: the simulator's default (T1 + expiration_days)
    late: bool


@dataclass
class GenerationStats:
    events: int = 0  # distinct events (record Ids) generated
    records: int = 0  # records placed in blobs, duplicates included
    blobs: int = 0
    duplicates_within_blob: int = 0
    duplicates_across_blobs: int = 0
    late_blobs: int = 0
    late_records: int = 0
    by_content_type: dict[str, int] = field(default_factory=dict)  # records per content type
    first_content_created: datetime | None = None
    last_content_created: datetime | None = None
    seconds: float = 0.0


class _Event(NamedTuple):
    available: float  # epoch seconds
    created: float
    late: bool


class Generator:
    """Stateful generator: one RNG and population, reusable for successive periods (live feed)."""

    def __init__(self, tenant_id: str, domain: str = "contoso.onmicrosoft.com", seed: int = 1, realism: Realism | None = None,
                 content_types: Iterable[str] | None = None) -> None:
        import random

        self.realism = realism or Realism()
        self.rng = random.Random(seed)
        self.content_types = tuple(content_types or CONTENT_TYPES)
        for content_type in self.content_types:
            if content_type not in CONTENT_TYPES:
                raise ValueError(f"unknown content type {content_type!r}")
        self.population = Population(self.rng, tenant_id.lower(), domain, self.realism.users, self.realism.zipf_exponent, self.realism.quirks)
        self.mixes = {ct: Mix(ct, self.realism.quirks) for ct in self.content_types}
        weights = [max(self.realism.content_type_weights.get(ct, 0.0), 0.0) for ct in self.content_types]
        if sum(weights) <= 0:
            raise ValueError("content_type_weights gives no weight to the selected content types")
        self.type_cum = list(itertools.accumulate(weights))
        self.stats = GenerationStats()
        self._carry = 0.5

    # ------------------------------------------------------------------ events
    def _slots(self, start: float, end: float, records_per_hour: float) -> Iterator[tuple[float, float, int]]:
        """(slot start, slot length, events) per hour slot; counts carry remainders so the total is exact."""
        first = math.floor(start / 3600) * 3600
        spans = []
        hour = first
        while hour < end:
            lo, hi = max(hour, start), min(hour + 3600, end)
            if hi > lo:
                spans.append((lo, hi - lo, self._weight(hour)))
            hour += 3600
        total_length = sum(length for _, length, _ in spans)
        mean = sum(length * w for _, length, w in spans) / total_length if total_length else 1.0
        for lo, length, weight in spans:
            # The remainder carries over slots and over calls (the live feed asks for a few seconds at a time).
            expected = records_per_hour * length / 3600 * weight / mean + self._carry
            count = int(expected)
            self._carry = expected - count
            yield lo, length, count

    def _weight(self, hour_start: float) -> float:
        if not self.realism.diurnal:
            return 1.0
        moment = time.gmtime(hour_start)
        return _HOURLY[moment.tm_hour] * (_WEEKEND if moment.tm_wday >= 5 else 1.0)

    def _latency(self) -> float:
        r = self.realism
        rng = self.rng
        if rng.random() < r.latency_tail_rate:
            return rng.uniform(3600, max(r.latency_tail_hours, 1.0) * 3600)
        return rng.lognormvariate(math.log(max(r.latency_median_minutes, 0.01) * 60), r.latency_sigma)

    def _events(self, start: float, end: float, records_per_hour: float) -> dict[str, list[_Event]]:
        rng = self.rng
        by_type: dict[str, list[_Event]] = {ct: [] for ct in self.content_types}
        lists = [by_type[ct] for ct in self.content_types]
        cum, top = self.type_cum, self.type_cum[-1]
        for lo, length, count in self._slots(start, end, records_per_hour):
            for _ in range(count):
                created = lo + rng.random() * length
                target = lists[bisect.bisect_left(cum, rng.random() * top)]
                target.append(_Event(created + self._latency(), created, False))
        for ct in self.content_types:
            self._mark_late(by_type[ct], start, end)
        return by_type

    def _mark_late(self, events: list[_Event], start: float, end: float) -> None:
        """Turn a few runs of events into late blobs: available at T, though they happened days before T."""
        r = self.realism
        low, high = r.late_blob_days[0] * 86400, r.late_blob_days[1] * 86400
        if not events or r.late_blobs_per_day <= 0 or end - start <= low:
            return
        expected = r.late_blobs_per_day * (end - start) / 86400
        count = int(expected) + (1 if self.rng.random() < expected - int(expected) else 0)
        events.sort(key=lambda e: e.created)
        created = [e.created for e in events]
        for _ in range(count):
            at = self.rng.uniform(start + low, end)
            lo = bisect.bisect_left(created, at - high)
            hi = bisect.bisect_right(created, at - low)
            if hi <= lo:
                continue
            first = self.rng.randrange(lo, hi)
            for index in range(first, min(first + r.late_blob_records, hi)):
                events[index] = _Event(at, events[index].created, True)

    # ------------------------------------------------------------------ blobs
    def blobs(self, start: datetime, end: datetime, records_per_hour: float) -> Iterator[BlobSpec]:
        """Blobs for events in [start, end); their contentCreated may lie after `end` (pending content)."""
        s, e = timefmt.epoch_seconds(start), timefmt.epoch_seconds(end)
        if e <= s:
            raise ValueError("generate: end must be after start")
        events = self._events(s, e, records_per_hour)
        for content_type in self.content_types:
            yield from self._blobs_of(content_type, events[content_type])

    def _blobs_of(self, content_type: str, events: list[_Event]) -> Iterator[BlobSpec]:
        r, rng, stats = self.realism, self.rng, self.stats
        interval = max(r.blob_interval_minutes, 0.01) * 60
        events.sort()
        pending: list[tuple[float, int, Record]] = []  # cross-blob re-deliveries: (available, seq, record)
        counter = itertools.count()
        mix, population = self.mixes[content_type], self.population
        index, total = 0, len(events)
        while index < total or pending:
            candidates = []
            if index < total:
                candidates.append(events[index].available)
            if pending:
                candidates.append(pending[0][0])
            bucket_start = math.floor(min(candidates) / interval) * interval
            bucket_end = bucket_start + interval
            regular: list[Record] = []
            late: list[Record] = []
            while index < total and events[index].available < bucket_end:
                event = events[index]
                index += 1
                user = population.pick_user()
                record = mix.pick(rng)(population, user, _record_time(event.created), new_guid(rng))
                stats.events += 1
                if event.late:
                    late.append(record)
                    continue
                regular.append(record)
                if rng.random() < r.duplicate_across_blobs_rate:
                    delay = rng.uniform(interval, max(6 * 3600.0, interval * 2))
                    heapq.heappush(pending, (event.available + delay, next(counter), record))
            redelivered = 0
            while pending and pending[0][0] < bucket_end:
                regular.append(heapq.heappop(pending)[2])
                redelivered += 1
            stats.duplicates_across_blobs += redelivered
            for group, is_late in ((regular, False), (late, True)):
                if group:
                    yield from self._emit(content_type, group, bucket_start, bucket_end, is_late)

    def _emit(self, content_type: str, records: list[Record], bucket_start: float, bucket_end: float, late: bool) -> Iterator[BlobSpec]:
        r, rng, stats = self.realism, self.rng, self.stats
        if r.duplicate_within_blob_rate > 0:
            copies = [record for record in records if rng.random() < r.duplicate_within_blob_rate]
            records.extend(copies)  # the same dict → byte-identical JSON, as observed ("Duplicates")
            stats.duplicates_within_blob += len(copies)
        rng.shuffle(records)  # "Ordering": records inside a blob are not in time order
        t1 = datetime.fromtimestamp(bucket_start, UTC)
        for offset in range(0, len(records), max(r.max_records_per_blob, 1)):
            chunk = records[offset:offset + r.max_records_per_blob]
            created = datetime.fromtimestamp(bucket_end + rng.uniform(5, 90), UTC)
            expiration = t1 + timedelta(days=14) if rng.random() < r.expiration_14d_rate else None
            body = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            stats.blobs += 1
            stats.records += len(chunk)
            stats.by_content_type[content_type] = stats.by_content_type.get(content_type, 0) + len(chunk)
            if late:
                stats.late_blobs += 1
                stats.late_records += len(chunk)
            if stats.first_content_created is None or created < stats.first_content_created:
                stats.first_content_created = created
            if stats.last_content_created is None or created > stats.last_content_created:
                stats.last_content_created = created
            yield BlobSpec(content_type, created, t1, body, len(chunk), expiration, late)


def _record_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))  # "Timestamps": no fraction, no suffix


def generate_blobs(tenant_id: str, start: datetime, end: datetime, records_per_hour: float = 500.0,
                   content_types: Iterable[str] | None = None, seed: int = 1, domain: str = "contoso.onmicrosoft.com",
                   **realism: Any) -> tuple[Generator, Iterator[BlobSpec]]:
    """Generate without a Simulator (e.g. fixtures). Returns the generator (for `.stats`) and the blobs."""
    generator = Generator(tenant_id, domain, seed, Realism.from_kwargs(realism), content_types)
    return generator, generator.blobs(timefmt.utc(start), timefmt.utc(end), records_per_hour)


def generate(sim: BlobSink, start: datetime, end: datetime, records_per_hour: float = 500.0,
             content_types: Iterable[str] | None = None, seed: int = 1, tenant_id: str | None = None, **realism: Any) -> GenerationStats:
    """Fill `sim` with a synthetic tenant whose events happen in [start, end)."""
    began = time.perf_counter()
    tenant = sim.tenant(tenant_id)
    generator, blobs = generate_blobs(tenant.tenant_id, start, end, records_per_hour, content_types, seed, tenant.domain, **realism)
    for spec in blobs:
        sim.add_rendered_blob(spec.content_type, spec.content_created, spec.body, spec.record_count,
                              expiration=spec.expiration, tenant_id=tenant.tenant_id, t1=spec.t1)
    generator.stats.seconds = time.perf_counter() - began
    return generator.stats
