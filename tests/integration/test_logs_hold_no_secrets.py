"""Issue 12 "Logs": everything AuditKeep and the SDKs it drives log at DEBUG level, through a whole
collection (token refresh, throttling, 5xx, a failed blob) and the query API (with a function key),
holds no client secret, bearer token, storage account key, function key or record body."""

from __future__ import annotations

import json
import logging
import traceback
from datetime import timedelta

import pytest

from collector.api import Api
from collector.drain import drain

from .world import SECRET, START, World, record

FUNCTION_KEY = "fk-0cde-live-function-key-7d2b"
BODY_MARKER = "raw-only-body-marker-51c9"  # only in the raw record (Parameters are not normalized)
LOGGERS = ("", "collector", "azure", "msal", "urllib3", "requests")


class Everything(logging.Handler):
    """Every record any logger emits, with its message, arguments, extras and traceback as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, entry: logging.LogRecord) -> None:
        parts = [entry.getMessage(), repr(entry.args), repr({k: v for k, v in vars(entry).items() if k not in ("msg", "args")})]
        if entry.exc_info:
            parts.append("".join(traceback.format_exception(*entry.exc_info)))
        self.texts.append("\n".join(parts))


@pytest.fixture
def everything():
    handler = Everything()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    root = logging.getLogger()
    root.addHandler(handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_debug_logs_of_a_collection_and_of_queries_hold_no_secret_token_key_or_record_body(world: World, everything):
    records = [record(i, START - timedelta(hours=1), Parameters=[{"Name": "Note", "Value": f"{BODY_MARKER}-{i}"}])
               for i in range(6)]
    world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=50), records[:3])
    world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=40), records[3:])
    bad = world.sim.add_blob("Audit.Exchange", START - timedelta(minutes=30), [record(9, START - timedelta(hours=1))])
    world.sim.inject("content_list", code="AF429", times=1)
    world.sim.inject("content_get", status=503, times=1)
    world.sim.inject("content_get", status=400, code="AF20052", times=None, when=lambda r: bad.content_id in r.path)
    services = world.services(AUDIT_MAX_DEQUEUE_COUNT="1")
    services.listing.run()
    world.sim.revoke_tokens()  # the next API call gets 401: one token refresh, logged
    result = drain(services.queue, services.processor, workers=2, retry_delay=0)
    assert result.poisoned == 1 and result.records == 6  # the failing blob and the good ones really ran

    api = Api(services)
    key = {"code": [FUNCTION_KEY]}
    pages = [api.handle("GET", "audit", {**key, "user": ["user1@contoso.com"], "start": ["2026-11-19"]}, {}, "http://h/api"),
             api.handle("GET", "audit", {**key, "format": ["csv"], "start": ["2026-11-19"]}, {}, "http://h/api"),
             api.handle("GET", "audit/" + records[0]["Id"], key, {"x-functions-key": FUNCTION_KEY}, "http://h/api"),
             api.handle("GET", "audit", {**key, "top": ["many"]}, {}, "http://h/api"),
             api.handle("GET", "health", key, {}, "http://h/api")]
    assert [p.status for p in pages] == [200, 200, 200, 400, 200]
    assert BODY_MARKER in b"".join(p.read() for p in pages[1:3]).decode()  # the record body was served, not logged

    tokens = {r.bearer for r in world.sim.requests if r.bearer}
    account_key = dict(part.split("=", 1) for part in world.env["AUDIT_STORAGE_CONNECTION_STRING"].split(";") if "=" in part
                       ).get("AccountKey", "")
    secrets = {"client secret": SECRET, "function key": FUNCTION_KEY, "record body": BODY_MARKER,
               **{f"bearer token {i}": t for i, t in enumerate(sorted(tokens))}}
    assert account_key  # Azurite's account key, signed into every storage request
    secrets["storage account key"] = account_key
    assert len(tokens) >= 2 and len(everything.texts) > 50  # a refresh happened, and the SDKs did log at DEBUG
    leaks = {name: text[:300] for text in everything.texts for name, value in secrets.items() if value in text}
    assert leaks == {}, json.dumps(leaks, indent=1)
    assert not any('"CreationTime"' in text for text in everything.texts)  # no record JSON either
