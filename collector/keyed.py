"""Keyed views of a raw record's name/value arrays, and dotted paths into it (pure logic).

Audit records carry settings as positional arrays: `Parameters` and `ExtendedProperties`
(`[{"Name", "Value"}]`), `ModifiedProperties` (`[{"Name", "OldValue", "NewValue"}]`),
`OperationProperties` and `DeviceProperties`. Detection rules (docs/alerts.md) and users of other
collectors read them by name: `Parameters.ForwardTo`, `ExtendedProperties.RequestType`,
`ModifiedProperties.Role_DisplayName.NewValue`. `keyed(record)` flattens them into one mapping
of text values; `KeyedRecord.values(path)` reads any field by such a name, or by a dotted path into
the raw record (`CopilotEventData.AppHost`, `Members.UPN` across a list).

Records drift (docs/api-behaviour.md "Normalization pitfalls"): a name may repeat (the values are
kept, each once, in order), a value may be an object in one record and a string in the next (it is
always text here: objects as compact JSON), and Exchange sometimes sends `Parameters` as one
command-line string (`-Identity "x" -ForwardTo "y"`), which is parsed into the same names. Names
are matched case-insensitively. The raw record itself is never changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

# The arrays flattened by Name, and the value fields of each (ModifiedProperties has two).
NAMED_ARRAYS: Mapping[str, tuple[str, ...]] = {
    "Parameters": ("Value",),
    "ExtendedProperties": ("Value",),
    "ModifiedProperties": ("OldValue", "NewValue"),
    "OperationProperties": ("Value",),
    "DeviceProperties": ("Value",),
}

# The key fields of the record types of docs/alerts.md "Record types": dotted paths as
# KeyedRecord.values reads them (a list on the way is read element by element).
KEY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "CopilotInteraction (261), TeamCopilotInteraction (334), ConnectedAIAppInteraction (328), AIAppInteraction (284)": (
        "AppIdentity", "CopilotEventData.AppHost", "CopilotEventData.ThreadId", "CopilotEventData.Contexts.Id",
        "CopilotEventData.Contexts.Type", "CopilotEventData.AccessedResources.Name",
        "CopilotEventData.AccessedResources.SensitivityLabelId", "CopilotEventData.Messages.JailbreakDetected",
        "CopilotEventData.AISystemPlugin.Id", "ClientRegion", "AgentId", "AgentName"),
    "MicrosoftTeams (25), MicrosoftTeamsAdmin (57)": (
        "TeamName", "TeamGuid", "ChannelName", "ChannelType", "Members.UPN", "Members.Role", "CommunicationType",
        "ParticipantInfo.HasForeignTenantUsers", "ParticipantInfo.HasGuestUsers", "MessageId", "AddOnName"),
    "PowerBIAudit (20)": ("WorkSpaceName", "DatasetName", "ReportName", "DashboardName", "AppName", "Activity",
                          "ItemName", "SharingInformation.RecipientEmail", "SwitchState"),
    "MIPLabel (43), sensitivity labels (82-84, 71, 72, 75, 206)": (
        "Sender", "Receivers", "ItemName", "LabelId", "LabelName", "LabelAction", "ApplicationMode",
        "SensitivityLabelEventData.SensitivityLabelId", "SensitivityLabelEventData.OldSensitivityLabelId"),
    "DLP (11, 13, 63)": ("PolicyDetails.PolicyName", "PolicyDetails.Rules.RuleName", "PolicyDetails.Rules.Severity",
                         "PolicyDetails.Rules.Actions",
                         "PolicyDetails.Rules.ConditionsMatched.SensitiveInformation.SensitiveInformationTypeName"),
    "ExchangeItemAggregated (50) MailItemsAccessed": (
        "OperationCount", "OperationProperties.IsThrottled", "OperationProperties.MailAccessType", "ClientAppId",
        "LogonType", "MailboxOwnerUPN", "ClientInfoString", "Folders.FolderItems.InternetMessageId"),
    "AzureActiveDirectoryStsLogon (15)": (
        "ExtendedProperties.RequestType", "ExtendedProperties.ResultStatusDetail", "ExtendedProperties.UserAgent",
        "LogonError", "ErrorNumber", "ApplicationId", "DeviceProperties.IsCompliant", "DeviceProperties.OS",
        "Actor.Type", "Target.Type"),
    "SharePointFileOperation (6), SharePointSharingOperation (14)": (
        "SiteUrl", "SourceFileName", "SourceFileExtension", "SourceRelativeUrl", "UserAgent", "ApplicationId",
        "AppAccessContext.AADSessionId", "TargetUserOrGroupName", "TargetUserOrGroupType"),
    "ExchangeAdmin (1)": ("Parameters.ForwardTo", "Parameters.RedirectTo", "Parameters.ForwardingSmtpAddress",
                          "Parameters.DeliverToMailboxAndForward", "Parameters.AccessRights", "Parameters.Enabled",
                          "Parameters.UnifiedAuditLogIngestionEnabled", "ObjectId"),
    "AuditSearch (295), AuditRetentionPolicy (296), AuditConfig (297)": ("SearchJobId", "SearchJobName", "SearchFilters"),
}

# `-Name "value"`, `-Name 'value'`, `-Name value` or a bare switch `-Name` (then "True").
_CMDLINE = re.compile(r"""(?:^|\s)-([A-Za-z][\w-]*)(?::|\s+)?(?:"([^"]*)"|'([^']*)'|(?!-)(\S+))?""")


def text(value: Any, *, sort_keys: bool = True) -> str:
    """A field value as text: strings stripped, booleans True/False, numbers as written, objects as
    JSON (keys sorted here, so one object always reads the same; normalize.py keeps their order)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def parse_command_line(line: str) -> list[tuple[str, str]]:
    """(name, value) pairs of a cmdlet's parameters written as one string."""
    pairs = []
    for match in _CMDLINE.finditer(line):
        name, *values = match.groups()
        value = next((v for v in values if v is not None), None)
        pairs.append((name, "True" if value is None else value))
    return pairs


def _named_items(array: str, items: Any) -> Iterator[tuple[str, str, Any]]:
    """(name, value field, raw value) of one named array, whatever shape it arrived in."""
    fields = NAMED_ARRAYS[array]
    if isinstance(items, str):
        if array == "Parameters":
            for name, value in parse_command_line(items):
                yield name, fields[0], value
        return
    if isinstance(items, dict):  # seen as a single object instead of a one-element list
        items = [items]
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue  # ModifiedProperties of Exchange item updates is a list of names only
        name = text(item.get("Name"))
        if not name:
            continue
        for field in fields:
            if field in item:
                yield name, field, item[field]


def keyed(record: Mapping[str, Any]) -> dict[str, str]:
    """Every named array's entries as `Array.Name` (`ModifiedProperties.Name.NewValue`) → text. A
    repeated name keeps each distinct value once, joined with newlines in order of appearance."""
    out: dict[str, str] = {}
    for array, fields in NAMED_ARRAYS.items():
        items = record.get(array)
        if items is None:
            continue
        for name, field, raw in _named_items(array, items):
            key = f"{array}.{name}" if len(fields) == 1 else f"{array}.{name}.{field}"
            value = text(raw)
            if key not in out:
                out[key] = value
            elif value not in out[key].split("\n"):
                out[key] = out[key] + "\n" + value
    return out


def named(items: Any, name: str, field: str = "Value") -> Any:
    """The first raw value of `name` in a `[{"Name", "Value"}]` list (normalize.py's user agent)."""
    if isinstance(items, list):
        wanted = name.lower()
        for item in items:
            if isinstance(item, dict) and text(item.get("Name")).lower() == wanted:
                return item.get(field)
    return None


def _walk(value: Any, steps: list[str]) -> Iterator[Any]:
    if not steps:
        if isinstance(value, list):
            for element in value:
                yield from _walk(element, steps)
        elif value is not None:
            yield value
        return
    if isinstance(value, list):
        for element in value:
            yield from _walk(element, steps)
        return
    if not isinstance(value, dict):
        return
    step = steps[0]
    if step in value:
        yield from _walk(value[step], steps[1:])
        return
    lowered = step.lower()
    for key, child in value.items():
        if isinstance(key, str) and key.lower() == lowered:
            yield from _walk(child, steps[1:])
            return


class KeyedRecord:
    """One raw record read by field name: keyed arrays first, then a dotted path into the record.
    The keyed mapping is built on first use only (most records are never asked for one)."""

    __slots__ = ("_keyed", "_lower", "record")

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = record
        self._keyed: dict[str, str] | None = None
        self._lower: dict[str, str] | None = None

    @property
    def keyed(self) -> dict[str, str]:
        if self._keyed is None:
            self._keyed = keyed(self.record)
        return self._keyed

    def values(self, path: str) -> list[str]:
        """Every text value at `path` (empty values dropped); [] when the record has none."""
        head = path.split(".", 1)[0]
        if head in NAMED_ARRAYS or head.lower() in _NAMED_LOWER:
            found = self.keyed.get(path)
            if found is None:
                if self._lower is None:
                    self._lower = {key.lower(): value for key, value in self.keyed.items()}
                found = self._lower.get(path.lower())
            if found is not None:
                return [part for part in found.split("\n") if part]
            if head in NAMED_ARRAYS:
                return []
        return [value for value in (text(v) for v in _walk(self.record, path.split("."))) if value]

    def first(self, path: str) -> str:
        found = self.values(path)
        return found[0] if found else ""


_NAMED_LOWER = {name.lower() for name in NAMED_ARRAYS}
