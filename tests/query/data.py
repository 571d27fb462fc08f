"""The query tests' dataset: tricky synthetic records, their raw forms, a plain-Python oracle, and
what several test modules share (the wide range, order keys of results, the dataset's Services)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from collector import keys
from collector.bootstrap import Services
from collector.models import AuditEntry
from collector.query.service import QueryService
from collector.settings import Settings
from collector.timeutil import format_record_time
from tests.clock import FakeClock
from tests.constants import OTHER_ORG, TENANT

NOW = datetime(2024, 3, 2, 6, 0, 0, tzinfo=UTC)  # the dataset straddles the February/March boundary
# A range holding the whole dataset.
WIDE = {"start": "2024-02-22T00:00:00Z", "end": "2024-03-02T06:00:00Z"}
WIDE_START, WIDE_END = datetime(2024, 2, 22, tzinfo=UTC), NOW

USERS = ["alice@contoso.com", "Bob@Contoso.com", "carol@contoso.com", "dave@fabrikam.com",
         "Ünïcödé.Üser@contoso.com", "svc-backup@contoso.onmicrosoft.com"]
ACTIVITIES = [  # (operation, workload, recordType, contentType)
    ("FileAccessed", "SharePoint", 6, "Audit.SharePoint"),
    ("FileDeleted", "OneDrive", 6, "Audit.SharePoint"),
    ("UserLoggedIn", "AzureActiveDirectory", 15, "Audit.AzureActiveDirectory"),
    ("MailItemsAccessed", "Exchange", 50, "Audit.Exchange"),
    ("Send", "Exchange", 2, "Audit.Exchange"),
    ("TeamsSessionStarted", "MicrosoftTeams", None, "Audit.General"),
]
OBJECTS = [
    "https://contoso.sharepoint.com/sites/finance/Shared Documents/budget 2024.xlsx",
    'https://contoso.sharepoint.com/sites/legal/contract, "final".docx',
    "https://contoso.sharepoint.com/sites/Финансы/отчёт.pdf",
    "line one\nline two",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "\\Inbox\\Finance",
    "",
    "https://contoso.sharepoint.com/sites/finance/" + "x" * 1100,  # the index keeps 1,024 characters
]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/124.0", "Microsoft Office/16.0 (Outlook)", "",
          "python-requests/2.32", "Mozilla/5.0 (Macintosh) Safari/605.1 — ünïcode"]
IPS = ["203.0.113.7", "198.51.100.23", "2001:DB8::5", "203.0.113.70", ""]
RESULTS = ["Succeeded", "Succeeded", "Failed", "", "PartiallySucceeded"]


@dataclass(frozen=True)
class Row:
    """One record: its normalized entry, event time, raw form and where the raw form is archived."""

    entry: AuditEntry
    when: datetime
    raw: dict[str, Any]

    @property
    def order_key(self) -> str:
        return keys.order_key(self.when, self.entry.id, self.entry.organizationId, TENANT)


def _entry(i: int, when: datetime) -> AuditEntry:
    operation, workload, record_type, content_type = ACTIVITIES[i % len(ACTIVITIES)]
    return AuditEntry(
        id=f"{i:08x}-7d1e-4c2a-9f3b-{i * 7919 % 10**12:012d}",
        time=format_record_time(when),
        user=USERS[(i * 5 + i // 7) % len(USERS)],
        operation=operation,
        object=OBJECTS[i % len(OBJECTS)] if i % 3 else OBJECTS[(i // 3) % len(OBJECTS)],
        result=RESULTS[i % len(RESULTS)],
        clientIp=IPS[(i // 2) % len(IPS)],
        userAgent=AGENTS[i % len(AGENTS)],
        workload=workload,
        recordType=record_type,
        contentType=content_type,
        organizationId=OTHER_ORG if i % 17 == 0 else TENANT,
    )


def _raw(entry: AuditEntry, i: int) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "Id": entry.id, "CreationTime": entry.time[:-1], "UserId": entry.user, "Operation": entry.operation,
        "ObjectId": entry.object, "ResultStatus": entry.result, "ClientIP": entry.clientIp, "UserAgent": entry.userAgent,
        "Workload": entry.workload, "OrganizationId": entry.organizationId, "UserType": i % 3,
        "ExtendedProperties": [{"Name": "RequestType", "Value": "OAuth2:Token"}], "Seq": i,
    }
    if entry.recordType is not None:
        raw["RecordType"] = entry.recordType
    return raw


def build_rows() -> list[Row]:
    rows: list[Row] = []
    # 260 records, one every 47 minutes back from NOW: about 8.5 days, across the month boundary.
    for i in range(260):
        when = NOW - timedelta(minutes=1 + 47 * i)
        entry = _entry(i, when)
        rows.append(Row(entry, when, _raw(entry, i)))
    # Same second, different ids (order falls back to the id); mixed-case copies of a user.
    tie = NOW - timedelta(hours=3, seconds=30)
    for n, user in enumerate(["BOB@CONTOSO.COM", "bob@contoso.com", "Bob@Contoso.com"]):
        entry = replace(_entry(1000 + n, tie), user=user, id=f"ffff{n:04x}-tie0-4000-8000-000000000000")
        rows.append(Row(entry, tie, _raw(entry, 1000 + n)))
    # The same Id in two organizations: two records (the dedupe key is (OrganizationId, Id)).
    twin = NOW - timedelta(hours=5)
    for n, org in enumerate([TENANT, OTHER_ORG]):
        entry = replace(_entry(2000 + n, twin), id="twin-0000-4000-8000-000000000000", organizationId=org)
        rows.append(Row(entry, twin, _raw(entry, 2000 + n)))
    # Old records (January): reachable with a user filter beyond QUERY_MAX_RANGE_DAYS.
    for n in range(12):
        when = datetime(2024, 1, 10, 12, 0, tzinfo=UTC) + timedelta(hours=13 * n)
        entry = replace(_entry(3000 + n, when), user="alice@contoso.com")
        rows.append(Row(entry, when, _raw(entry, 3000 + n)))
    return rows


def newest_first(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: r.order_key)


def oracle(rows: Iterable[Row], start: datetime, end: datetime, predicate: Callable[[AuditEntry], bool]) -> list[str]:
    """Order keys of the rows a query must return, computed without the query code."""
    return [r.order_key for r in newest_first(r for r in rows if start <= r.when < end and predicate(r.entry))]


def index_view(entry: AuditEntry) -> AuditEntry:
    """What the index gives back for an entry (object and userAgent cut to 1,024 characters)."""
    return replace(entry, object=entry.object[:1024], userAgent=entry.userAgent[:1024])


def key_of(entry: AuditEntry) -> str:
    """The order key of a result entry (oracle() lists these)."""
    return keys.order_key(entry.when, entry.id, entry.organizationId, TENANT)


def key_of_record(record: dict[str, Any]) -> str:
    """The order key of a result record as the API returns it (JSON object)."""
    return key_of(AuditEntry(**record))


def make_services(env: dict[str, str]) -> Services:
    """The dataset's Services: query settings from `env`, time fixed at NOW, and the pages' seconds
    budget never spent (answers are compared byte for byte; the request and row budgets still apply)."""
    return Services(Settings.from_env(env), clock=FakeClock(NOW), query_timer=lambda: 0.0)


def blob_body(rows: list[Row]) -> bytes:
    return json.dumps([r.raw for r in rows], ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------- filters and paging shared by the query tests

def all_pages(service: QueryService, params: dict[str, str]) -> tuple[list[AuditEntry], list[int]]:
    """Follow next keys the way @odata.nextLink does (link_params → parse); entries and page sizes."""
    plan = service.parse(params)
    entries: list[AuditEntry] = []
    sizes: list[int] = []
    for _ in range(2000):
        page = service.page(plan)
        entries += page.entries
        sizes.append(len(page.entries))
        if page.next_key is None:
            return entries, sizes
        plan = service.parse(plan.link_params(page.next_key))
    raise AssertionError("paging did not end")


def cf(text: str) -> str:
    return text.casefold()


FILTERS = [
    ({}, lambda e: True),
    ({"user": "bob@contoso.com"}, lambda e: cf(e.user) == "bob@contoso.com"),
    ({"user": "alice@contoso.com,CAROL@contoso.com"}, lambda e: cf(e.user) in ("alice@contoso.com", "carol@contoso.com")),
    ({"user": "ÜNÏCÖDÉ.üser@CONTOSO.com"}, lambda e: e.user == "Ünïcödé.Üser@contoso.com"),
    ({"operation": "fileaccessed,SEND"}, lambda e: e.operation in ("FileAccessed", "Send")),
    ({"user": "Bob@Contoso.com", "operation": "send"}, lambda e: cf(e.user) == "bob@contoso.com" and e.operation == "Send"),
    ({"workload": "exchange"}, lambda e: e.workload == "Exchange"),
    ({"result": "failed"}, lambda e: e.result == "Failed"),
    ({"result": "Succeeded,partiallysucceeded"}, lambda e: e.result in ("Succeeded", "PartiallySucceeded")),
    ({"recordType": "6"}, lambda e: e.recordType == 6),
    ({"recordType": "15,50"}, lambda e: e.recordType in (15, 50)),
    ({"clientIp": "2001:db8::5"}, lambda e: e.clientIp == "2001:DB8::5"),
    ({"clientIp": "203.0.113.7,198.51.100.23"}, lambda e: e.clientIp in ("203.0.113.7", "198.51.100.23")),
    ({"contentType": "audit.exchange"}, lambda e: e.contentType == "Audit.Exchange"),
    ({"object": "https://contoso.sharepoint.com/sites/finance"},
     lambda e: e.object.startswith("https://contoso.sharepoint.com/sites/finance")),
    ({"object": "HTTPS://CONTOSO.SHAREPOINT.COM/SITES/ФИНАНСЫ"}, lambda e: "/sites/Финансы/" in e.object),
    ({"object": "line"}, lambda e: e.object.startswith("line")),
    ({"q": "budget"}, lambda e: "budget" in e.object),
    ({"q": "ФИНАНСЫ"}, lambda e: "Финансы" in e.object),
    ({"q": "line two"}, lambda e: "line two" in e.object),
    ({"q": '"final"'}, lambda e: '"final"' in e.object),
    ({"q": OTHER_ORG[:13].upper()}, lambda e: e.organizationId == OTHER_ORG),
    ({"q": "outlook"}, lambda e: "Outlook" in e.userAgent),
    ({"q": "2024-03-01T1"}, lambda e: e.time.startswith("2024-03-01T1")),
    ({"workload": "Exchange", "result": "Failed,", "q": "inbox"},
     lambda e: e.workload == "Exchange" and e.result == "Failed" and "inbox" in cf(e.object)),
    ({"operation": "UserLoggedIn", "clientIp": "203.0.113.70", "recordType": "15"},
     lambda e: e.operation == "UserLoggedIn" and e.clientIp == "203.0.113.70"),
    # Injection attempts: filter values are matched as data, never become OData text.
    ({"user": "x' or '1' eq '1"}, lambda e: False),
    ({"user": "alice@contoso.com' or PartitionKey ge '"}, lambda e: False),
    ({"operation": "') or (RowKey gt '"}, lambda e: False),
    ({"q": "' or 1 eq 1 or '"}, lambda e: False),
    ({"object": "*"}, lambda e: False),
    ({"workload": "Exchange' or '1' eq '1"}, lambda e: False),
]
