"""transaction.upsert on Azurite: it leaves what the SDK's submit_transaction leaves, and fails as it does."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from collector import keys, transaction
from collector.index import BATCH_BYTES, BATCH_LIMIT, IndexItem, plan_batches
from collector.normalize import normalize_record
from collector.tables import TableClients, table_missing
from simulator.synthetic import generate_blobs
from tests.constants import TENANT


def index_batches(prefix: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The index's own transactions for a few synthetic content blobs (every entity shape it writes)."""
    start = datetime(2026, 11, 3, 9, tzinfo=UTC)
    _, blobs = generate_blobs(TENANT, start, start + timedelta(hours=1), 3000, users=2000, seed=11)
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for blob in list(blobs)[:4]:
        name = keys.archive_blob_name(blob.content_type, f"c{blob.content_created:%H%M%S%f}", blob.content_created)
        items = [IndexItem(*normalize_record(r, blob.content_type, blob.content_created), name, i)
                 for i, r in enumerate(json.loads(blob.body))]
        batches += plan_batches(items, prefix, TENANT)
    return batches


def stored(client: TableClient) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["PartitionKey"], e["RowKey"]): dict(e) for e in client.list_entities()}


def test_the_index_transactions_leave_what_the_sdk_leaves(storage_connection_string: str, unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    batches = index_batches(unique_prefix)
    assert {len({e["PartitionKey"] for e in chunk}) for _, chunk in batches} == {1}
    assert max(len(chunk) for _, chunk in batches) > 20
    for table in {table for table, _ in batches}:
        clients.create(table)
        clients.create(f"{table}sdk")
    for table, chunk in batches:
        transaction.upsert(clients.get(table), chunk)
        clients.get(f"{table}sdk").submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in chunk])

    for table in {table for table, _ in batches}:
        ours, sdk = stored(clients.get(table)), stored(clients.get(f"{table}sdk"))
        assert ours == sdk
        assert any(isinstance(e.get("d"), bytes) for e in ours.values())
    written = sum(len(stored(clients.get(t))) for t in {t for t, _ in batches})
    assert written == len({(t, e["PartitionKey"], e["RowKey"]) for t, chunk in batches for e in chunk})


def test_keys_and_values_that_need_escaping_round_trip(storage_connection_string: str, unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    clients.create(unique_prefix)
    table = clients.get(unique_prefix)
    entities = [{"PartitionKey": "o'brien ä %20+&=", "RowKey": f"r'{i}\u00e9\u4e2d;,()", "d": bytes(range(256)),
                 "n": -(2**31), "m": 2**31 - 1, "b": i % 2 == 0, "f": 0.1 * i, "s": "q\"u\\o\u2028te\n",
                 "none": None} for i in range(3)]
    transaction.upsert(table, entities)

    back = stored(table)
    assert set(back) == {(e["PartitionKey"], e["RowKey"]) for e in entities}
    for entity in entities:
        got = back[(entity["PartitionKey"], entity["RowKey"])]
        assert {k: v for k, v in entity.items() if v is not None and k != "f"} == {k: v for k, v in got.items() if k != "f"}
        assert got["f"] == pytest.approx(entity["f"])


def test_a_full_transaction_of_the_index_batch_size_is_written(storage_connection_string: str, unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    clients.create(unique_prefix)
    # index.BATCH_LIMIT entities of index.BATCH_BYTES in all: the largest transaction the index sends
    entities = [{"PartitionKey": "p", "RowKey": f"{i:03d}", "d": bytes([i]) * (BATCH_BYTES // BATCH_LIMIT)}
                for i in range(BATCH_LIMIT)]
    transaction.upsert(clients.get(unique_prefix), entities)
    assert stored(clients.get(unique_prefix)) == {("p", e["RowKey"]): e for e in entities}


def test_merge_keeps_the_properties_it_does_not_name(storage_connection_string: str, unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    clients.create(unique_prefix)
    table = clients.get(unique_prefix)
    transaction.upsert(table, [{"PartitionKey": "p", "RowKey": "r", "s": "indexed", "q": "1"}])
    transaction.upsert(table, [{"PartitionKey": "p", "RowKey": "r", "q": "2"},
                               {"PartitionKey": "p", "RowKey": "new", "q": "2"}], UpdateMode.MERGE)
    assert stored(table) == {("p", "r"): {"PartitionKey": "p", "RowKey": "r", "s": "indexed", "q": "2"},
                             ("p", "new"): {"PartitionKey": "p", "RowKey": "new", "q": "2"}}
    transaction.upsert(table, [{"PartitionKey": "p", "RowKey": "r", "q": "3"}])  # replace
    assert stored(table)[("p", "r")] == {"PartitionKey": "p", "RowKey": "r", "q": "3"}


def test_a_failed_operation_fails_the_transaction_as_the_sdk_says_it(storage_connection_string: str,
                                                                    unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    clients.create(unique_prefix)
    table = clients.get(unique_prefix)
    entities = [{"PartitionKey": "p", "RowKey": "fine"}, {"PartitionKey": "p", "RowKey": "big", "d": b"x" * 70_000}]

    with pytest.raises(TableTransactionError) as ours:
        transaction.upsert(table, entities)
    with pytest.raises(TableTransactionError) as sdk:
        table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in entities])

    assert (ours.value.status_code, ours.value.error_code, ours.value.index) == (400, "PropertyValueTooLarge", 1)
    assert (sdk.value.status_code, sdk.value.error_code, sdk.value.index) == (400, "PropertyValueTooLarge", 1)
    assert stored(table) == {}  # nothing of a failed transaction is written


def test_a_missing_table_is_table_not_found_and_clients_upsert_recreates_it(storage_connection_string: str,
                                                                          unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    with pytest.raises(TableTransactionError) as missing:
        transaction.upsert(clients.get(unique_prefix), [{"PartitionKey": "p", "RowKey": "r"}])
    assert (missing.value.status_code, missing.value.error_code) == (404, "TableNotFound")
    assert table_missing(missing.value)

    clients.upsert(unique_prefix, [{"PartitionKey": "p", "RowKey": "1"}])
    TableClients.from_connection_string(storage_connection_string).delete(unique_prefix)  # prune-index elsewhere
    clients.upsert(unique_prefix, [{"PartitionKey": "p", "RowKey": "2"}])  # believed to exist: recreated
    assert set(stored(clients.get(unique_prefix))) == {("p", "2")}


def test_a_refused_batch_keeps_the_services_status_and_code(storage_connection_string: str, unique_prefix: str):
    TableClients.from_connection_string(storage_connection_string).create(unique_prefix)
    wrong_key = re.sub(r"AccountKey=[^;]+", "AccountKey=" + "QUJD" * 22, storage_connection_string)
    table = TableClients.from_connection_string(wrong_key).get(unique_prefix)
    entity = {"PartitionKey": "p", "RowKey": "r"}

    with pytest.raises(HttpResponseError) as ours:
        transaction.upsert(table, [entity])
    with pytest.raises(HttpResponseError) as sdk:
        table.submit_transaction([("upsert", entity, {"mode": UpdateMode.REPLACE})])

    assert type(ours.value) is type(sdk.value)
    assert (ours.value.status_code, ours.value.error_code) == (403, "AuthorizationFailure") == (
        sdk.value.status_code, str(sdk.value.error_code.value))
    assert "Server failed to authenticate" in str(ours.value)


@pytest.mark.parametrize(("entities", "message"), [
    ([], "1 to 100 operations"),
    ([{"PartitionKey": "p", "RowKey": str(i)} for i in range(101)], "1 to 100 operations"),
    ([{"PartitionKey": "a", "RowKey": "1"}, {"PartitionKey": "b", "RowKey": "1"}], "share their PartitionKey"),
])
def test_transactions_azure_would_refuse_are_refused_before_sending(storage_connection_string: str,
                                                                   unique_prefix: str, entities, message):
    clients = TableClients.from_connection_string(storage_connection_string)
    clients.create(unique_prefix)  # Azurite accepts two partitions in one transaction; Azure does not
    with pytest.raises(ValueError, match=message):
        transaction.upsert(clients.get(unique_prefix), entities)
    assert stored(clients.get(unique_prefix)) == {}
