"""Retention without storage: the settings and presets, the pure plan, the archive verdict (the
WORM logic Azurite cannot emulate, through a stand-in of the listing's blob properties) and
Expiry.run over in-memory tiers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobProperties, ImmutabilityPolicy

from collector.errors import ConfigError
from collector.retention import ArchiveBlob, Expiry, Policy, archive_verdict, cutoff, oldest_days, plan
from collector.retention_stores import ArchiveDays
from collector.settings import RETENTION_PRESETS, Settings
from tests.clock import FakeClock

NOW = datetime(2026, 6, 15, 3, 30, tzinfo=UTC)


def day(offset: int) -> str:
    """yyyyMMdd of NOW's day minus `offset` days."""
    return (NOW.date() - timedelta(days=offset)).strftime("%Y%m%d")


# ---------------------------------------------------------------- settings


def test_defaults_are_90_days_hot_and_7_years_cold_and_raw() -> None:
    s = Settings.from_env({})
    assert (s.retention_preset, s.hot_index_retention_days, s.cold_retention_days, s.archive_retention_days,
            s.archive_immutability_days) == ("default", 90, 2557, 2557, 0)


@pytest.mark.parametrize("name", sorted(RETENTION_PRESETS))
def test_a_preset_fills_every_retention_setting(name: str) -> None:
    s = Settings.from_env({"RETENTION_PRESET": name.upper()})
    preset = RETENTION_PRESETS[name]
    assert (s.retention_preset, s.hot_index_retention_days, s.cold_retention_days, s.archive_retention_days,
            s.archive_immutability_days) == (name, preset.hot, preset.cold, preset.archive, preset.immutability)


def test_explicit_settings_win_over_the_preset() -> None:
    s = Settings.from_env({"RETENTION_PRESET": "pci", "HOT_INDEX_RETENTION_DAYS": "30", "ARCHIVE_RETENTION_DAYS": "3000"})
    assert (s.hot_index_retention_days, s.cold_retention_days, s.archive_retention_days) == (30, 366, 3000)


def test_the_presets_follow_their_sources() -> None:
    # docs/retention.md, "Presets": the figure each source sets, in days.
    assert RETENTION_PRESETS["pci"].archive >= 365 and RETENTION_PRESETS["pci"].hot >= 92  # 10.5.1: 12 m, 3 m at hand
    assert RETENTION_PRESETS["scuba"].archive >= 365 and RETENTION_PRESETS["scuba"].hot >= 92
    assert RETENTION_PRESETS["hipaa"].archive >= 6 * 365 + 1  # 6 years (leap days included)
    assert RETENTION_PRESETS["sox"].archive >= 7 * 365 + 1
    assert RETENTION_PRESETS["sec"].archive >= 6 * 365 + 1 and RETENTION_PRESETS["sec"].immutability > 0  # 17a-4(f)
    assert RETENTION_PRESETS["gdpr-12m"].archive == RETENTION_PRESETS["gdpr-12m"].cold == 365  # a cap: deleted at 12 m


@pytest.mark.parametrize(("env", "named"), [
    ({"RETENTION_PRESET": "iso27001"}, "RETENTION_PRESET"),
    ({"HOT_INDEX_RETENTION_DAYS": "-1"}, "HOT_INDEX_RETENTION_DAYS"),
    ({"COLD_RETENTION_DAYS": "ten"}, "COLD_RETENTION_DAYS"),
    ({"ARCHIVE_RETENTION_DAYS": "36501"}, "ARCHIVE_RETENTION_DAYS"),
    ({"HOT_INDEX_RETENTION_DAYS": "400", "COLD_RETENTION_DAYS": "365"}, "COLD_RETENTION_DAYS (365) must be at least HOT"),
    ({"HOT_INDEX_RETENTION_DAYS": "0"}, "needs a finite HOT_INDEX_RETENTION_DAYS"),
    ({"HOT_INDEX_RETENTION_DAYS": "90", "ARCHIVE_RETENTION_DAYS": "30", "COLD_RETENTION_DAYS": "0"},
     "ARCHIVE_RETENTION_DAYS (30) must be at least HOT_INDEX_RETENTION_DAYS (90)"),
    ({"ARCHIVE_RETENTION_DAYS": "365", "ARCHIVE_IMMUTABILITY_DAYS": "400"}, "ARCHIVE_IMMUTABILITY_DAYS (400)"),
])
def test_bad_retention_settings_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert any(named in problem for problem in caught.value.problems), caught.value.problems


def test_no_cold_tier_and_a_forever_index_are_allowed() -> None:
    s = Settings.from_env({"HOT_INDEX_RETENTION_DAYS": "0", "COLD_RETENTION_DAYS": "0", "ARCHIVE_RETENTION_DAYS": "0"})
    assert (s.hot_index_retention_days, s.cold_retention_days, s.archive_retention_days) == (0, 0, 0)


# ---------------------------------------------------------------- the plan


def test_cutoff_keeps_exactly_n_days_before_today() -> None:
    assert cutoff(date(2026, 3, 1), 1) == "20260228"
    assert cutoff(date(2026, 3, 1), 0) is None


def test_plan_due_days_per_tier() -> None:
    policy = Policy(hot_days=10, cold_days=20, archive_days=30)
    hot = {day(12): True, day(11): True, day(10): True, day(25): True, day(13): False}
    cold = {day(12): True, day(25): True, day(21): True, day(20): True, day(22): False}
    archive = [day(31), day(30), day(40), day(31)]
    p = plan(policy, NOW, hot, cold, archive)
    # hot: before day(10) and compacted; day(11) is not in the cold tier; day(13) has no id table
    assert p.hot_due == (day(25), day(13), day(12))
    assert p.hot_waiting == (day(11),)
    assert p.cold_due == (day(25), day(22), day(21))  # an uncommitted day's files expire too
    assert p.archive_due == (day(40), day(31))


def test_without_a_cold_tier_hot_days_do_not_wait_and_cold_files_are_left_alone() -> None:
    p = plan(Policy(hot_days=10, cold_days=0, archive_days=0), NOW, {day(11): True}, {day(900): True}, [day(5000)])
    assert (p.hot_due, p.hot_waiting, p.cold_due, p.archive_due) == ((day(11),), (), (), ())


# ---------------------------------------------------------------- the archive verdict (WORM)


def blob(created_days_ago: float, **extra: Any) -> ArchiveBlob:
    return ArchiveBlob("Audit.Exchange/x.json.gz", NOW - timedelta(days=created_days_ago), **extra)


@pytest.mark.parametrize(("item", "policy", "verdict"), [
    (blob(31), Policy(archive_days=30), "delete"),
    (blob(29.9), Policy(archive_days=30), "young"),  # due by its name's day, but uploaded later: lifecycle's clock
    (blob(31, legal_hold=True), Policy(archive_days=30), "legal-hold"),
    (blob(31, immutable_until=NOW + timedelta(seconds=1)), Policy(archive_days=30), "immutable"),
    (blob(31, immutable_until=NOW - timedelta(seconds=1)), Policy(archive_days=30), "delete"),
    (blob(31), Policy(archive_days=30, immutability_days=32), "worm"),  # the container's time-based retention
    (blob(33), Policy(archive_days=30, immutability_days=32), "delete"),
    (blob(9999), Policy(archive_days=0), "young"),  # 0 = forever
])
def test_archive_verdict(item: ArchiveBlob, policy: Policy, verdict: str) -> None:
    assert archive_verdict(item, NOW, policy) == verdict


class StandInContainer:
    """The two ContainerClient calls ArchiveDays makes, answering with the SDK's own BlobProperties."""

    def __init__(self, blobs: list[BlobProperties], refuse: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.blobs = {b.name: b for b in blobs}
        self.refuse = refuse
        self.deleted: list[str] = []

    def walk_blobs(self, name_starts_with: str = "", delimiter: str = "/") -> Iterator[Any]:
        from azure.storage.blob import BlobPrefix

        seen: set[str] = set()
        for name in self.blobs:
            if name.startswith(name_starts_with):
                head = name_starts_with + name[len(name_starts_with):].split(delimiter, 1)[0] + delimiter
                if head not in seen:
                    seen.add(head)
                    yield BlobPrefix(None, prefix=head)

    def list_blobs(self, name_starts_with: str = "", include: list[str] | None = None) -> Iterator[BlobProperties]:
        assert include is not None and {"immutabilitypolicy", "legalhold"} <= set(include)
        return iter([b for n, b in self.blobs.items() if n.startswith(name_starts_with)])

    def delete_blob(self, name: str) -> None:
        if name in self.refuse:
            error = HttpResponseError(message="This operation is not permitted as the blob is immutable due to a policy.")
            error.status_code = 409
            raise error
        del self.blobs[name]
        self.deleted.append(name)


def properties(name: str, created_days_ago: float, *, until: datetime | None = None, hold: bool | None = None) -> BlobProperties:
    props = BlobProperties(name=name)
    props.creation_time = NOW - timedelta(days=created_days_ago)
    props.immutability_policy = ImmutabilityPolicy(expiry_time=until, policy_mode="Locked" if until else None)
    props.has_legal_hold = hold
    return props


def test_worm_locked_blobs_are_kept_and_named_in_the_report() -> None:
    old = day(40)
    prefix = f"Audit.Exchange/{old[:4]}/{old[4:6]}/{old[6:]}/01/"
    container = StandInContainer([
        properties(prefix + "a.json.gz", 40),
        properties(prefix + "locked.json.gz", 40, until=NOW + timedelta(days=100)),
        properties(prefix + "held.json.gz", 40, hold=True),
        properties(prefix + "refused.json.gz", 40),
        properties("Audit.General/2026/06/14/01/new.json.gz", 1),
    ], refuse={prefix + "refused.json.gz"})
    archive = ArchiveDays(container)  # type: ignore[arg-type]
    expiry = Expiry(Policy(hot_days=0, cold_days=0, archive_days=30), MemoryHot({}), MemoryCold({}), archive,
                    clock=FakeClock(NOW))
    report = expiry.run()
    assert container.deleted == [prefix + "a.json.gz"]
    assert report.archive_deleted == 1
    assert report.archive_kept == {"immutable": 1, "legal-hold": 1, "refused": 1}
    assert sorted(report.archive_kept_names) == [f"{prefix}held.json.gz (legal-hold)", f"{prefix}locked.json.gz (immutable)",
                                                 f"{prefix}refused.json.gz (refused)"]
    assert "Audit.General/2026/06/14/01/new.json.gz" in container.blobs
    assert archive.oldest() == old and archive.days() == [old, "20260614"]


# ---------------------------------------------------------------- Expiry over in-memory tiers


@dataclass
class MemoryHot:
    tables: dict[str, bool]  # day → has an id table
    dropped: list[str] = field(default_factory=list)

    def days(self) -> Mapping[str, bool]:
        return dict(self.tables)

    def drop_day(self, day: str) -> list[str]:
        del self.tables[day]
        self.dropped.append(day)
        return [day]


@dataclass
class MemoryCold:
    files: dict[str, bool]  # day → manifest committed
    deleted: list[str] = field(default_factory=list)

    def days(self, before: str | None = None) -> Mapping[str, bool]:
        return {d: m for d, m in self.files.items() if before is None or d < before}

    def oldest(self) -> str | None:
        return min((d for d, m in self.files.items() if m), default=None)

    def delete_day(self, day: str) -> tuple[int, int]:
        del self.files[day]
        self.deleted.append(day)
        return 4, 0


@dataclass
class MemoryArchive:
    by_day: dict[str, ArchiveBlob]
    deleted: list[str] = field(default_factory=list)

    def days(self, before: str | None = None) -> list[str]:
        return sorted(d for d in self.by_day if before is None or d < before)

    def oldest(self) -> str | None:
        return min(self.by_day, default=None)

    def blobs(self, day: str) -> Iterable[ArchiveBlob]:
        return [self.by_day[day]] if day in self.by_day else []

    def delete(self, name: str) -> bool:
        self.by_day = {d: b for d, b in self.by_day.items() if b.name != name}
        self.deleted.append(name)
        return True


def test_expiry_removes_exactly_what_is_due_and_a_dry_run_nothing() -> None:
    def tiers() -> tuple[MemoryHot, MemoryCold, MemoryArchive]:
        hot = MemoryHot({day(12): True, day(11): True, day(10): True})
        cold = MemoryCold({day(12): True, day(10): True, day(25): True, day(20): True})
        archive = MemoryArchive({day(31): ArchiveBlob("old", NOW - timedelta(days=31)),
                                 day(30): ArchiveBlob("kept", NOW - timedelta(days=30))})
        return hot, cold, archive

    policy = Policy(hot_days=10, cold_days=20, archive_days=30)
    hot, cold, archive = tiers()
    dry = Expiry(policy, hot, cold, archive, clock=FakeClock(NOW)).run(dry_run=True)
    assert (hot.dropped, cold.deleted, archive.deleted) == ([], [], [])
    assert dry.archive_deleted == 1 and dry.plan.hot_due == (day(12),) and dry.plan.hot_waiting == (day(11),)
    assert any("would drop 1 day(s)" in line for line in dry.lines())

    report = Expiry(policy, hot, cold, archive, clock=FakeClock(NOW)).run()
    assert hot.dropped == [day(12)] and sorted(hot.tables) == [day(11), day(10)]
    assert cold.deleted == [day(25)]
    assert archive.deleted == ["old"]
    assert report.lines()[2].startswith("hot index: kept 1 due day(s) not yet in the cold tier")
    assert oldest_days(hot, cold, archive) == {"hot": _iso(day(11)), "cold": _iso(day(20)), "archive": _iso(day(30))}


def test_oldest_days_of_empty_tiers_are_none() -> None:
    assert oldest_days(MemoryHot({}), MemoryCold({day(3): False}), MemoryArchive({})) == {
        "hot": None, "cold": None, "archive": None}


def _iso(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"
