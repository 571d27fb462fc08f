"""The rules' storage on Azurite, request by request: a blob's window rows written in a transaction
per partition (the hour of the windows' starts) and 100 rows and read back in a query per 14
windows, whatever the number of rules, keys and starts; first-seen sightings decided once per (rule, key) and blob, and not at all when this
process knows them to change nothing."""

from __future__ import annotations

import collections
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.alerts.engine import AlertEngine, WindowRow, key_hash, partition_of, window_name
from collector.alerts.rules import load_rules
from collector.alerts.store import AlertTable, SeenTable, WindowTable, seen_table, window_table
from collector.collect import content_items, parse_records
from collector.models import ContentRef
from collector.tables import TableClients
from simulator import stories
from tests.constants import TENANT

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def spy(tables: TableClients, name: str, *methods: str) -> collections.Counter[str]:
    """Count the requests of table `name`'s client (the calls go through to Azurite unchanged)."""
    calls: collections.Counter[str] = collections.Counter()
    client = tables.get(name)
    for method in methods:
        real = getattr(client, method)

        def counted(*args: Any, _real: Any = real, _method: str = method, **kwargs: Any) -> Any:
            calls[_method] += 1
            return _real(*args, **kwargs)
        setattr(client, method, counted)
    return calls


def test_a_blobs_windows_are_written_per_hour_and_read_back_per_14_windows(storage_connection_string: str,
                                                                         unique_prefix: str) -> None:
    tables = TableClients.from_connection_string(storage_connection_string)
    store = WindowTable(tables, unique_prefix)
    calls = spy(tables, window_table(unique_prefix, START), "query_entities")
    upsert = tables.upsert

    def transaction(name: str, entities: Any, *args: Any) -> None:  # one batch request each (transaction.py)
        calls["transactions"] += 1
        upsert(name, entities, *args)
    tables.upsert = transaction  # type: ignore[method-assign]
    at = int(START.timestamp())
    assert partition_of(at + 25 * 60) == at  # START is on the hour: its windows and the next 59 minutes' share it
    # 5-minute windows of two starts and a 3-minute one, of three rules: one partition, the hour.
    small = [window_name("password-guessing", key_hash([f"user{i}@contoso.com"]), at + 300 * (i % 2)) for i in range(20)]
    big = window_name("password-spray", key_hash(["198.51.100.7"]), at)
    rows = {window: [WindowRow(f"{window}-r{j}", {"user": f"u{j}"}) for j in range(3)] for window in small}
    rows[big] = [WindowRow(f"spray-{j}", {"user": f"u{j}", "LogonError": "InvalidPassword"}) for j in range(250)]
    store.add(START, rows)
    assert calls["transactions"] == 4  # 310 rows of 21 windows (2 rules, 2 starts): one transaction per 100
    store.add(START, {big: rows[big][:10]})  # a redelivered blob rewrites its own rows
    later = window_name("password-spray", key_hash(["198.51.100.7"]), at + 300)
    store.add(START, {later: [WindowRow("next-window", {"user": "x"})]})  # the next start, same partition
    # Rows of the former layouts are not read as a window's: a partition per rule, key and window,
    # and a partition per start whose windows had no start in their name.
    client = tables.get(window_table(unique_prefix, START))
    client.upsert_entity({"PartitionKey": f"password-spray~{key_hash(['198.51.100.7'])}~{at}", "RowKey": "old",
                          "id": "old", "v": "{}"})
    former = f"password-spray~{key_hash(['198.51.100.7'])}"
    client.upsert_entity({"PartitionKey": str(at), "RowKey": f"{former}~{'0' * 32}", "w": former, "id": "older",
                          "v": "{}"})
    calls.clear()

    found = store.rows(START, [*small, big], limit=2000)
    assert calls["query_entities"] == 2  # 21 windows: 14, then 7
    assert {window: len(found[window]) for window in small} == dict.fromkeys(small, 3)
    assert sorted(row.record for row in found[big]) == sorted(f"spray-{j}" for j in range(250))
    assert found[big][0].values in ({"user": "u0", "LogonError": "InvalidPassword"}, *(r.values for r in rows[big]))
    assert [r.record for r in store.rows(START, [later], limit=10)[later]] == ["next-window"]

    # A window at its limit stops the read there; the other windows are read to their end.
    capped = store.rows(START, [small[0], big, small[1]], limit=100)
    assert len(capped[big]) == 100 and len(capped[small[0]]) == 3 and len(capped[small[1]]) == 3
    assert store.rows(START + timedelta(days=3), [big], limit=10) == {big: []}  # no table for that day


class Outbox:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, alert: Any) -> None:
        self.sent.append(alert.id)


def blob(story: str, when: datetime, seed: int = 7) -> tuple[list[dict[str, Any]], Any, ContentRef]:
    content_type = stories.STORIES[story].content_type
    ref = ContentRef(content_type, f"blob-{story}", "https://x", when, when + timedelta(days=7))
    records = parse_records(json.dumps(stories.records(story, when, TENANT, seed=seed)).encode(), ref)
    return records, content_items(records, content_type, when, "blob"), ref


def test_first_seen_costs_one_read_per_key_and_blob_and_nothing_once_known(storage_connection_string: str,
                                                                         unique_prefix: str) -> None:
    tables = TableClients.from_connection_string(storage_connection_string)
    tables.create(seen_table(unique_prefix))
    calls = spy(tables, seen_table(unique_prefix), "get_entity", "create_entity", "update_entity")
    outbox = Outbox()

    def instance() -> AlertEngine:
        return AlertEngine(load_rules(), alerts=AlertTable(tables, unique_prefix), outbox=outbox,
                           windows=WindowTable(tables, unique_prefix), seen=SeenTable(tables, unique_prefix),
                           tenant_id=TENANT)

    one = instance()
    records, items, ref = blob("powershell-access", START)
    one.observe(records, items, ref)
    assert one.stats.alerts == 1 and dict(calls) == {"get_entity": 1, "create_entity": 1}
    calls.clear()
    one.observe(records, items, ref)  # redelivered: the opener is due again (its alert is stored already)
    assert dict(calls) == {"get_entity": 1} and one.stats.alerts == 1
    calls.clear()
    # The same user and agent an hour later, then again inside the span this process now knows.
    later = blob("powershell-access", START + timedelta(hours=1), seed=8)  # other record ids
    one.observe(*later)
    assert dict(calls) == {"get_entity": 1, "update_entity": 1} and one.stats.alerts == 1
    calls.clear()
    inside = blob("powershell-access", START + timedelta(minutes=30), seed=9)
    one.observe(*inside)
    assert dict(calls) == {}
    two = instance()  # another instance knows nothing yet: one read, no write, no alert
    two.observe(*inside)
    assert dict(calls) == {"get_entity": 1} and two.stats.alerts == 0
    assert len(set(outbox.sent)) == 1


def test_instances_racing_on_a_new_first_seen_key_open_one_episode(storage_connection_string: str,
                                                                   unique_prefix: str) -> None:
    # Each instance its own clients; the ETag condition (or the insert's conflict) lets one opener win.
    stores = [SeenTable(TableClients.from_connection_string(storage_connection_string), unique_prefix) for _ in range(6)]
    stores[0]._client()
    due: list[list[str]] = [[] for _ in stores]
    barrier = threading.Barrier(len(stores))

    def sight(i: int) -> None:
        barrier.wait()
        opened, _, used = stores[i].sightings("legacy-auth-ropc", "k", [(START + timedelta(seconds=i), f"r{i}")],
                                              timedelta(days=7))
        assert used == 1
        due[i] = opened

    threads = [threading.Thread(target=sight, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [record for opened in due for record in opened]
    assert len(winners) == 1
    stored = stores[0].tables.get(seen_table(unique_prefix)).get_entity("legacy-auth-ropc", "k")
    assert stored["opened"] == winners[0]
    assert stored["first"] == "2026-03-02T10:00:00.000Z" and stored["last"] == "2026-03-02T10:00:05.000Z"
