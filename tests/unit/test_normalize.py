from datetime import UTC, datetime

import pytest

from collector.models import FIELDS
from collector.normalize import normalize, normalize_ip, normalize_result

CREATED = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Succeeded", "Succeeded"), ("Success", "Succeeded"), ("True", "Succeeded"), (True, "Succeeded"),
        ("Failed", "Failed"), ("Failure", "Failed"), ("False", "Failed"), (False, "Failed"),
        ("PartiallySucceeded", "PartiallySucceeded"), (None, ""), ("", ""), ("Blocked", "Blocked"),
        ("succeeded", "Succeeded"),
    ],
)
def test_result(raw, expected):
    assert normalize_result(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[2001:db8::5]:443", "2001:db8::5"), ("203.0.113.7:5123", "203.0.113.7"), ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"), ("[2001:db8::1]", "2001:db8::1"), ("::ffff:10.1.2.3", "::ffff:10.1.2.3"),
        ("proxy.contoso.com:8080", "proxy.contoso.com"), ("", ""), (None, ""), (" 198.51.100.1 ", "198.51.100.1"),
    ],
)
def test_ip(raw, expected):
    assert normalize_ip(raw) == expected


BASE = {"Id": "5b3d2f6e-8c41-4a7e-9d0b-08dc73f1a2b4", "CreationTime": "2024-05-14T09:21:37", "RecordType": 50,
        "Operation": "MailItemsAccessed", "OrganizationId": "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f",
        "UserId": "alex.wilber@contoso.com", "Workload": "Exchange"}


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ({}, "time", "2024-05-14T09:21:37Z"),
        ({"CreationTime": "2024-05-14T09:21:37.1234567Z"}, "time", "2024-05-14T09:21:37Z"),
        ({"CreationTime": "garbage"}, "time", "2024-05-14T12:00:00Z"),  # falls back to contentCreated
        ({}, "recordType", 50),
        ({"RecordType": "6"}, "recordType", 6),
        ({"RecordType": None}, "recordType", None),
        ({"ClientIP": "", "ClientIPAddress": "203.0.113.45"}, "clientIp", "203.0.113.45"),
        ({"ActorIpAddress": "[2001:db8::7]:1"}, "clientIp", "2001:db8::7"),
        ({"ClientIP": "198.51.100.1", "ActorIpAddress": "203.0.113.9"}, "clientIp", "198.51.100.1"),
        ({"ClientInfoString": "Client=OWA;Mozilla/5.0"}, "userAgent", "Client=OWA;Mozilla/5.0"),
        ({"UserAgent": "SkyDriveSync", "ClientInfoString": "x"}, "userAgent", "SkyDriveSync"),
        ({"ExtendedProperties": [{"Name": "RequestType", "Value": "x"}, {"Name": "UserAgent", "Value": "Edge/124"}]},
         "userAgent", "Edge/124"),
        ({"ObjectId": "https://contoso.sharepoint.com/a.docx"}, "object", "https://contoso.sharepoint.com/a.docx"),
        ({"Folders": [{"Path": "\\Inbox"}]}, "object", "\\Inbox"),
        ({"MailboxOwnerUPN": "owner@contoso.com"}, "object", "owner@contoso.com"),
        ({"Workload": "SharePoint", "SiteUrl": "https://c.sharepoint.com/sites/f/", "SourceRelativeUrl": "Shared Documents",
          "SourceFileName": "a.xlsx"}, "object", "https://c.sharepoint.com/sites/f/Shared Documents/a.xlsx"),
        ({"Workload": "AzureActiveDirectory", "Target": [{"ID": "app-guid", "Type": 0}]}, "object", "app-guid"),
        ({"Workload": "MicrosoftTeams", "TeamName": "Finance"}, "object", "Finance"),
        ({"Workload": "PowerBI", "ItemName": "Sales report"}, "object", "Sales report"),
        ({"ResultStatus": "True"}, "result", "Succeeded"),
        ({"UserId": None}, "user", ""),
    ],
)
def test_fields(extra, field, expected):
    entry = normalize({**BASE, **extra}, "Audit.Exchange", CREATED)
    assert getattr(entry, field) == expected


def test_entry_has_exactly_the_normalized_fields():
    entry = normalize(BASE, "Audit.Exchange", CREATED)
    assert list(entry.as_dict()) == list(FIELDS)
    assert entry.contentType == "Audit.Exchange"
    assert entry.organizationId == BASE["OrganizationId"]


def test_a_record_without_id_gets_a_stable_id():
    record = {k: v for k, v in BASE.items() if k != "Id"}
    first = normalize(record, "Audit.Exchange", CREATED).id
    assert first.startswith("sha256-")
    assert first == normalize(dict(record), "Audit.Exchange", CREATED).id
    assert first != normalize({**record, "Operation": "Send"}, "Audit.Exchange", CREATED).id


def test_unknown_shapes_do_not_break_normalization():
    odd = {**BASE, "RecordType": 99999, "Parameters": "a string", "ModifiedProperties": ["x", "y"],
           "ObjectId": {"nested": 1}, "Operation": 42}
    entry = normalize(odd, "Audit.General", CREATED)
    assert entry.recordType == 99999
    assert entry.operation == "42"
    assert entry.object == '{"nested":1}'
