from datetime import UTC, datetime, timedelta

import pytest

from collector import keys

T = datetime(2026, 11, 25, 3, 4, 5, tzinfo=UTC)
TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"


def test_order_key_sorts_newest_first():
    older = keys.order_key(T, "b", TENANT, TENANT)
    newer = keys.order_key(T + timedelta(seconds=1), "a", TENANT, TENANT)
    assert newer < older


@pytest.mark.parametrize(
    ("record_id", "org"),
    [("5B3D2F6E-8C41-4A7E-9D0B-08DC73F1A2B4", TENANT), ("weird/id#with?chars_and%", TENANT),
     ("5b3d2f6e-8c41-4a7e-9d0b-08dc73f1a2b4", "other-org")],
)
def test_order_key_round_trips(record_id, org):
    key = keys.order_key(T, record_id, org, TENANT)
    assert not any(c in key for c in "/\\#?")
    when, ident, parsed_org = keys.split_order_key(key)
    assert when == T
    assert ident == record_id.lower()
    assert parsed_org == (None if org == TENANT else org)


def test_dedupe_key_includes_the_organization():
    same = keys.order_key(T, "x", TENANT, TENANT)
    other = keys.order_key(T, "x", "11111111-1111-1111-1111-111111111111", TENANT)
    assert same != other


def test_value_hash_is_case_insensitive():
    assert keys.value_hash("Alex@Contoso.com") == keys.value_hash("alex@contoso.com")
    assert keys.shard(keys.value_hash("a")) in {f"{i:02d}" for i in range(keys.SHARDS)}


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (datetime(2026, 2, 27, 5, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC), ["20260301", "20260228", "20260227"]),
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), ["20260101"]),
    ],
)
def test_days(start, end, days):
    assert keys.days_newest_first(start, end) == days


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        (datetime(2026, 9, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), ["202611", "202610", "202609"]),
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), ["202601"]),
        (datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), ["202601", "202512"]),
    ],
)
def test_months(start, end, months):
    assert keys.months_newest_first(start, end) == months


def test_hour_partitions_sort_newest_first_within_a_day():
    a = keys.hour_partition(datetime(2026, 11, 1, 0, tzinfo=UTC))
    b = keys.hour_partition(datetime(2026, 11, 1, 23, tzinfo=UTC))
    assert b < a


def test_archive_blob_name_is_deterministic_and_one_segment_per_id():
    name = keys.archive_blob_name("Audit.Exchange", "2024$a/b$c", T)
    assert name == "Audit.Exchange/2026/11/25/03/20261125T030405000Z_2024$a%2Fb$c.json.gz"
    assert keys.archive_blob_name("Audit.Exchange", "2024$a/b$c", T) == name
