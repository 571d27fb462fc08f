"""Retention: how long each tier keeps a day, and expiry of what is due (docs/retention.md).

Three tiers, each expired in whole days of event time (a record's day is the UTC day of its
CreationTime in the index and the cold tier, of its content blob's contentCreated in the archive):

- **hot index**: a day's four tables are dropped once the day is older than HOT_INDEX_RETENTION_DAYS
  *and* the cold tier holds it (its manifest is committed), unless the cold tier is off
  (COLD_RETENTION_DAYS=0). A day not yet compacted waits, and the report says so.
- **cold tier**: a day's files are deleted once the day is older than COLD_RETENTION_DAYS, the
  manifest first (a day without its manifest is "not compacted": readers never see a half-deleted day).
- **raw archive**: blobs of days older than ARCHIVE_RETENTION_DAYS are deleted unless a WORM policy
  still protects them: their own immutability policy, a legal hold, or the container's time-based
  retention (ARCHIVE_IMMUTABILITY_DAYS counted from the blob's creation, as the service counts it).
  A blob is never deleted before it is ARCHIVE_RETENTION_DAYS old by its creation time either, so
  this step never runs ahead of the lifecycle rule that infra/ derives from the same setting: in
  Azure that rule usually got there first; under WORM (where lifecycle deletion does not happen,
  docs/deploy.md) and in Azurite (no lifecycle) this step is what deletes.

`plan` is pure (days in, days out); `Expiry.run` applies it through the small protocols below,
which collector/retention_stores.py implements over Table and Blob storage. Every step is idempotent: a run cut
short leaves days that the next run finds again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol

from .settings import Settings
from .timeutil import Clock, SystemClock

log = logging.getLogger(__name__)

DELETE_THREADS = 8  # archive blobs deleted in parallel (one request each)


@dataclass(frozen=True)
class Policy:
    """Days each tier keeps (hot and archive: 0 = forever; cold: 0 = no cold tier)."""

    hot_days: int = 90
    cold_days: int = 2557
    archive_days: int = 2557
    immutability_days: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.hot_index_retention_days, settings.cold_retention_days,
                   settings.archive_retention_days, settings.archive_immutability_days)


def cutoff(today: date, days: int) -> str | None:
    """The first day (yyyyMMdd) a tier keeping `days` days still keeps on `today`: every earlier
    day is due. None when the tier keeps everything (days == 0)."""
    if days <= 0:
        return None
    return (today - timedelta(days=days)).strftime("%Y%m%d")


# ---------------------------------------------------------------- the tiers, as retention sees them


class HotTier(Protocol):
    def days(self) -> Mapping[str, bool]:
        """Days (yyyyMMdd) with any index table → whether the day has an id table (what compaction reads)."""
        ...

    def drop_day(self, day: str) -> list[str]: ...


class ColdTier(Protocol):
    def days(self, before: str | None = None) -> Mapping[str, bool]:
        """Days (yyyyMMdd, all or only those before `before`) with cold files → whether the
        day's manifest is committed."""
        ...

    def oldest(self) -> str | None:
        """The oldest day with a committed manifest."""
        ...

    def delete_day(self, day: str) -> tuple[int, int]:
        """Delete the day's files, the manifest first: (deleted, kept under a policy or hold)."""
        ...


@dataclass(frozen=True)
class ArchiveBlob:
    """What expiry needs to know about one archive blob (from the listing: no extra request)."""

    name: str
    created: datetime  # the service's creation time: lifecycle and WORM periods count from it
    immutable_until: datetime | None = None  # the blob's own immutability policy, if any
    legal_hold: bool = False


class ArchiveTier(Protocol):
    def days(self, before: str | None = None) -> list[str]:
        """Days (yyyyMMdd) that hold archive blobs (any content type), oldest first."""
        ...

    def oldest(self) -> str | None: ...

    def blobs(self, day: str) -> Iterable[ArchiveBlob]: ...

    def delete(self, name: str) -> bool:
        """Delete one blob; False when the service refused (a WORM policy it enforces) or it is gone."""
        ...


# ---------------------------------------------------------------- the plan (pure)


@dataclass(frozen=True)
class Plan:
    today: date
    hot_cutoff: str | None
    cold_cutoff: str | None
    archive_cutoff: str | None
    hot_due: tuple[str, ...] = ()  # old enough and held by the cold tier (or no cold tier)
    hot_waiting: tuple[str, ...] = ()  # old enough, but not compacted yet: kept
    cold_due: tuple[str, ...] = ()
    archive_due: tuple[str, ...] = ()  # days whose blobs are old enough by name; each blob is checked again


def plan(policy: Policy, now: datetime, hot_days: Mapping[str, bool], cold_days: Mapping[str, bool],
         archive_days: Iterable[str]) -> Plan:
    """What is due on `now`'s day: hot days before the hot cutoff that the cold tier holds, cold
    days before the cold cutoff, archive days before the archive cutoff."""
    today = now.astimezone(UTC).date()
    hot_cut, cold_cut, archive_cut = (cutoff(today, policy.hot_days), cutoff(today, policy.cold_days),
                                      cutoff(today, policy.archive_days))
    cold_on = policy.cold_days > 0
    hot_due: list[str] = []
    waiting: list[str] = []
    for day in sorted(hot_days):
        if hot_cut is None or day >= hot_cut:
            continue
        # A day without an id table has nothing compaction could read (a drop cut short left its
        # other views): nothing to wait for.
        if not cold_on or cold_days.get(day, False) or not hot_days[day]:
            hot_due.append(day)
        else:
            waiting.append(day)
    cold_due = [d for d in sorted(cold_days) if cold_on and cold_cut is not None and d < cold_cut]
    archive_due = [d for d in sorted(set(archive_days)) if archive_cut is not None and d < archive_cut]
    return Plan(today, hot_cut, cold_cut if cold_on else None, archive_cut, tuple(hot_due), tuple(waiting),
                tuple(cold_due), tuple(archive_due))


Verdict = Literal["delete", "young", "immutable", "worm", "legal-hold"]


def archive_verdict(blob: ArchiveBlob, now: datetime, policy: Policy) -> Verdict:
    """Whether an archive blob of a due day may go: never under a legal hold or a policy still in
    force, never before it is archive_days old by creation (the lifecycle rule's own clock)."""
    if blob.legal_hold:
        return "legal-hold"
    if blob.immutable_until is not None and blob.immutable_until > now:
        return "immutable"
    if policy.immutability_days and blob.created + timedelta(days=policy.immutability_days) > now:
        return "worm"
    if policy.archive_days <= 0 or blob.created + timedelta(days=policy.archive_days) > now:
        return "young"
    return "delete"


# ---------------------------------------------------------------- applying it


@dataclass
class ExpiryReport:
    plan: Plan
    dry_run: bool
    hot_dropped: list[str] = field(default_factory=list)  # days
    cold_deleted: list[str] = field(default_factory=list)  # days
    cold_files_deleted: int = 0
    cold_files_kept: int = 0
    archive_deleted: int = 0
    archive_kept: dict[str, int] = field(default_factory=dict)  # reason → blobs
    archive_kept_names: list[str] = field(default_factory=list)  # the first few, for the operator

    def lines(self) -> list[str]:
        """The operator's summary (the CLI prints it)."""
        p = self.plan
        verb = "would drop" if self.dry_run else "dropped"
        out = [f"today {p.today:%Y-%m-%d}: hot keeps from {_iso(p.hot_cutoff) or 'forever'}, cold from "
               f"{_iso(p.cold_cutoff) or 'forever (or no cold tier)'}, archive from {_iso(p.archive_cutoff) or 'forever'}"]
        out.append(f"hot index: {verb} {len(p.hot_due)} day(s){_span(p.hot_due)}")
        if p.hot_waiting:
            out.append(f"hot index: kept {len(p.hot_waiting)} due day(s) not yet in the cold tier{_span(p.hot_waiting)}: "
                       "run compaction first")
        cold_verb = "would delete" if self.dry_run else "deleted"
        out.append(f"cold tier: {cold_verb} {len(p.cold_due)} day(s){_span(p.cold_due)}"
                   + ("" if self.dry_run else f", {self.cold_files_deleted} file(s); {self.cold_files_kept} kept by a policy"))
        kept = ", ".join(f"{n} {reason}" for reason, n in sorted(self.archive_kept.items())) or "none"
        out.append(f"raw archive: {cold_verb} {self.archive_deleted} blob(s) of {len(p.archive_due)} due day(s)"
                   f"{_span(p.archive_due)}; kept: {kept}")
        out.extend(f"  kept {name}" for name in self.archive_kept_names)
        return out


class Expiry:
    """Plans and applies expiry over the three tiers (see the module docstring)."""

    KEPT_NAMES = 10  # archive blobs named in the report

    def __init__(self, policy: Policy, hot: HotTier, cold: ColdTier, archive: ArchiveTier, *,
                 clock: Clock | None = None) -> None:
        self.policy = policy
        self.hot = hot
        self.cold = cold
        self.archive = archive
        self.clock = clock or SystemClock()

    def plan(self) -> Plan:
        now = self.clock.now()
        today = now.astimezone(UTC).date()
        hot_days = self.hot.days() if self.policy.hot_days else {}
        # Cold days up to the later cutoff: the hot one (whether a due hot day is compacted) and
        # the cold one (what is due); cold >= hot days (settings), so the hot cutoff is the later.
        cuts = [c for c in (cutoff(today, self.policy.hot_days), cutoff(today, self.policy.cold_days)) if c]
        cold_days = self.cold.days(before=max(cuts)) if self.policy.cold_days and cuts else {}
        archive_cut = cutoff(today, self.policy.archive_days)
        archive_days = self.archive.days(before=archive_cut) if archive_cut else []
        return plan(self.policy, now, hot_days, cold_days, archive_days)

    def run(self, *, dry_run: bool = False, progress: Callable[[str], None] | None = None) -> ExpiryReport:
        due = self.plan()
        report = ExpiryReport(due, dry_run)
        say = progress or (lambda _line: None)
        for day in due.hot_waiting:
            log.warning("retention.hot_waiting %s: due but not in the cold tier yet; kept", day,
                        extra={"day": day, "tier": "hot"})
        for day in due.hot_due:
            if not dry_run:
                self.hot.drop_day(day)
                report.hot_dropped.append(day)
                say(f"hot index: dropped {day}")
        for day in due.cold_due:
            if not dry_run:
                deleted, kept = self.cold.delete_day(day)
                report.cold_deleted.append(day)
                report.cold_files_deleted += deleted
                report.cold_files_kept += kept
                say(f"cold tier: deleted {day} ({deleted} files, {kept} kept)")
        now = self.clock.now()
        for day in due.archive_due:
            deleted = self._archive_day(day, now, report)
            if deleted:
                say(f"raw archive: {'would delete' if dry_run else 'deleted'} {deleted} blob(s) of {day}")
        log.info("retention.expired hot %d, cold %d, archive %d blobs", len(report.hot_dropped),
                 len(report.cold_deleted), report.archive_deleted,
                 extra={"hotDays": len(report.hot_dropped), "hotWaiting": len(due.hot_waiting),
                        "coldDays": len(report.cold_deleted), "archiveBlobs": report.archive_deleted,
                        "archiveKept": sum(report.archive_kept.values()), "dryRun": dry_run})
        return report

    def _archive_day(self, day: str, now: datetime, report: ExpiryReport) -> int:
        doomed: list[str] = []
        for blob in self.archive.blobs(day):
            verdict = archive_verdict(blob, now, self.policy)
            if verdict == "delete":
                doomed.append(blob.name)
            else:
                self._keep(report, blob.name, verdict)
        if report.dry_run:
            report.archive_deleted += len(doomed)
            return len(doomed)
        deleted = 0
        with ThreadPoolExecutor(max_workers=DELETE_THREADS) as pool:
            for name, done in zip(doomed, pool.map(self.archive.delete, doomed), strict=True):
                if done:
                    deleted += 1
                else:
                    self._keep(report, name, "refused")
        report.archive_deleted += deleted
        return deleted

    def _keep(self, report: ExpiryReport, name: str, reason: str) -> None:
        report.archive_kept[reason] = report.archive_kept.get(reason, 0) + 1
        if reason != "young" and len(report.archive_kept_names) < self.KEPT_NAMES:
            report.archive_kept_names.append(f"{name} ({reason})")
        if reason != "young":
            log.info("retention.archive_kept %s: %s", name, reason, extra={"blob": name, "reason": reason})


def oldest_days(hot: HotTier, cold: ColdTier, archive: ArchiveTier) -> dict[str, str | None]:
    """The oldest day (YYYY-MM-DD) each tier holds, None when it holds none: for /api/health.
    Hot: any index table; cold: a committed manifest; archive: any blob (by contentCreated)."""
    hot_days = hot.days()
    return {"hot": _iso(min(hot_days) if hot_days else None), "cold": _iso(cold.oldest()),
            "archive": _iso(archive.oldest())}


def _iso(day: str | None) -> str | None:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}" if day else None


def _span(days: tuple[str, ...]) -> str:
    if not days:
        return ""
    return f" ({_iso(days[0])})" if len(days) == 1 else f" ({_iso(days[0])} to {_iso(days[-1])})"


__all__ = ["ArchiveBlob", "ArchiveTier", "ColdTier", "Expiry", "ExpiryReport", "HotTier", "Plan", "Policy",
           "archive_verdict", "cutoff", "oldest_days", "plan"]
