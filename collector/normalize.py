"""Raw audit record → the twelve normalized fields of the index (pure logic, docs/normalization.md).

Records are schema-drifting JSON (docs/api-behaviour.md "Record schema"): fields may be missing,
typed differently per workload, or hold IPs with ports and brackets ("Normalization pitfalls"). Normalization never rejects a record: the raw archive keeps
every byte, and the index gets the best reading we can make.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from .keyed import KeyedRecord, named, text
from .models import AuditEntry
from .timeutil import format_record_time, parse_time

_RESULTS = {
    "succeeded": "Succeeded", "success": "Succeeded", "true": "Succeeded",
    "failed": "Failed", "failure": "Failed", "false": "Failed",
    "partiallysucceeded": "PartiallySucceeded",
}


def normalize_result(value: Any) -> str:
    text = _text(value)
    return _RESULTS.get(text.lower(), text) if text else ""


_BRACKETED = re.compile(r"^\[([^\]]*)\](?::\d+)?$")
_V4_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d+$")
_HOST_PORT = re.compile(r"^([^:\s]+):\d+$")


def normalize_ip(value: Any) -> str:
    """`[2001:db8::5]:443` → `2001:db8::5`, `203.0.113.7:5123` → `203.0.113.7` ("Normalization pitfalls")."""
    text = _text(value)
    if not text:
        return ""
    match = _BRACKETED.match(text)
    if match:
        return match.group(1)
    match = _V4_PORT.match(text) or _HOST_PORT.match(text)
    if match:
        return match.group(1)
    return text  # bare IPv6 (several colons), IPv4, or something odd kept as given


def _text(value: Any) -> str:
    return text(value, sort_keys=False)  # an object's keys in the record's order, as indexed since issue 2


def _first(*values: Any) -> str:
    for value in values:
        text = _text(value)
        if text:
            return text
    return ""


def _named(items: Any, name: str) -> Any:
    """Value of the `{"Name": name, "Value": ...}` item in a list such as ExtendedProperties
    (keyed.py reads every such list by name: the detection rules' `ExtendedProperties.UserAgent`)."""
    return named(items, name)


def _get(record: dict[str, Any], *path: Any) -> Any:
    value: Any = record
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and len(value) > step else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def fallback_object(record: dict[str, Any]) -> str:
    """The object of a record that has no ObjectId (documented in docs/normalization.md)."""
    workload = _text(record.get("Workload")).lower()
    if workload == "exchange":
        return _first(_get(record, "Item", "ParentFolder", "Path"), _get(record, "Folders", 0, "Path"),
                      record.get("MailboxOwnerUPN"), record.get("MailboxGuid"))
    if workload in ("sharepoint", "onedrive"):
        site = _text(record.get("SiteUrl"))
        path = "/".join(p for p in (_text(record.get("SourceRelativeUrl")), _text(record.get("SourceFileName"))) if p)
        return (site.rstrip("/") + "/" + path) if site and path else _first(site, path, record.get("ListUrl"))
    if workload == "azureactivedirectory":
        return _first(_get(record, "Target", 0, "ID"))
    if workload == "microsoftteams":
        return _first(record.get("TeamName"), record.get("ChannelName"), record.get("TeamGuid"))
    if workload == "powerbi":
        return _first(record.get("ItemName"), record.get("DatasetName"), record.get("WorkSpaceName"))
    if _text(record.get("Operation")).lower().startswith("dlp"):
        return _first(_get(record, "SharePointMetaData", "FilePathUrl"), _get(record, "ExchangeMetaData", "Subject"),
                      _get(record, "EndpointMetaData", "SourceLocation"), _get(record, "PolicyDetails", 0, "PolicyName"))
    return _first(record.get("ItemName"), record.get("ObjectName"), _get(record, "Item", "Id"))


def record_id(record: dict[str, Any]) -> str:
    """The record's `Id`; a record without one gets a stable id derived from its content."""
    text = _text(record.get("Id"))
    if text:
        return text
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"sha256-{digest[:32]}"


def record_time(record: dict[str, Any], fallback: datetime) -> datetime:
    """`CreationTime` as UTC; a record without a readable one is placed at its blob's contentCreated."""
    try:
        return parse_time(_text(record.get("CreationTime")))
    except ValueError:
        return fallback


def normalize(record: dict[str, Any], content_type: str, content_created: datetime) -> AuditEntry:
    return normalize_record(record, content_type, content_created)[0]


def normalize_record(record: dict[str, Any], content_type: str, content_created: datetime) -> tuple[AuditEntry, datetime]:
    """The entry and its event time (the index keys on the time; parsing it once is cheaper)."""
    when = record_time(record, content_created)
    record_type = record.get("RecordType")
    try:
        rt: int | None = int(record_type) if record_type is not None and not isinstance(record_type, bool) else None
    except (TypeError, ValueError):
        rt = None
    return AuditEntry(
        id=record_id(record),
        time=format_record_time(when),
        user=_text(record.get("UserId")),
        operation=_text(record.get("Operation")),
        object=_first(record.get("ObjectId")) or fallback_object(record),
        result=normalize_result(record.get("ResultStatus")),
        clientIp=normalize_ip(_first(record.get("ClientIP"), record.get("ClientIPAddress"), record.get("ActorIpAddress"))),
        userAgent=_first(record.get("UserAgent"), _named(record.get("ExtendedProperties"), "UserAgent"),
                         record.get("ClientInfoString")),
        workload=_text(record.get("Workload")),
        recordType=rt,
        contentType=content_type,
        organizationId=_text(record.get("OrganizationId")),
    ), when


def keyed_view(record: dict[str, Any]) -> KeyedRecord:
    """The record read by field name (`Parameters.ForwardTo`, `CopilotEventData.AppHost`): what the
    detection rules see beside the normalized entry (collector/keyed.py; the index payload is unchanged)."""
    return KeyedRecord(record)
