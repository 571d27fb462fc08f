"""Reindex on Azurite: the hot index of a day rebuilt from the raw archive exactly as the queue
function wrote it, idempotent, resumable after a crash; the cold tier rebuilt; the queue path."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from collector import cli, keys
from collector.bootstrap import Services
from collector.cold import layout
from collector.cold.reader import DayReader
from collector.models import View
from collector.reindex import CheckpointTable, Reindexer, ReindexRequest, run_message
from collector.settings import Settings
from tests.cold.data import DAY, DAY_START, index_items, special_blob, synthetic_blobs
from tests.constants import TENANT

NEXT_DAY = (DAY_START + timedelta(days=1)).strftime("%Y%m%d")
BLOBS = [*synthetic_blobs(15, seed=21), special_blob(DAY_START + timedelta(hours=9)),
         *synthetic_blobs(15, hours=3, seed=22, start=DAY_START + timedelta(days=1))]
DAY_RECORDS = sum(1 for blob in BLOBS for item in index_items(blob) if keys.day_of(item.when) == DAY)


@pytest.fixture
def env(storage_connection_string: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "M365_TENANT_ID": TENANT, "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string,
        "AUDIT_TABLE_PREFIX": unique_prefix, "AUDIT_ARCHIVE_CONTAINER": f"{unique_prefix.lower()}-a",
        "AUDIT_COLD_CONTAINER": f"{unique_prefix.lower()}-c", "AUDIT_QUEUE_NAME": unique_prefix.lower(),
        "AUDIT_REINDEX_QUEUE": f"{unique_prefix.lower()}-r",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def services(env: dict[str, str]) -> Services:
    """A day (and the first hours of the next) collected as the queue function does it, oldest blob first."""
    services = Services(Settings.from_env(env))
    services.ensure_storage()
    items = []
    for blob in sorted(BLOBS, key=lambda b: b.ref.content_created):
        items += index_items(blob)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda blob: services.archive.put(blob.ref, blob.body, 0), BLOBS))
    # One write of every blob's items, oldest blob first: the entities of one write per blob in
    # that order (a record two blobs hold points at the later one), in fewer transactions.
    services.index.write(items)
    return services


def day_entities(services: Services, day: str) -> dict[str, list[tuple[str, str, bytes]]] | None:
    """Every entity of the day's three tables (time blocks, keys, ids: what the index wrote), None when dropped."""
    out = {}
    for letter in (View.TIME, keys.KEYS_TABLE, keys.IDS_TABLE):
        table = services.tables.get(keys.table_name(services.settings.table_prefix, letter, day))
        try:
            out[str(letter)] = sorted((e["PartitionKey"], e["RowKey"], bytes(e["d"])) for e in table.list_entities())
        except ResourceNotFoundError:
            return None
    return out


def drop_day(services: Services, day: str) -> None:
    for letter in keys.TABLE_LETTERS:
        services.tables.delete(keys.table_name(services.settings.table_prefix, letter, day))


def test_reindex_rebuilds_a_dropped_day_exactly_and_a_second_run_changes_nothing(services: Services) -> None:
    before = day_entities(services, DAY)
    assert before is not None and len(before[keys.IDS_TABLE]) > 300
    drop_day(services, DAY)
    drop_day(services, NEXT_DAY)
    assert day_entities(services, DAY) is None

    assert cli.main(["reindex", "--start", "2024-05-06", "--end", "2024-05-07", "--quiet"]) == 0
    assert day_entities(services, DAY) == before
    assert day_entities(services, NEXT_DAY) is None  # records outside the range are not written

    checkpoints = CheckpointTable(services.tables, services.settings.table_prefix)
    run_id = ReindexRequest(DAY_START, DAY_START + timedelta(days=1)).run_id
    first = checkpoints.load(run_id)
    assert first is not None and first.status == "done" and first.records == DAY_RECORDS
    report = services.reindexer.run(ReindexRequest(DAY_START, DAY_START + timedelta(days=1)))
    assert report.finished and not report.resumed and report.blobs_read == report.blobs == first.blobs
    assert day_entities(services, DAY) == before


class Crash(Exception):
    pass


class CrashingArchive:
    """The archive, dying after `after` blob reads: a worker killed in the middle of a run."""

    def __init__(self, archive: Any, after: int) -> None:
        self.archive = archive
        self.left = after

    def names(self, prefix: str) -> Any:
        return self.archive.names(prefix)

    def body(self, name: str) -> bytes:
        if self.left <= 0:
            raise Crash(f"killed before reading {name}")
        self.left -= 1
        return bytes(self.archive.body(name))


def test_a_killed_reindex_resumes_from_its_checkpoint_and_finishes(services: Services) -> None:
    before = day_entities(services, DAY)
    drop_day(services, DAY)
    checkpoints = CheckpointTable(services.tables, services.settings.table_prefix)
    request = ReindexRequest(DAY_START, DAY_START + timedelta(days=1))

    dying = Reindexer(CrashingArchive(services.archive, after=100), services.index, checkpoints, window=16, readers=1)
    with pytest.raises(Crash):
        dying.run(request)
    saved = checkpoints.load(request.run_id)
    assert saved is not None and saved.status == "running" and saved.blobs == 96  # six whole windows of 16
    partial = day_entities(services, DAY)
    def ids(entities: dict[str, list[tuple[str, str, bytes]]] | None) -> int:
        assert entities is not None
        return len(entities[keys.IDS_TABLE])

    assert 0 < ids(partial) < ids(before)

    again = Reindexer(services.archive, services.index, checkpoints, window=16)
    report = again.run(request)
    assert report.finished and report.resumed
    assert report.blobs_read == report.blobs - 96
    assert day_entities(services, DAY) == before
    done = checkpoints.load(request.run_id)
    assert done is not None and done.status == "done" and done.blobs == report.blobs


def test_target_cold_rebuilds_the_day_into_a_new_generation(services: Services, env: dict[str, str]) -> None:
    services.cold_store.ensure_container()
    assert cli.main(["compact", "--through", "2024-05-06", "--quiet"]) == 0
    store = services.cold_store
    first = DayReader(store, DAY).manifest
    expected = [(h.key, h.entry) for h in DayReader(store, DAY).scan()]

    assert cli.main(["reindex", "--start", "2024-05-06", "--end", "2024-05-07", "--target", "both", "--quiet"]) == 0
    rebuilt = DayReader(store, DAY)
    assert rebuilt.manifest.generation == first.generation + 1 and rebuilt.manifest.records == first.records
    assert [(h.key, h.entry) for h in rebuilt.scan()] == expected
    # the superseded generation is gone, the new one is all there is
    assert set(store.list(layout.day_prefix(DAY))) == {*rebuilt.manifest.live_files(), layout.manifest_name(DAY)}


def test_enqueue_and_the_queue_function_run_and_continue_the_same_request(services: Services,
                                                                          env: dict[str, str],
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reindex", "--start", "2024-05-06", "--end", "2024-05-07", "--enqueue"]) == 0
    assert "queued reindex" in capsys.readouterr().out
    queue = QueueClient.from_connection_string(env["AUDIT_STORAGE_CONNECTION_STRING"], env["AUDIT_REINDEX_QUEUE"],
                                               message_decode_policy=TextBase64DecodePolicy())
    [message] = list(queue.receive_messages(max_messages=5))
    queue.delete_message(message)
    body = message.content
    assert json.loads(body)["target"] == "hot"

    drop_day(services, DAY)
    # No time left: the slice stops before its first window and queues its continuation.
    report = run_message(services.reindexer, services.reindex_queue, body, seconds=-1)
    assert not report.finished and report.blobs_read == 0
    [continuation] = list(queue.receive_messages(max_messages=5))
    assert ReindexRequest.decode(continuation.content) == ReindexRequest.decode(body)
    queue.delete_message(continuation)
    assert run_message(services.reindexer, services.reindex_queue, continuation.content).finished
    assert not list(queue.receive_messages(max_messages=5))
    assert day_entities(services, DAY) is not None


def test_a_request_that_is_not_one_is_refused_with_its_reason() -> None:
    from collector.errors import ConfigError, MessageFormatError

    with pytest.raises(MessageFormatError, match="end"):
        ReindexRequest.decode('{"start": "2024-05-07", "end": "2024-05-06"}')
    with pytest.raises(ConfigError, match="target"):
        ReindexRequest(DAY_START, DAY_START + timedelta(days=1), "warm")  # type: ignore[arg-type]
    assert cli.main(["reindex", "--start", "yesterday", "--end", "2024-05-07"]) == cli.EXIT_CONFIG

