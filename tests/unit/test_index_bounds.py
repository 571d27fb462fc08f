"""Issue 12: one absurd field or record id must not poison a blob (Table limits: 64 KiB a property,
1 KiB a key; docs/storage-facts.md). The index cuts, the archive keeps the record whole."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from collector import keys
from collector.index import IndexItem, entry_from_values, plan_entities, rows_of
from collector.normalize import normalize_record

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HUGE = 200_000


def item(**fields: object) -> IndexItem:
    record = {"Id": "00000000-0000-4000-8000-000000000001", "CreationTime": "2026-11-20T10:00:00",
              "Operation": "FileAccessed", "OrganizationId": TENANT, "RecordType": 6, "Workload": "SharePoint",
              "UserId": "megan@contoso.com", **fields}
    entry, when = normalize_record(record, "Audit.SharePoint", WHEN)
    return IndexItem(entry, when, "Audit.SharePoint/x.json.gz", 0)


def key_units(text: str) -> int:
    return len(text.encode("utf-16-le"))


@pytest.mark.parametrize("field", ["UserId", "Operation", "ObjectId", "ResultStatus", "ClientIP", "UserAgent",
                                   "Workload", "OrganizationId"])
@pytest.mark.parametrize("char", ["x", "\x01", "𝔘"])  # plain, a 6-byte JSON escape, 4 UTF-8 bytes / 2 UTF-16 units
def test_every_indexed_field_is_cut_so_each_entity_fits_well_under_the_limits(field: str, char: str):
    entities = plan_entities([item(**{field: char * HUGE})], TENANT)

    for _letter, _day, entity in entities:
        assert len(entity["d"]) <= 64 * 1024
        assert key_units(entity["PartitionKey"]) <= 1024 and key_units(entity["RowKey"]) <= 1024


def test_a_blob_of_absurd_records_still_fits_every_block_under_the_property_limit():
    items = [IndexItem(replace(item(ObjectId="\x01" * HUGE).entry, id=f"00000000-0000-4000-8000-{i:012d}"),
                       WHEN, "Audit.SharePoint/x.json.gz", i) for i in range(40)]
    entities = plan_entities(items, TENANT)
    assert all(len(entity["d"]) <= 64 * 1024 for _, _, entity in entities)
    assert sum(len(rows_of(e, 0)) for letter, _, e in entities if letter == "t") == 40


def test_an_absurd_record_id_is_hashed_into_the_keys_and_kept_in_the_payload():
    absurd = "id-" + "x" * 5000
    entities = plan_entities([item(Id=absurd)], TENANT)
    (time_block,) = [e for letter, _, e in entities if letter == "t"]

    assert keys.is_hashed(keys.kid(absurd)) and not keys.is_hashed(keys.kid("00000000-0000-4000-8000-000000000001"))
    assert keys.kid(absurd) == keys.kid(absurd.upper())  # ids compare case-insensitively, hashed or not
    (row,) = rows_of(time_block, 0)
    entry = entry_from_values(row.key, row.values, TENANT)
    assert entry.id == absurd[:1024]  # the payload keeps the id (cut like every field); the archive all of it
    for _, _, entity in entities:
        assert key_units(entity["RowKey"]) <= 1024


def test_an_ordinary_record_keeps_the_payload_format_of_ten_fields():
    (time_block,) = [e for letter, _, e in plan_entities([item()], TENANT) if letter == "t"]
    (row,) = rows_of(time_block, 0)
    assert len(row.values) == 10  # ten fields: no id element for an ordinary id
    assert entry_from_values(row.key, row.values, TENANT).id == "00000000-0000-4000-8000-000000000001"
