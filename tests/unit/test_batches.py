"""How index writes become transactions: the pipeline's plan and the benchmark's full batches."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from collector import keys
from collector.index import BATCH_BYTES, BATCH_LIMIT, IndexItem, plan_batches
from collector.models import AuditEntry
from collector.timeutil import format_record_time
from devtools.benchkit import full_batches

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
WHEN = datetime(2026, 11, 25, 3, 4, 5, tzinfo=UTC)
ENTRY = AuditEntry(
    id="", time=format_record_time(WHEN), user="anna.berg@contoso.com", operation="FileAccessed", object="x",
    result="Succeeded", clientIp="", userAgent="", workload="SharePoint", recordType=6,
    contentType="Audit.SharePoint", organizationId=TENANT,
)


def item(i: int, when: datetime = WHEN, user: str = "anna.berg@contoso.com") -> IndexItem:
    return IndexItem(replace(ENTRY, id=f"00000000-0000-4000-8000-{i:012d}", user=user), when, "blob", i)


def test_a_blob_becomes_one_transaction_per_partition_at_most_100_entities_each():
    items = [item(i) for i in range(250)]  # one user, one operation, one second
    batches = plan_batches(items, "p", TENANT)
    assert all(len(rows) <= BATCH_LIMIT and len({r["PartitionKey"] for r in rows}) == 1 for _, rows in batches)
    assert all(sum(len(r["d"]) for r in rows) <= BATCH_BYTES for _, rows in batches)
    by_table = {table: sum(len(rows) for t, rows in batches if t == table) for table, _ in batches}
    # t: one block; k: one user block + one operation block; j: 250 id entries, over the shards
    assert by_table == {"pt20261125": 1, "pk20261125": 2, "pj20261125": 250}
    # k: the two blocks in one or two shards; j: 250 ids over 2 shards of ≤ 100 per batch: at most 2 + 2
    assert len(batches) <= 1 + keys.KEY_SHARDS + 4


def test_a_record_twice_in_a_blob_is_written_once_and_days_have_their_own_tables():
    items = [item(1), item(2), item(1), item(3, when=WHEN + timedelta(days=1))]
    batches = plan_batches(items, "p", TENANT)
    keys_written = [(table, row["RowKey"]) for table, rows in batches for row in rows]
    assert len(keys_written) == len(set(keys_written))
    assert sum(1 for table, key in keys_written if table.startswith("pj")) == 3
    assert {table[-8:] for table, _ in batches} == {"20261125", "20261126"}


def test_full_batches_fill_to_100_and_split_where_a_key_repeats():
    rows = [("t1", {"PartitionKey": "a", "RowKey": f"{i:03d}"}) for i in range(150)]
    rows += [("t1", {"PartitionKey": "a", "RowKey": "149"})]  # the API's duplicate, delivered again
    rows += [("t1", {"PartitionKey": "b", "RowKey": "1"}), ("t2", {"PartitionKey": "a", "RowKey": "1"})]
    batches = full_batches(rows)
    assert [(table, len(chunk)) for table, chunk in batches] == [("t1", 100), ("t1", 50), ("t1", 1), ("t1", 1), ("t2", 1)]
    assert sum(len(chunk) for _, chunk in batches) == len(rows)  # every upsert kept, duplicates included
