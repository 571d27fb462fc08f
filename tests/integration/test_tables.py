"""TableClients: table clients built while other threads send requests through their siblings."""

from __future__ import annotations

import sys
import threading
import time

from collector.tables import TableClients


def test_building_table_clients_never_disturbs_requests_in_flight(storage_connection_string: str, unique_prefix: str):
    # With TableServiceClient.get_table_client, building a child re-links policy objects that the
    # other children share, and a request in flight can hit a half-linked pipeline
    # ("'_SansIOHTTPPolicyRunner' object has no attribute 'next'"). A tiny switch interval makes
    # the threads interleave inside the SDK often enough for that to show within seconds.
    clients = TableClients.from_connection_string(storage_connection_string)
    clients.create(unique_prefix)
    errors: list[BaseException] = []
    built = 0
    stop = time.monotonic() + 5

    def send() -> None:
        while time.monotonic() < stop:
            try:
                clients.get(unique_prefix).upsert_entity({"PartitionKey": "p", "RowKey": "r"})
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    def build() -> None:
        nonlocal built
        while time.monotonic() < stop:
            clients.get(f"{unique_prefix}x{built}")  # a new client, no request
            built += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=send) for _ in range(6)] + [threading.Thread(target=build) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    assert errors == []
    assert built > 100  # clients really were built meanwhile
    assert clients.get(unique_prefix).get_entity("p", "r")["RowKey"] == "r"


def test_create_list_and_delete_tables(storage_connection_string: str, unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    for day in ("20261101", "20261102"):
        clients.create(f"{unique_prefix}{day}")
    clients.create(f"{unique_prefix}20261101")  # already there: fine

    assert clients.names(unique_prefix, f"{unique_prefix}~") == [f"{unique_prefix}20261101", f"{unique_prefix}20261102"]
    TableClients.from_connection_string(storage_connection_string).create(f"{unique_prefix}20261102")  # made elsewhere: fine
    clients.delete(f"{unique_prefix}20261101")
    clients.delete(f"{unique_prefix}20261101")  # already gone: fine
    assert clients.names(unique_prefix, f"{unique_prefix}~") == [f"{unique_prefix}20261102"]
    clients.create(f"{unique_prefix}20261101")  # deleted here, so asked for again
    assert len(clients.names(unique_prefix, f"{unique_prefix}~")) == 2


def test_a_write_to_a_table_another_process_dropped_recreates_it(storage_connection_string: str, unique_prefix: str):
    # prune-index (or the ledger's prune) in another process drops a table this process has
    # already created and remembers: single writes and transactions must recreate it, not fail
    # with TableNotFound for the rest of the process's life.
    worker, pruner = (TableClients.from_connection_string(storage_connection_string) for _ in range(2))
    worker.write(unique_prefix, lambda table: table.upsert_entity({"PartitionKey": "p", "RowKey": "before"}))

    pruner.delete(unique_prefix)
    worker.write(unique_prefix, lambda table: table.upsert_entity({"PartitionKey": "p", "RowKey": "single"}))
    pruner.delete(unique_prefix)
    worker.write(unique_prefix, lambda table: table.submit_transaction(
        [("upsert", {"PartitionKey": "p", "RowKey": "batch"})]))

    rows = pruner.get(unique_prefix).query_entities("PartitionKey eq 'p'")
    assert [row["RowKey"] for row in rows] == ["batch"]
