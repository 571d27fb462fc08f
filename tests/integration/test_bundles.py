"""Raw archive bundles on Azurite (collector/bundle.py): every original stays readable byte-exact,
a crash at any step loses nothing and a rerun finishes, late content makes a new generation."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from collector.archive import RawArchive
from collector.bundle import INDEX, Bundler, BundleStore
from collector.errors import NotFoundError
from collector.models import ContentRef
from tests.unit.fakes import FixedClock

DAY = datetime(2026, 11, 2, tzinfo=UTC)
NOW = DAY + timedelta(days=10)  # the day is closed (bundle.CLOSED_AFTER)
SP, EX = "Audit.SharePoint", "Audit.Exchange"


def ref(content_type: str, n: int, created: datetime) -> ContentRef:
    return ContentRef(content_type, f"{n:04d}$blob+{n}", f"https://api.test/{n}", created, created + timedelta(days=7))


def body(ref_: ContentRef, records: int = 3) -> bytes:
    return json.dumps([{"Id": f"{ref_.content_id}-{i}", "CreationTime": "2026-11-02T10:00:00", "Pad": "x" * (i * 50)}
                       for i in range(records)]).encode()


@pytest.fixture
def archive(storage_connection_string: str, unique_prefix: str) -> RawArchive:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    archive = RawArchive(service, unique_prefix.lower())
    archive.ensure_container()
    return archive


def fill(archive: RawArchive, refs: list[ContentRef]) -> dict[str, bytes]:
    for r in refs:
        archive.put(r, body(r), 3)
    return {archive.name(r): archive.stored(archive.name(r)) for r in refs}


class CrashAfter:
    """The archive seam, failing after `calls` successful calls of `method` (a crash at that step)."""

    def __init__(self, store: RawArchive, method: str, calls: int) -> None:
        self.store, self.method, self.left = store, method, calls

    def __getattr__(self, name: str):  # noqa: ANN204 - passes every other call through
        attr = getattr(self.store, name)
        if name != self.method:
            return attr

        def call(*args, **kwargs):
            if self.left == 0:
                raise RuntimeError(f"crash in {name}")
            self.left -= 1
            return attr(*args, **kwargs)
        return call


def bundler(store: BundleStore, **kwargs) -> Bundler:
    return Bundler(store, (SP, EX), clock=FixedClock(NOW), **kwargs)


def test_a_closed_day_is_bundled_and_every_original_reads_back_byte_exact(archive: RawArchive):
    refs = [ref(SP, n, DAY + timedelta(hours=n % 24, minutes=n)) for n in range(12)] + [ref(EX, 99, DAY + timedelta(hours=3))]
    stored = fill(archive, refs)
    later = ref(SP, 500, DAY + timedelta(days=1))  # the next day: bundled on its own
    archive.put(later, body(later), 3)

    report = bundler(archive, max_bundle_bytes=500).run(since=DAY.date(), through=DAY.date())

    assert report.bundled == 13 and sum(d.deleted for d in report.days) == 13
    listing = archive.list_names("")
    assert not [n for n in listing if n in stored]  # the originals are gone
    bundles = sorted(n for n in listing if "/_bundle-" in n)
    assert len([b for b in bundles if b.startswith(SP)]) > 1  # 500-byte bundles: several generations
    assert list(archive.names(f"{SP}/2026/11/02/")) == sorted(n for n in stored if n.startswith(SP))
    assert list(archive.names(f"{SP}/2026/11/02/13/")) == sorted(n for n in stored if n.startswith(f"{SP}/2026/11/02/13/"))
    assert archive.name(later) in list(archive.names(f"{SP}/2026/11/"))
    for r in refs:
        name = archive.name(r)
        assert archive.stored(name) == stored[name]  # the stored gzip bytes, exactly
        assert archive.read(r) == body(r)
        assert archive.record(name, 2, f"{r.content_id}-2")["Id"] == f"{r.content_id}-2"
    # a bundle is itself one valid gzip stream of the originals' bodies, in index order
    index = json.loads(archive.get_index(f"{SP}/2026/11/02/{INDEX}")[0])  # type: ignore[index]
    first = next(b for b in bundles if b.startswith(SP))
    members = sorted((v[1], k) for k, v in index["members"].items() if v[0] == first)
    by_name = {archive.name(r): r for r in refs}
    assert gzip.decompress(archive.stored(first)) == b"".join(body(by_name[k]) for _, k in members)


def test_a_crash_at_every_step_loses_nothing_and_a_rerun_finishes(archive: RawArchive):
    refs = [ref(SP, n, DAY + timedelta(hours=n)) for n in range(6)]
    stored = fill(archive, refs)
    for method, calls in (("put_file", 1), ("put_index", 0), ("delete", 2)):
        with pytest.raises(RuntimeError, match=f"crash in {method}"):
            bundler(CrashAfter(archive, method, calls), max_bundle_bytes=300).run(since=DAY.date(), through=DAY.date())
        for name, data in stored.items():  # readable after every crash, from the original or its bundle
            assert archive.stored(name) == data
    again = bundler(archive).run(since=DAY.date(), through=DAY.date())
    assert sum(d.deleted for d in again.days) >= 1
    assert not [n for n in archive.list_names(SP) if n in stored]
    for name, data in stored.items():
        assert archive.stored(name) == data
    assert bundler(archive).run(since=DAY.date(), through=DAY.date()).days == []  # nothing left to do


def test_late_content_of_a_bundled_day_goes_into_a_new_generation(archive: RawArchive):
    first = [ref(SP, n, DAY + timedelta(hours=n)) for n in range(3)]
    stored = fill(archive, first)
    bundler(archive).run(since=DAY.date(), through=DAY.date())
    late = ref(SP, 77, DAY + timedelta(hours=20))
    stored.update(fill(archive, [late]))

    report = bundler(archive).run(since=DAY.date(), through=DAY.date())

    assert (report.bundled, [d.deleted for d in report.days]) == (1, [1])
    assert sorted(n for n in archive.list_names(SP) if "/_bundle-" in n)[-1].endswith("_bundle-002.gz")
    for name, data in stored.items():
        assert archive.stored(name) == data


def test_open_days_wait_unless_forced_and_a_missing_name_is_still_not_found(archive: RawArchive):
    fresh = ref(SP, 1, NOW - timedelta(days=2))
    fill(archive, [fresh])
    assert bundler(archive).run().days == []  # the default window ends at the last closed day
    assert bundler(archive).run(since=fresh.content_created.date(), through=date(2030, 1, 1)).bundled == 1  # clamped to today
    with pytest.raises(NotFoundError):
        archive.stored(archive.name(ref(SP, 2, fresh.content_created)))


class Immutable(CrashAfter):
    def immutable(self) -> bool:
        return True


class Kept(CrashAfter):
    def delete(self, name: str) -> bool:  # storage refuses: a legal hold or time-based retention
        return False


def test_an_immutable_container_is_never_bundled_and_a_kept_original_is_counted(archive: RawArchive):
    refs = [ref(SP, n, DAY + timedelta(hours=n)) for n in range(2)]
    stored = fill(archive, refs)
    skipped = bundler(Immutable(archive, "", 0)).run(since=DAY.date(), through=DAY.date())
    assert skipped.days == [] and "immutability" in skipped.skipped
    assert sorted(n for n in archive.list_names(SP)) == sorted(stored)

    kept = bundler(Kept(archive, "", 0)).run(since=DAY.date(), through=DAY.date())
    assert [(d.bundled, d.deleted, d.kept) for d in kept.days] == [(2, 0, 2)]
    for name, data in stored.items():
        assert archive.stored(name) == data


def test_two_passes_cannot_both_commit_a_day(archive: RawArchive):
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

    prefix = f"{SP}/2026/11/02/"
    archive.put_index(prefix + INDEX, b'{"format":1,"members":{}}', None)
    with pytest.raises((ResourceExistsError, ResourceModifiedError)):
        archive.put_index(prefix + INDEX, b'{"format":1,"members":{}}', None)  # another pass committed first
    _, etag = archive.get_index(prefix + INDEX)  # type: ignore[misc]
    archive.put_index(prefix + INDEX, b'{"format":1,"members":{}}', etag)
    with pytest.raises((ResourceExistsError, ResourceModifiedError)):
        archive.put_index(prefix + INDEX, b'{"format":1,"members":{}}', etag)  # stale etag


def test_the_compaction_timer_bundles_closed_days_and_the_cli_does_too(storage_connection_string: str, unique_prefix: str,
                                                                       monkeypatch: pytest.MonkeyPatch, capsys):
    """Wiring: function_app.compact_cold_tier runs the bundler (ARCHIVE_BUNDLES, default on) and
    `python -m collector bundle` forces a day; an unbundled day's originals stay where they are."""
    import azure.functions as func

    from collector import bootstrap, cli

    class Timer(func.TimerRequest):
        past_due = False
    from collector.bootstrap import Services
    from collector.settings import Settings
    from tests.app_functions import functions

    env = {"AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string, "AUDIT_TABLE_PREFIX": unique_prefix,
           "AUDIT_ARCHIVE_CONTAINER": unique_prefix.lower(), "AUDIT_QUEUE_NAME": unique_prefix.lower(),
           "AUDIT_COLD_CONTAINER": unique_prefix.lower() + "-cold", "COLD_RETENTION_DAYS": "0",
           "M365_CONTENT_TYPES": SP, "ARCHIVE_RETENTION_DAYS": "0", "HOT_INDEX_RETENTION_DAYS": "0"}
    services = Services(Settings.from_env(env), clock=FixedClock(NOW))
    services.ensure_storage()
    closed = [ref(SP, n, NOW - timedelta(days=9, hours=n)) for n in range(3)]
    recent = ref(SP, 9, NOW - timedelta(days=2))
    stored = fill(services.archive, [*closed, recent])
    bootstrap.set_services(services)
    try:
        functions()["compact_cold_tier"].get_user_function()(Timer())  # type: ignore[attr-defined]
    finally:
        bootstrap.set_services(None)
    left = set(services.archive.list_names(SP))
    assert services.archive.name(recent) in left and not {services.archive.name(r) for r in closed} & left
    for name, data in stored.items():
        assert services.archive.stored(name) == data

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    day = recent.content_created.date().isoformat()
    assert cli.main(["bundle", "--since", day, "--through", day, "--quiet"]) == 0
    assert "bundled 1 content blob(s)" in capsys.readouterr().out
    assert services.archive.name(recent) not in set(services.archive.list_names(SP))
    assert cli.main(["bundle", "--through", "2026-02-30"]) == cli.EXIT_CONFIG
    assert "--through must be a day as YYYY-MM-DD, got '2026-02-30'" in capsys.readouterr().err
