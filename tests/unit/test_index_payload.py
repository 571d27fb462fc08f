"""Index format 2: blocks of records read back field for field; format 1 entities still read; other
formats are a clear error."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from collector import index, keys
from collector.errors import IndexFormatError
from collector.index import (
    BlockRef,
    IndexItem,
    entry_from_entity,
    entry_from_values,
    location_from_entity,
    ordered_rows,
    plan_entities,
    pointer_of,
    rows_of,
)
from collector.models import AuditEntry, View
from collector.timeutil import format_record_time
from devtools import legacy_index
from devtools.benchkit import billed_entity_bytes

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
WHEN = datetime(2026, 11, 25, 3, 4, 5, tzinfo=UTC)
ENTRY = AuditEntry(
    id="5b3d2f6e-8c41-4a7e-9d0b-08dc73f1a2b4", time=format_record_time(WHEN), user="anna.berg@contoso.com",
    operation="FileAccessed", object="https://contoso.sharepoint.com/sites/finance/Shared Documents/q3.xlsx",
    result="Succeeded", clientIp="2001:db8::5", userAgent="Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    workload="SharePoint", recordType=6, contentType="Audit.SharePoint", organizationId=TENANT,
)
BLOB = "Audit.SharePoint/2026/11/25/03/x_y.json.gz"


def by_letter(items: list[IndexItem]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for letter, _day, entity in plan_entities(items, TENANT):
        out.setdefault(str(letter), []).append(entity)
    return out


def read_view(entities: list[dict], prefix: str, time_blocks: list[dict] | None = None) -> list[tuple[str, AuditEntry]]:
    """A view's rows in order, the values of postings taken from `time_blocks` (as a scan reads them)."""
    ordered = sorted((e for e in entities if e["RowKey"].startswith(prefix)), key=lambda e: (e["PartitionKey"], e["RowKey"]))
    homes = {block["RowKey"]: {row.key: row.values for row in rows_of(block, 0)} for block in time_blocks or []}
    out = []
    for row in ordered_rows(ordered, len(prefix)):
        values = row.values if row.values is not None else homes[row.ref][row.key]
        out.append((row.key, entry_from_values(row.key, values, TENANT)))
    return out


def round_trip(entry: AuditEntry) -> dict[str, AuditEntry]:
    written = by_letter([IndexItem(entry, WHEN, BLOB, 7)])
    user, operation = keys.value_hash(entry.user), keys.value_hash(entry.operation)
    return {"t": read_view(written["t"], "")[0][1], "u": read_view(written["k"], "u" + user, written["t"])[0][1],
            "o": read_view(written["k"], "o" + operation, written["t"])[0][1]}


@pytest.mark.parametrize(
    "entry",
    [
        ENTRY,
        replace(ENTRY, organizationId=TENANT.upper()),  # the tenant, whatever its case: stored as null
        replace(ENTRY, organizationId="0c9d8e7f-0000-4000-8000-0000000000aa"),  # another organization
        replace(ENTRY, organizationId=""),
        replace(ENTRY, user="", object="", result="", clientIp="", userAgent="", workload="", recordType=None),
        replace(ENTRY, contentType="Audit.SomethingNew"),  # not in the code table: stored by name
        replace(ENTRY, contentType="DLP.All", user="Zoë Ørsted <zoe@exämple.com>", object='quote " and \\ and \u2028'),
        replace(ENTRY, id='not-a-guid "quoted" \\ 𝔘'),  # an Id of another shape keeps its escaped key
    ],
)
def test_every_view_reads_back_the_entry(entry):
    expected = replace(entry, organizationId=TENANT if entry.organizationId.lower() == TENANT else entry.organizationId,
                       id=entry.id.lower())
    assert round_trip(entry) == {"t": expected, "u": expected, "o": expected}


def test_long_object_and_user_agent_are_cut_in_the_index():
    entry = replace(ENTRY, object="o" * 5000, userAgent="a" * 2000)
    read = round_trip(entry)["t"]
    assert (len(read.object), len(read.userAgent)) == (index.MAX_TEXT, index.MAX_TEXT)


def blob_items(count: int, step: timedelta, users: int = 3, blob: str = BLOB) -> list[IndexItem]:
    return [IndexItem(replace(ENTRY, id=f"5b3d2f6e-8c41-4a7e-9d0b-{i:012x}", user=f"user{i % users}@contoso.com"),
                      WHEN.replace(minute=59) - i * step, blob, i) for i in range(count)]


def test_a_blob_packs_into_few_blocks_and_one_id_entry_per_record():
    items = blob_items(300, timedelta(seconds=3))  # 15 minutes of one hour (3:44 to 3:59), 3 users, one operation
    written = by_letter(items)
    time_blocks, key_entries, id_entries = written["t"], written["k"], written["j"]
    assert len(time_blocks) == 3  # cut once a block spans CUT_SECONDS (100 rows) and holds CUT_ROWS
    assert sum(e["RowKey"].startswith("u") for e in key_entries) == 6  # a user: 64 rows (9.6 minutes), the rest
    assert sum(e["RowKey"].startswith("o") for e in key_entries) == 3
    assert len(key_entries) == 9 and len(id_entries) == 300  # the ids in their own table, none in the keys table
    rows = [row for block in time_blocks for row in rows_of(block, 0)]
    assert sorted((row.blob, row.position) for row in rows) == [(BLOB, i) for i in range(300)]
    for user in range(3):
        assert len(read_view(key_entries, "u" + keys.value_hash(f"user{user}@contoso.com"))) == 100


def test_a_user_seldom_in_a_blob_is_kept_as_postings_read_through_the_time_blocks():
    items = blob_items(60, timedelta(seconds=30), users=20)  # each user 3 times
    written = by_letter(items)
    postings = [e for e in written["k"] if e["RowKey"].startswith("u")]
    assert len(postings) == 20 and all(row.values is None and row.ref for e in postings for row in rows_of(e, 17))
    read = read_view(written["k"], "u" + keys.value_hash("user7@contoso.com"), written["t"])
    assert [entry.user for _, entry in read] == ["user7@contoso.com"] * 3
    whole = {key: entry for key, entry in read_view(written["t"], "")}
    assert all(whole[key] == entry for key, entry in read)


def test_every_block_carries_its_oldest_row_so_the_service_can_skip_it():
    items = blob_items(200, timedelta(seconds=20), users=2)  # 66 minutes: two hours of the time view
    for letter, _day, block in plan_entities(items, TENANT):
        if letter == keys.IDS_TABLE:
            continue
        seconds = [keys.INV_BASE - int(row.key[:10]) for row in rows_of(block, 0 if letter == "t" else 17)]
        newest = keys.INV_BASE - int(block["RowKey"][0 if letter == "t" else 17:][:10])
        assert max(seconds) == newest and min(seconds) == block[index.OLDEST] + index.OLDEST_EPOCH
        assert len(seconds) <= index.CUT_ROWS or newest - min(seconds) < index.CUT_SECONDS + 20


def test_blocks_are_a_function_of_their_records():
    items = blob_items(120, timedelta(seconds=7))
    once, again = plan_entities(items, TENANT), plan_entities(list(reversed(items)), TENANT)
    assert sorted(e["RowKey"] for _, _, e in once) == sorted(e["RowKey"] for _, _, e in again)
    # a part of the blob (a reindex of part of its range) is cut elsewhere: other keys, not overwrites
    part = {e["RowKey"]: e["d"] for letter, _, e in plan_entities(items[5:], TENANT) if letter == "t"}
    whole = {e["RowKey"]: e["d"] for letter, _, e in once if letter == "t"}
    assert all(whole[key] == payload for key, payload in part.items() if key in whole)


def test_a_record_twice_in_a_blob_is_one_row_and_across_blobs_scans_give_it_once():
    items = blob_items(10, timedelta(seconds=1))
    twice = by_letter(items + items[:3])
    assert sum(len(rows_of(b, 0)) for b in twice["t"]) == 10
    other = by_letter(blob_items(10, timedelta(seconds=1), blob="Audit.SharePoint/other.json.gz")[:4])
    merged = read_view(twice["t"] + other["t"], "")
    assert [key for key, _ in merged] == sorted({key for key, _ in merged}) and len(merged) == 10


def test_rows_come_newest_first_across_overlapping_blocks_of_many_blobs():
    items = []
    for b in range(6):  # six blobs whose records interleave in time
        items += [IndexItem(replace(ENTRY, id=f"00000000-0000-4000-8000-{b:04d}{i:08d}"), WHEN - timedelta(seconds=13 * i + b),
                            f"blob{b}", i) for i in range(50)]
    blocks = [e for b in range(6) for e in by_letter([it for it in items if it.blob == f"blob{b}"])["t"]]
    keys_read = [key for key, _ in read_view(blocks, "")]
    assert keys_read == sorted(keys_read) and len(keys_read) == 300


def test_the_id_entry_points_at_the_time_block_that_holds_the_record():
    written = by_letter([IndexItem(ENTRY, WHEN, BLOB, 41)])
    (entry_,) = written["j"]
    pointer = pointer_of(entry_)
    (block,) = written["t"]
    assert pointer == BlockRef(block["PartitionKey"], block["RowKey"])
    assert entry_["RowKey"] == keys.id_entry_key(keys.kid(ENTRY.id)) and len(entry_["RowKey"]) == 23
    assert set(block) == {"PartitionKey", "RowKey", "d", index.OLDEST} and set(entry_) == {"PartitionKey", "RowKey", "d"}
    assert [(row.blob, row.position) for row in rows_of(block, 0)] == [(BLOB, 41)]


def test_guid_id_keys_are_compact_and_distinct_from_other_ids():
    guid = keys.kid("5B3D2F6E-8C41-4A7E-9D0B-08DC73F1A2B4")
    assert keys.id_entry_key(guid) == keys.id_entry_key(keys.kid(ENTRY.id))
    assert keys.id_entry_key(guid + "_org") == keys.id_entry_key(guid) + "_org"
    assert keys.id_entry_key("abc").startswith("x") and keys.id_entry_key(guid).startswith("g")
    # the key the same entry had in a keys table written before the ids table (read, never written)
    assert keys.keys_table_id_key(guid + "_org") == "i" + keys.id_entry_key(guid) + "_org"
    assert len({keys.id_entry_key(keys.kid(f"5b3d2f6e-8c41-4a7e-9d0b-{i:012x}")) for i in range(1000)}) == 1000


def test_format_1_entities_still_read():
    item = IndexItem(ENTRY, WHEN, BLOB, 7)
    old = dict(legacy_index.entities_for(item, TENANT))
    assert read_view([old[View.TIME]], "")[0][1] == ENTRY
    user = keys.value_hash(ENTRY.user)
    assert read_view([old[View.USER]], user)[0][1] == ENTRY
    assert pointer_of(old[View.ID]) == location_from_entity(old[View.ID]) == (BLOB, 7)
    # a day rewritten by reindex holds both formats: each record once, the copy that knows its blob
    new = by_letter([item])["t"]
    (row,) = list(ordered_rows(sorted([old[View.TIME], *new], key=lambda e: e["RowKey"]), 0))
    assert (row.blob, row.position) == (BLOB, 7)


def test_view_entities_are_keys_plus_one_binary_payload_and_cost_little():
    items = blob_items(300, timedelta(seconds=3), users=100)
    written = plan_entities(items, TENANT)
    assert all(set(e) - {index.OLDEST} == {"PartitionKey", "RowKey", "d"} and isinstance(e["d"], bytes) for _, _, e in written)
    new = sum(billed_entity_bytes(e) for _, _, e in written) / len(items)
    old = sum(billed_entity_bytes(e) for it in items for _, e in legacy_index.entities_for(it, TENANT)) / len(items)
    assert new < old / 3


@pytest.mark.parametrize(
    "entity, expected",
    [
        ({"PartitionKey": "03", "RowKey": "k", "u": "anna", "op": "FileAccessed"}, "1 or 2"),  # no payload
        ({"PartitionKey": "03", "RowKey": "k", "d": b'[3,"a","b"]'}, "1 or 2"),  # a future format
        ({"PartitionKey": "03", "RowKey": "k", "d": b'[1,"a"]'}, "1 or 2"),  # wrong arity
        ({"PartitionKey": "03", "RowKey": "k", "d": b"\xff\x00 not json"}, "1 or 2"),
        ({"PartitionKey": "03", "RowKey": "k", "d": b"\x02 not deflate"}, "2"),
    ],
)
def test_an_entity_in_another_format_is_a_clear_error(entity, expected):
    with pytest.raises(IndexFormatError, match=rf"'03'/'k' is not in index format {expected}"):
        rows_of(entity, 0)


def test_a_format_1_id_entity_of_another_format_is_a_clear_error():
    with pytest.raises(IndexFormatError, match=r"not in index format 1 or 2"):
        location_from_entity({"PartitionKey": "03", "RowKey": "k", "d": b'[2,"a","b"]'})
    with pytest.raises(IndexFormatError, match=r"not in index format 2"):
        pointer_of({"PartitionKey": "03", "RowKey": "k", "d": b"\x02short"})
    assert entry_from_entity  # the cold tier's round trip (collector/cold/compaction.py) keeps format 1's codec


def test_a_record_in_two_blobs_has_postings_that_point_into_each_blobs_own_time_block():
    first = blob_items(3, timedelta(seconds=5), users=3)
    second = [replace(item, blob="Audit.SharePoint/again.json.gz", position=item.position + 10) for item in first]
    written = by_letter(first + second)
    for user in range(3):
        prefix = "u" + keys.value_hash(f"user{user}@contoso.com")
        postings = [row for e in written["k"] if e["RowKey"].startswith(prefix) for row in rows_of(e, len(prefix))]
        assert len(postings) == 2 and len({row.ref for row in postings}) == 2
        blocks = {b["RowKey"]: b for b in written["t"]}
        assert {(r.blob, r.position) for p in postings for r in rows_of(blocks[p.ref], 0) if r.key == p.key} == {
            (BLOB, user), ("Audit.SharePoint/again.json.gz", user + 10)}
