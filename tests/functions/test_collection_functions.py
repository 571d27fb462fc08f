"""function_app.py wiring for collection: names, triggers, binding expressions, and a real call."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from azure.functions.queue import QueueMessage  # the class the host passes (has dequeue_count)

from collector import bootstrap
from collector.bootstrap import Services
from collector.models import ContentRef, View
from collector.settings import AZURE_REQUIRED_SETTINGS, BINDING_SETTINGS, QUEUE_CONNECTION, Settings
from tests.app_functions import functions

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"


def binding(name: str) -> dict[str, object]:
    fn = functions()[name]
    raw = [json.loads(b) for b in fn.get_raw_bindings()]  # type: ignore[attr-defined]
    triggers = [b for b in raw if b["type"].endswith("Trigger")]
    assert len(triggers) == 1
    return triggers[0]


def test_timer_runs_on_the_configured_schedule():
    timer = binding("collect_audit_logs")
    assert timer["type"] == "timerTrigger"
    assert timer["schedule"] == "%COLLECT_SCHEDULE%"
    assert timer["runOnStartup"] is False
    # The setting the binding names is one the app settings contract knows (and a deployment must set).
    schedule_setting = str(timer["schedule"]).strip("%")
    assert schedule_setting in BINDING_SETTINGS and schedule_setting in AZURE_REQUIRED_SETTINGS


def test_queue_trigger_uses_the_audit_storage_connection():
    queue = binding("process_content_blob")
    assert queue["type"] == "queueTrigger"
    assert queue["queueName"] == "%AUDIT_QUEUE_NAME%"
    assert queue["connection"] == QUEUE_CONNECTION == "AUDIT_STORAGE"


@pytest.fixture
def services(storage_connection_string: str, unique_prefix: str):
    env = {
        "M365_TENANT_ID": TENANT, "M365_CLIENT_ID": TENANT, "M365_CLIENT_SECRET": "unused",
        "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string, "AUDIT_TABLE_PREFIX": unique_prefix,
        "AUDIT_ARCHIVE_CONTAINER": unique_prefix.lower(), "AUDIT_QUEUE_NAME": unique_prefix.lower(),
    }
    built = Services(Settings.from_env(env))
    built.ensure_storage()
    bootstrap.set_services(built)
    yield built
    bootstrap.set_services(None)


def test_queue_function_indexes_a_blob_that_is_already_archived(services: Services):
    """The redelivery of a message whose blob an interrupted attempt archived is indexed from the archive
    (contentUri points at a host this test cannot reach: a fetch would fail)."""
    records = [{"Id": str(uuid.uuid4()), "CreationTime": "2026-11-24T09:59:00", "Operation": "FileAccessed",
                "UserId": "alex@contoso.com", "OrganizationId": TENANT, "RecordType": 6, "Workload": "SharePoint"}]
    content_id = "20261124100005000000000$20261124100005000000000$audit_sharepoint$Audit_SharePoint$emea0029"
    message = {"contentType": "Audit.SharePoint", "contentId": content_id, "contentCreated": "2026-11-24T10:00:05.000Z",
               "contentUri": f"https://manage.office.com/api/v1.0/{TENANT}/activity/feed/audit/{content_id}",
               "contentExpiration": "2026-12-01T10:00:05.000Z"}
    services.archive.put(ContentRef.from_message(message), json.dumps(records).encode(), len(records))
    fn = functions()["process_content_blob"].get_user_function()  # type: ignore[attr-defined]
    fn(QueueMessage(id="1", body=json.dumps(message).encode(), dequeue_count=2))

    hits = list(services.index.scan(View.USER, datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC),
                                    value="ALEX@contoso.com"))
    assert [h.entry.id for h in hits] == [records[0]["Id"]]
    assert services.index.locate(records[0]["Id"]) is not None
    assert services.ledger.status(ContentRef.from_message(message)) == "done"


def test_queue_function_raises_on_an_unreadable_message(services: Services):
    fn = functions()["process_content_blob"].get_user_function()  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="unreadable queue message"):
        fn(QueueMessage(id="2", body=b"not json", dequeue_count=1))
