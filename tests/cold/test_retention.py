"""Retention end to end on Azurite: expiry removes exactly what is due in each tier (hot day
tables, cold day files, raw archive blobs) and nothing else; a due hot day not yet compacted is
kept; `python -m collector expire` and `prune-index --before` a day.

Azurite stamps every blob with the real time, so the services' clock stands 31 days ahead: every
blob is old enough by its creation time, and what is due is decided by the days in the names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from collector import cli, keys
from collector.bootstrap import Services
from collector.cold.reader import DayReader
from collector.models import ContentRef, View
from collector.retention import oldest_days
from collector.settings import Settings
from tests.clock import FakeClock
from tests.constants import TENANT

from .data import index_items, synthetic_blobs

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=31)
TODAY = NOW.date()


def day(offset: int) -> str:
    return (TODAY - timedelta(days=offset)).strftime("%Y%m%d")


def day_start(offset: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=offset), datetime.min.time(), UTC)


@pytest.fixture
def env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The cold tests' storage settings (conftest.py) with short retention in every tier."""
    retention = {"HOT_INDEX_RETENTION_DAYS": "10", "COLD_RETENTION_DAYS": "20", "ARCHIVE_RETENTION_DAYS": "30"}
    for name, value in retention.items():
        monkeypatch.setenv(name, value)
    return {**env, **retention}


def hot_days(services: Services) -> dict[View, set[str]]:
    return {view: set(services.index.tables(view, refresh=True)) for view in keys.VIEWS}


def cold_folders(services: Services) -> dict[str, set[str]]:
    """Day (yyyyMMdd) → the file names under it."""
    out: dict[str, set[str]] = {}
    for name in services.cold_store.list(""):
        out.setdefault("".join(name.split("/")[:3]), set()).add(name)
    return out


def archive_names(services: Services) -> set[str]:
    return {b.name for b in services.archive.container.list_blobs()}


def raw_blob(services: Services, content_type: str, created: datetime, content_id: str) -> str:
    ref = ContentRef(content_type, content_id, f"https://example.invalid/{content_id}", created, created + timedelta(days=7))
    record = {"Id": f"{content_id}-0", "CreationTime": f"{created:%Y-%m-%dT%H:%M:%S}", "Operation": "FileAccessed",
              "UserId": "a@contoso.com", "OrganizationId": TENANT}
    return services.archive.put(ref, json.dumps([record]).encode(), 1).name


def test_expiry_removes_exactly_what_is_due_in_each_tier(env: dict[str, str]) -> None:
    services = Services(Settings.from_env(env), clock=FakeClock(NOW))
    services.ensure_storage()
    services.cold_store.ensure_container()
    indexed = {25: 1, 21: 2, 20: 3, 12: 4, 11: 5, 9: 6}  # days ago → seed
    for offset, seed in indexed.items():
        for blob in synthetic_blobs(4, hours=3, seed=seed, start=day_start(offset) + timedelta(hours=2), users=20):
            items = index_items(blob)
            services.archive.put(blob.ref, blob.body, len(items))
            services.index.write(items)
    for offset in (25, 21, 20, 12):  # day(11) and day(9) are not compacted
        assert services.compactor.compact_day(day(offset)).action == "compacted"
    old_raw = {raw_blob(services, "Audit.Exchange", day_start(31) + timedelta(hours=23), "due-31"),
               raw_blob(services, "Audit.General", day_start(45) + timedelta(hours=1), "due-45")}
    kept_raw = raw_blob(services, "Audit.Exchange", day_start(30), "kept-30")

    hot_keys = [h.key for h in services.index.scan(View.TIME, *keys.day_bounds(day(12)))]
    assert hot_keys
    hot_before, cold_before, archive_before = hot_days(services), cold_folders(services), archive_names(services)
    assert all(days == {day(o) for o in indexed} for days in hot_before.values())
    assert set(cold_before) == {day(25), day(21), day(20), day(12)}
    assert old_raw | {kept_raw} <= archive_before

    dry = services.expiry.run(dry_run=True)
    assert (hot_days(services), cold_folders(services), archive_names(services)) == (hot_before, cold_before, archive_before)
    assert dry.plan.hot_due == (day(25), day(21), day(20), day(12)) and dry.plan.hot_waiting == (day(11),)
    assert dry.plan.cold_due == (day(25), day(21))
    assert dry.archive_deleted == 2

    report = services.expiry.run()
    # hot: the due, compacted days are gone from every view; day(11) (due, not compacted) and day(9) stay
    assert all(days == {day(11), day(9)} for days in hot_days(services).values())
    assert report.hot_dropped == [day(25), day(21), day(20), day(12)]
    # cold: days before the cold cutoff are gone, file by file; the others untouched
    cold_after = cold_folders(services)
    assert cold_after == {d: cold_before[d] for d in (day(20), day(12))}
    assert report.cold_files_deleted == len(cold_before[day(25)]) + len(cold_before[day(21)]) and report.cold_files_kept == 0
    # archive: exactly the blobs of days before the archive cutoff
    assert archive_names(services) == archive_before - old_raw
    assert report.archive_deleted == 2 and report.archive_kept == {}
    # a dropped hot day still reads from the cold tier
    assert [h.key for h in DayReader(services.cold_store, day(12)).scan()] == hot_keys

    assert oldest_days(*services.tiers) == {"hot": _iso(day(11)), "cold": _iso(day(20)), "archive": _iso(day(30))}
    again = services.expiry.run()  # idempotent: nothing more is due
    assert (again.hot_dropped, again.cold_deleted, again.archive_deleted) == ([], [], 0)


def test_expire_and_prune_index_by_day_from_the_command_line(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"HOT_INDEX_RETENTION_DAYS": "1", "COLD_RETENTION_DAYS": "0", "ARCHIVE_RETENTION_DAYS": "1"}.items():
        monkeypatch.setenv(name, value)
    services = Services(Settings.from_env())
    services.ensure_storage()
    today = datetime.now(UTC).strftime("%Y%m%d")
    for d in ("20200101", "20200102", today):
        for view in keys.VIEWS:
            services.index.ensure_table(keys.table_name(env["AUDIT_TABLE_PREFIX"], view, d))
    raw = raw_blob(services, "Audit.Exchange", datetime(2020, 1, 1, 5, tzinfo=UTC), "uploaded-today")

    assert cli.main(["prune-index", "--before", "2020-01-02", "--dry-run"]) == 0
    assert "would drop index day 20200101" in capsys.readouterr().out
    assert all("20200101" in days for days in hot_days(services).values())
    assert cli.main(["prune-index", "--before", "2020-01-02"]) == 0
    assert all(days == {"20200102", today} for days in hot_days(services).values())
    assert cli.main(["prune-index", "--before", "2020-13-01"]) == cli.EXIT_CONFIG
    assert "--before must be a month (YYYY-MM) or a day (YYYY-MM-DD)" in capsys.readouterr().err

    assert cli.main(["expire", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert all(days == {today} for days in hot_days(services).values())  # no cold tier: nothing to wait for
    # The 2020 blob is due by its name but was uploaded today: never ahead of the lifecycle rule's clock.
    assert raw in archive_names(services)
    assert "hot index: dropped 1 day(s) (2020-01-02)" in out and "kept: 1 young" in out


def _iso(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"
