"""The short fault and crash soak of `make test` (devtools/soak.py; `make soak` is the long one):
every fault kind, SIGKILLs of the collector subprocess, then the exact check finds nothing lost or
duplicated. And the check can fail: a deleted id-view row, a deleted archive blob, a record's
second time-view row and a changed archive body are each found."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from collector import keys
from collector.index import IndexItem, plan_entities
from collector.models import View
from collector.normalize import normalize_record
from devtools.soak import FAULT_KINDS, Options, Soak, Stats, Verdict, failures

pytestmark = pytest.mark.slow

OPTIONS = Options(cycles=10, kills=3, seed=12, visibility_timeout=5, content_types=("Audit.Exchange", "Audit.SharePoint"),
                  quiet=True)


@dataclass
class Soaked:
    soak: Soak
    stats: Stats
    verdict: Verdict


@pytest.fixture(scope="module")
def soaked() -> Iterator[Soaked]:
    with Soak(OPTIONS) as soak:
        stats = soak.run()
        yield Soaked(soak, stats, soak.check())


def test_the_short_soak_loses_and_duplicates_nothing(soaked: Soaked):
    stats, verdict = soaked.stats, soaked.verdict
    assert failures(stats, verdict, OPTIONS) == []
    assert verdict.lost == [] and verdict.duplicated == [] and verdict.unexpected == []
    assert verdict.archive_mismatches == [] and verdict.silent_expiries == []
    assert all(stats.faults[kind] >= 1 for kind in FAULT_KINDS), stats.faults
    assert stats.kills_total >= OPTIONS.kills and stats.cycles == OPTIONS.cycles
    assert verdict.records > 0 and verdict.blobs > 0
    assert verdict.expired_blobs >= 1 and verdict.health_expired >= verdict.expired_blobs  # expired_content did happen


def test_the_check_finds_a_lost_row_a_lost_blob_a_duplicate_and_changed_bytes(soaked: Soaked):
    soak = soaked.soak
    services, sim = soak.services, soak.sim
    tenant = services.settings.tenant_id
    prefix = services.settings.table_prefix
    kept = [b for ct in OPTIONS.content_types for b in sim.blobs(ct) if sim.listable(b)
            and services.archive.container.get_blob_client(services.archive.name(_ref(b))).exists()]
    assert len(kept) >= 4
    unread_blob, row_blob, twice_blob, changed_blob = kept[:4]

    services.archive.container.delete_blob(services.archive.name(_ref(unread_blob)))
    record = row_blob.records[0]
    _, when = normalize_record(record, row_blob.content_type, row_blob.content_created)
    rk = keys.kid(record["Id"]) + keys.org_suffix(record["OrganizationId"], tenant)
    services.tables.get(keys.table_name(prefix, keys.IDS_TABLE, keys.day_of(when))).delete_entity(
        keys.id_partition(rk, keys.KEY_SHARDS), keys.id_entry_key(rk))
    record2 = twice_blob.records[0]
    entry2, when2 = normalize_record(record2, twice_blob.content_type, twice_blob.content_created)
    # The same record once more in the time view, a second earlier, in a block of another blob.
    (_, day, block), = [(letter, day, entity) for letter, day, entity in
                        plan_entities([IndexItem(entry2, when2 - timedelta(seconds=1), "soak/twice.json.gz", 0)], tenant)
                        if letter == View.TIME]
    services.tables.get(keys.table_name(prefix, View.TIME, day)).upsert_entity(block)
    changed = services.archive.container.get_blob_client(services.archive.name(_ref(changed_blob)))
    changed.delete_blob()
    changed.upload_blob(gzip.compress(changed_blob.body + b" "))

    verdict = soak.check()

    assert any(unread_blob.content_id in line and "not archived" in line for line in verdict.lost)
    assert any(record["Id"] in line and "no id entry" in line for line in verdict.lost)
    assert [line for line in verdict.duplicated if rk_of(record2, tenant) in line]
    assert [line for line in verdict.archive_mismatches if changed_blob.content_id in line]
    assert failures(soaked.stats, verdict, OPTIONS)  # so the soak exits non-zero


def rk_of(record: dict[str, str], tenant: str) -> str:
    return keys.kid(record["Id"]) + keys.org_suffix(record["OrganizationId"], tenant)


def _ref(blob):  # type: ignore[no-untyped-def]
    from collector.models import ContentRef

    return ContentRef(blob.content_type, blob.content_id, "", blob.content_created, blob.content_expiration)
