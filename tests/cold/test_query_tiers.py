"""One query API over both tiers, on Azurite: what the hot index answered for a dataset, the API
answers exactly the same once some of its days are compacted and dropped from the hot index.

The dataset is the query tests' tricky one (tests/query/data.py: ties within a second, one Id in
two organizations, CSV-injection and multi-line values, non-ASCII text, 1,100-character objects,
January records beyond the 31-day range). Every answer is recorded before the drop (JSON pages
followed through every @odata.nextLink, CSV and NDJSON exports, raw records by id) and compared
byte for byte after it: from a process that still has the old listings cached (the tiers' stale
listing path) and from a fresh one.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from collector import keys
from collector.api import TIERS_HEADER, Api, Response
from collector.bootstrap import Services
from collector.cold.reader import load_manifest
from collector.index import IndexItem
from collector.models import ContentRef
from collector.query.service import QueryService
from collector.query.tiers import TieredView
from tests.clock import FakeClock
from tests.query.data import NOW, TENANT, WIDE, blob_body, build_rows, make_services

BASE = "https://auditkeep.example/api"
COMPACTED_THROUGH = date(2024, 2, 27)  # the dataset's days 2024-01-10..01-16 and 02-22..02-27 go cold
YEAR = {"start": "2024-01-01T00:00:00Z", "end": WIDE["end"]}

# (name, parameters): every filter alone and combined, over the wide range (hot and cold days)
QUERIES: list[tuple[str, dict[str, str]]] = [
    ("all", {**WIDE, "top": "40"}),
    ("user", {**WIDE, "user": "bob@contoso.com", "top": "15"}),
    ("users", {**WIDE, "user": "alice@contoso.com,Ünïcödé.Üser@contoso.com", "top": "20"}),
    ("user over the year", {**YEAR, "user": "ALICE@contoso.com", "top": "4"}),
    ("operation", {**WIDE, "operation": "fileaccessed", "top": "12"}),
    ("operations over the year", {**YEAR, "operation": "Send,UserLoggedIn", "top": "25"}),
    ("workload", {**WIDE, "workload": "exchange", "top": "20"}),
    ("result", {**WIDE, "result": "Failed,PartiallySucceeded", "top": "20"}),
    ("clientIp", {**WIDE, "clientIp": "2001:db8::5", "top": "15"}),
    ("recordType", {**WIDE, "recordType": "6,15"}),
    ("contentType", {**WIDE, "contentType": "audit.exchange"}),
    ("object prefix", {**WIDE, "object": "https://contoso.sharepoint.com/sites/FINANCE/", "top": "3"}),
    ("q", {**WIDE, "q": "ünïcode", "top": "4"}),
    ("q in a long object", {**WIDE, "q": "x" * 30}),
    ("user and operation", {**WIDE, "user": "bob@contoso.com", "operation": "Send,FileDeleted"}),
    ("user, workload, result, q", {**WIDE, "user": "carol@contoso.com,dave@fabrikam.com", "workload": "SharePoint,OneDrive",
                                   "result": "Succeeded", "q": "contoso", "top": "2"}),
    ("operation, clientIp, recordType", {**YEAR, "operation": "FileAccessed,MailItemsAccessed", "clientIp": "203.0.113.7",
                                         "recordType": "6,50", "top": "3"}),
    ("one hour of a cold day", {"start": "2024-02-24T10:00:00Z", "end": "2024-02-24T11:00:00Z"}),
    ("a cold day", {"start": "2024-02-24", "end": "2024-02-25", "top": "6"}),
]


STALE = {"all", "user over the year", "operations over the year", "q", "a cold day"}


@dataclass
class Answer:
    status: int
    body: bytes
    tiers: str | None


def get(api: Api, route: str, params: Any = None) -> Response:
    return api.handle("GET", route, params or {}, {}, BASE)


def pages(api: Api, params: dict[str, str]) -> list[Answer]:
    """Every page of a query, following @odata.nextLink (the links carry the cursors)."""
    answers: list[Answer] = []
    response = get(api, "audit", params)
    for _ in range(300):
        body = response.read()
        answers.append(Answer(response.status, body, response.headers.get(TIERS_HEADER)))
        assert response.status == 200, body
        link = response.json().get("@odata.nextLink")
        if link is None:
            return answers
        response = get(api, "audit", urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query, keep_blank_values=True))
    raise AssertionError("paging did not end")


def export(api: Api, params: dict[str, str], fmt: str) -> Answer:
    response = get(api, "audit", {**params, "format": fmt})
    return Answer(response.status, response.read(), response.headers.get(TIERS_HEADER))


def answers(api: Api, ids: list[str], names: set[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, params in QUERIES:
        if names is not None and name not in names:
            continue
        out[name] = pages(api, params)
        out[name + " csv"] = export(api, params, "csv")
        out[name + " ndjson"] = export(api, params, "ndjson")
    for record_id in ids:
        response = get(api, "audit/" + urllib.parse.quote(record_id, safe=""))
        out["id " + record_id] = Answer(response.status, response.read(), response.headers.get(TIERS_HEADER))
    return out


@pytest.fixture(scope="module")
def tiered(azurite: Any) -> Iterator[dict[str, Any]]:
    """The dataset indexed and archived, answered from hot; then compacted, dropped, answered again."""
    name = "k" + uuid.uuid4().hex[:10]
    env = {"M365_TENANT_ID": TENANT, "AUDIT_STORAGE_CONNECTION_STRING": azurite.connection_string,
           "AUDIT_TABLE_PREFIX": name, "AUDIT_ARCHIVE_CONTAINER": name + "-a", "AUDIT_COLD_CONTAINER": name + "-c",
           "AUDIT_QUEUE_NAME": name}
    services = make_services(env)
    services.ensure_storage()
    rows = build_rows()
    items = []
    # One blob per content type and 25 records, as the API delivers them: compaction re-normalizes
    # each record with its blob's content type.
    for content_type in sorted({r.entry.contentType for r in rows}):
        typed = [r for r in rows if r.entry.contentType == content_type]
        for n in range(0, len(typed), 25):
            chunk = typed[n:n + 25]
            ref = ContentRef(content_type, f"blob-{n:04d}", "", chunk[0].when, chunk[0].when)
            archived = services.archive.put(ref, blob_body(chunk), len(chunk))
            items += [IndexItem(row.entry, row.when, archived.name, position) for position, row in enumerate(chunk)]
    services.index.write(items)

    cold_days = sorted({keys.day_of(r.when) for r in rows if r.when.date() <= COMPACTED_THROUGH})
    cold_rows = [r for r in rows if keys.day_of(r.when) in cold_days]
    # Every special record of the cold days (ties, the Id in two organizations), a sample of the rest,
    # a hot one and an unknown one.
    ids = sorted({r.entry.id for r in cold_rows if not r.entry.id.startswith("0000") or r.entry.organizationId != TENANT
                  or int(r.entry.id[:8], 16) % 11 == 0} | {rows[0].entry.id, "no-such-record-0000"})
    stale_api = Api(services, stream=True)
    before = answers(stale_api, ids)

    services.cold_store.ensure_container()
    report = services.compactor.run(through=COMPACTED_THROUGH)
    assert sorted(d.day for d in report.days if d.action == "compacted") == cold_days
    for day in cold_days:
        assert load_manifest(services.cold_store, day) is not None
        for letter in keys.TABLE_LETTERS:  # what prune-index does to a compacted day
            services.tables.delete(keys.table_name(name, letter, day))
    fresh = make_services(env)
    # The process that answered before still has both tiers' listings cached (hot: the dropped days;
    # cold: none): its first queries take the re-listing path.
    stale = answers(stale_api, ids[::4], STALE)
    yield {"before": before, "stale": stale, "fresh": answers(Api(fresh, stream=False), ids),
           "ids": ids, "services": fresh, "cold_days": cold_days, "rows": rows}


def test_every_query_answers_exactly_as_the_hot_index_did(tiered: dict[str, Any]) -> None:
    before = tiered["before"]
    for process in ("stale", "fresh"):
        after = tiered[process]
        assert set(after) <= set(before) and len(after) > 10
        for name, got in after.items():
            expected = before[name]
            if isinstance(expected, list):
                assert [(a.status, a.body) for a in got] == [(a.status, a.body) for a in expected], f"{process}: {name}"
            else:
                assert (got.status, got.body) == (expected.status, expected.body), f"{process}: {name}"
    # The comparison means something: the queries return rows from cold days, over several pages.
    assert len(before["all"]) > 5 and len(before["user over the year"]) > 2
    assert all(a.status == 200 for key, a in before.items() if key.startswith("id ") and "no-such" not in key)


def test_responses_name_the_tiers_that_served_them(tiered: dict[str, Any]) -> None:
    before, after = tiered["before"], tiered["fresh"]
    assert {a.tiers for name, _ in QUERIES for a in before[name]} == {"hot"}
    everything = after["all"]
    assert everything[0].tiers == "hot" and everything[-1].tiers == "cold"  # newest first: hot days, then cold
    assert "hot,cold" in {a.tiers for a in everything}  # a page across the tier boundary
    assert [a.tiers for a in after["a cold day"]] == ["cold"] * len(after["a cold day"])
    assert after["all csv"].tiers == after["all ndjson"].tiers == "hot,cold"  # materialized: the tiers read
    assert after["one hour of a cold day csv"].tiers == "cold"
    hot_id = tiered["rows"][0].entry.id
    other_org = next(r.entry.id for r in tiered["rows"] if r.entry.organizationId != TENANT
                     and keys.day_of(r.when) in tiered["cold_days"])  # found by the second (other organization) pass
    assert after["id " + hot_id].tiers == "hot"
    assert after["id " + other_org].tiers == "cold" and before["id " + other_org].tiers == "hot"
    assert after["id no-such-record-0000"].status == 404


def test_a_streamed_export_names_the_tiers_of_its_range(tiered: dict[str, Any]) -> None:
    api = Api(tiered["services"], stream=True)
    assert get(api, "audit", {**WIDE, "format": "csv"}).headers[TIERS_HEADER] == "hot,cold"
    assert get(api, "audit", {"start": "2024-02-23", "end": "2024-02-24", "format": "ndjson"}).headers[TIERS_HEADER] == "cold"
    assert get(api, "audit", {"start": "2023-02-23", "end": "2023-02-24", "format": "csv"}).headers[TIERS_HEADER] == "none"


def test_cold_blob_reads_are_charged_to_the_page_budget(tiered: dict[str, Any]) -> None:
    services: Services = tiered["services"]
    plan_params = {"start": "2024-02-22", "end": "2024-02-28", "user": "carol@contoso.com", "top": "1000"}
    view = TieredView(services.index, services.cold_view)
    service = QueryService(view, clock=FakeClock(NOW))
    page = service.page(service.parse(plan_params))
    assert page.tiers == ("cold",)
    assert page.entries and page.next_key is None
    # A manifest and a small records file per day at most (footers are cached across requests).
    assert 1 <= page.requests <= 2 * len(tiered["cold_days"])
    tight = QueryService(view, clock=FakeClock(NOW), page_requests=3)
    first = tight.page(tight.parse({**plan_params, "top": "1000"}))
    assert first.next_key is not None and first.requests >= 3  # the budget stopped it; a next link continues
