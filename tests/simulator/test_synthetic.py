"""The synthetic tenant: record shapes per workload (docs/api-behaviour.md "Record schema"), quirks, duplicates, latency, determinism."""

from __future__ import annotations

import collections
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.settings import CONTENT_TYPES
from simulator import Simulator, synthetic
from simulator.live import LiveFeed

from .helpers import NOW, TENANT, FakeClock

START = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)
END = datetime(2024, 5, 9, 0, 0, tzinfo=UTC)  # 3 days, a Monday to Thursday
CREATION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def tenant() -> tuple[Simulator, synthetic.GenerationStats, list[tuple[Any, list[dict[str, Any]]]]]:
    """3 days × 1,200 records/hour with generous quirk rates, generated once for this module."""
    sim = Simulator(TENANT, clock=lambda: END + timedelta(days=1))
    stats = sim.generate(START, END, records_per_hour=1200, seed=42, users=120, duplicate_across_blobs_rate=0.02,
                         duplicate_within_blob_rate=0.01, late_blobs_per_day=2.0)
    blobs = [(blob, blob.records) for blob in sim.blobs()]
    return sim, stats, blobs


def all_records(blobs: list[tuple[Any, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    return [record for _, records in blobs for record in records]


def test_counts_are_consistent(tenant):
    sim, stats, blobs = tenant
    assert stats.events == 3 * 24 * 1200  # the hourly remainders carry: the total is exact
    assert stats.records == stats.events + stats.duplicates_within_blob + stats.duplicates_across_blobs
    assert stats.blobs == len(blobs) == len(sim.blobs())
    assert sum(blob.record_count for blob, _ in blobs) == stats.records == len(all_records(blobs))
    assert set(stats.by_content_type) == set(CONTENT_TYPES)
    assert sum(stats.by_content_type.values()) == stats.records


def test_every_record_has_the_common_schema(tenant):
    _, _, blobs = tenant
    for blob, records in blobs:
        for record in records:
            assert CREATION.match(record["CreationTime"]), record["CreationTime"]  # "Timestamps": no Z, no fraction
            assert record["OrganizationId"] == TENANT
            assert isinstance(record["RecordType"], int) and isinstance(record["UserType"], int)
            assert record["Version"] == 1 and record["Id"] and record["Operation"] and record["Workload"]
            # contentCreated is availability, after the event (except late jitter of seconds)
            assert datetime.fromisoformat(record["CreationTime"] + "+00:00") <= blob.content_created


def test_workload_shapes_and_quirks(tenant):
    _, _, blobs = tenant
    records = all_records(blobs)
    by_op = collections.defaultdict(list)
    for record in records:
        by_op[(record["RecordType"], record["Operation"])].append(record)

    logons = by_op[(15, "UserLoggedIn")] + by_op[(15, "UserLoginFailed")]
    assert logons and all(any(p["Name"] == "UserAgent" for p in r["ExtendedProperties"]) for r in logons)
    assert all("ActorIpAddress" in r for r in logons)
    assert {r["ResultStatus"] for r in by_op[(15, "UserLoginFailed")]} == {"Failed"}
    assert any(r["UserKey"] == "Not Available" for r in by_op[(15, "UserLoginFailed")])

    directory = [r for r in records if r["RecordType"] == 8]
    assert {"Add user.", "Update user."} <= {r["Operation"] for r in directory}
    assert all(isinstance(p, dict) and {"Name", "NewValue", "OldValue"} <= set(p) for r in directory for p in r["ModifiedProperties"])
    assert any(r["ClientIP"] is None for r in directory)  # "Common fields": null for some Entra events

    mail = by_op[(50, "MailItemsAccessed")]
    assert mail and all(r["ClientInfoString"] and r["ClientIPAddress"] for r in mail)
    assert all(r["OriginatingServer"].endswith("\r\n") for r in mail)
    updates = by_op[(2, "Update")]
    assert updates and all(all(isinstance(p, str) for p in r["ModifiedProperties"]) for r in updates)  # "Normalization pitfalls": list of strings

    admin = [r for r in records if r["RecordType"] == 1]
    assert {r["ResultStatus"] for r in admin} == {"True", "False"}
    assert any(isinstance(r["Parameters"], list) for r in admin) and any(isinstance(r["Parameters"], str) for r in admin)
    assert any(r["UserId"].startswith("NT AUTHORITY\\SYSTEM") for r in admin)

    files = [r for r in records if r["RecordType"] in (4, 6, 14, 36)]
    assert all("ResultStatus" not in r and "UserAgent" in r for r in files)
    assert {"SharePoint", "OneDrive"} <= {r["Workload"] for r in files}
    ips = [r["ClientIP"] for r in files]
    assert any(re.fullmatch(r"\[2001:db8:[0-9a-f:]+\]:\d+", ip) for ip in ips)  # bracketed IPv6 with a port
    assert any(re.fullmatch(r"\d+\.\d+\.\d+\.\d+:\d+", ip) for ip in ips)  # IPv4 with a port
    assert any(r["UserId"] == "SHAREPOINT\\system" for r in files)
    assert all(isinstance(r["ItemType"], str) for r in files)

    general = {r["Workload"] for r in records if r["RecordType"] in (20, 25, 28, 40, 66, 261, 99999)}
    assert {"MicrosoftTeams", "PowerBI", "FutureWorkload"} <= general
    dlp = [r for blob, rs in blobs if blob.content_type == "DLP.All" for r in rs]
    assert dlp and {r["UserKey"] for r in dlp} == {"DlpAgent"} and "DlpRuleMatch" in {r["Operation"] for r in dlp}

    ip_values = [r.get("ClientIP") for r in records]
    assert all(ip is None or ip == "" or ip == "client.example.net" or ip.startswith(("192.0.2.", "198.51.100.", "203.0.113.", "2001:db8:", "[2001:db8:"))
               for ip in ip_values)  # documentation ranges only


def test_content_types_hold_their_workloads(tenant):
    _, _, blobs = tenant
    expected = {"Audit.AzureActiveDirectory": {"AzureActiveDirectory"}, "Audit.Exchange": {"Exchange"},
                "Audit.SharePoint": {"SharePoint", "OneDrive"}}
    for blob, records in blobs:
        if blob.content_type in expected:
            assert {r["Workload"] for r in records} <= expected[blob.content_type]


def test_duplicates_within_and_across_blobs(tenant):
    _, stats, blobs = tenant
    within = sum(1 for _, records in blobs if len({r["Id"] for r in records}) < len(records))
    assert within > 0 and stats.duplicates_within_blob > 0
    where = collections.defaultdict(set)
    for blob, records in blobs:
        for record in records:
            where[record["Id"]].add(blob.content_id)
    repeated = {record_id for record_id, blob_ids in where.items() if len(blob_ids) > 1}
    assert len(repeated) == stats.duplicates_across_blobs > 0
    bodies = collections.defaultdict(set)
    for _, records in blobs:
        for record in records:
            if record["Id"] in repeated:
                bodies[record["Id"]].add(json.dumps(record, sort_keys=True))
    assert all(len(b) == 1 for b in bodies.values())  # a duplicate is the same record, byte for byte


def test_records_are_out_of_order_and_latency_is_realistic(tenant):
    _, _, blobs = tenant
    unordered = sum(1 for _, records in blobs if [r["CreationTime"] for r in records] != sorted(r["CreationTime"] for r in records))
    assert unordered > len(blobs) / 4
    lags = sorted((blob.content_created - datetime.fromisoformat(r["CreationTime"] + "+00:00")).total_seconds() / 60
                  for blob, records in blobs if blob.content_type != "DLP.All" for r in records)
    median = lags[len(lags) // 2]
    assert 5 < median < 60  # minutes typical ("Latency")
    assert lags[int(len(lags) * 0.99)] > 60  # a tail of hours


def test_late_blobs_hold_days_old_events(tenant):
    _, stats, blobs = tenant
    assert stats.late_blobs > 0
    old = [blob for blob, records in blobs
           if records and all(blob.content_created - datetime.fromisoformat(r["CreationTime"] + "+00:00") > timedelta(hours=23) for r in records)]
    assert len(old) >= stats.late_blobs


def test_blob_ids_expiration_and_sizes(tenant):
    _, stats, blobs = tenant
    for blob, _ in blobs[:200]:
        t1 = blob.content_id.split("$")[0]
        assert blob.content_expiration == datetime.strptime(t1[:17], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC) + timedelta(days=7)
    size = sum(len(blob.body) for blob, _ in blobs) / stats.records
    assert 900 < size < 1700  # ~1-1.5 KB per record


def test_user_activity_is_skewed(tenant):
    _, _, blobs = tenant
    counts = collections.Counter(r["UserId"] for r in all_records(blobs) if r["Workload"] == "SharePoint" and "@" in r["UserId"])
    ranked = [n for _, n in counts.most_common()]
    assert ranked[0] > 10 * ranked[len(ranked) // 2]


def test_same_seed_same_tenant_other_seed_other_tenant():
    def bodies(seed: int) -> list[tuple[str, bytes]]:
        sim = Simulator(TENANT, clock=lambda: END)
        sim.generate(START, START + timedelta(hours=6), records_per_hour=300, seed=seed)
        return [(b.content_id, b.body) for b in sim.blobs()]

    assert bodies(5) == bodies(5)
    assert bodies(5) != bodies(6)


def test_generate_blobs_without_a_simulator_and_knob_validation():
    generator, blobs = synthetic.generate_blobs(TENANT, START, START + timedelta(hours=2), records_per_hour=100,
                                                content_types=["Audit.Exchange"], seed=1, diurnal=False)
    specs = list(blobs)
    assert {s.content_type for s in specs} == {"Audit.Exchange"}
    assert sum(s.record_count for s in specs) == generator.stats.records >= 200
    with pytest.raises(TypeError, match="unknown realism"):
        synthetic.generate_blobs(TENANT, START, END, no_such_knob=1)


def test_live_feed_adds_fresh_content(clock: FakeClock):
    sim = Simulator(TENANT, clock=clock, subscribed=True)
    feed = LiveFeed(sim, records_per_hour=3600, seed=3)
    clock.advance(timedelta(minutes=5))
    assert feed.tick() > 0
    created = [b.content_created for b in sim.blobs()]
    assert min(created) > NOW  # fresh events only
    assert feed.tick() == 0  # nothing new until the clock moves


def test_a_benchmark_sized_week(tmp_path):
    """A week at the ingest benchmark's size (devtools/bench_ingest.py: ~40,000 records) generates
    and its counts add up (speed is the benchmark's business, not asserted; the query and ingestion
    benchmarks' 200,000+ records run the same code)."""
    sim = Simulator(TENANT, clock=lambda: datetime(2024, 5, 14, tzinfo=UTC))
    stats = sim.generate(datetime(2024, 5, 7, tzinfo=UTC), datetime(2024, 5, 14, tzinfo=UTC), records_per_hour=50_000 / 168, seed=9)
    assert stats.events == 50_000
    assert sum(blob.record_count for blob in sim.blobs()) == stats.records >= 50_000
    assert stats.records == stats.events + stats.duplicates_within_blob + stats.duplicates_across_blobs
