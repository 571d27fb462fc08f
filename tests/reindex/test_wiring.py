"""The reindex queue function's wiring: its trigger, its setting, and that a deployment sets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.errors import ConfigError
from collector.settings import ENVIRONMENT_VARIABLES, QUEUE_CONNECTION, Settings
from tests.app_functions import functions

ROOT = Path(__file__).resolve().parents[2]


def test_the_reindex_function_is_triggered_by_the_reindex_queue() -> None:
    fn = functions()["reindex_range"]
    [trigger] = [b for b in (json.loads(raw) for raw in fn.get_raw_bindings()) if b["type"].endswith("Trigger")]  # type: ignore[attr-defined]
    assert trigger["type"] == "queueTrigger"
    assert trigger["queueName"] == "%AUDIT_REINDEX_QUEUE%" and trigger["connection"] == QUEUE_CONNECTION
    # A binding expression without its app setting stops the whole app: the template sets it and creates the queue.
    assert "AUDIT_REINDEX_QUEUE: 'audit-reindex'" in (ROOT / "infra/modules/functionapp.bicep").read_text()
    assert "name: 'audit-reindex'" in (ROOT / "infra/modules/storage-data.bicep").read_text()


def test_the_reindex_queue_setting() -> None:
    assert "AUDIT_REINDEX_QUEUE" in ENVIRONMENT_VARIABLES
    assert Settings.from_env({}).reindex_queue == "audit-reindex"
    assert Settings.from_env({"AUDIT_REINDEX_QUEUE": "my-reindex"}).reindex_queue == "my-reindex"
    with pytest.raises(ConfigError, match="AUDIT_REINDEX_QUEUE"):
        Settings.from_env({"AUDIT_REINDEX_QUEUE": "audit-content"})
    with pytest.raises(ConfigError, match="AUDIT_REINDEX_QUEUE"):
        Settings.from_env({"AUDIT_REINDEX_QUEUE": "Bad_Name"})
