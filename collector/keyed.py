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
from collections.abc import Callable, Iterator, Mapping
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
# The separator belongs to the value: a bare switch must leave the space before the next `-Name`.
_CMDLINE = re.compile(r"""(?:^|\s)-([A-Za-z][\w-]*)(?:(?::|\s+)(?:"([^"]*)"|'([^']*)'|(?!-)(\S+)))?""")


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
    for array in NAMED_ARRAYS:
        out.update(keyed_array(record, array))
    return out


def keyed_array(record: Mapping[str, Any], array: str) -> dict[str, str]:
    """`keyed(record)` restricted to one named array (its keys all start with `array.`)."""
    out: dict[str, str] = {}
    items = record.get(array)
    if items is None:
        return out
    fields = NAMED_ARRAYS[array]
    if len(fields) == 1 and isinstance(items, list):
        # The usual shape, `[{"Name", "Value"}]`, read in one loop: this runs for every record a
        # rule reads by name (what _named_items and text would do, without their calls).
        prefix, field = array + ".", fields[0]
        for item in items:
            if not isinstance(item, dict):
                continue
            name = item.get("Name")
            name = name.strip() if name.__class__ is str else text(name)
            if not name or field not in item:
                continue
            raw = item[field]
            _add(out, prefix + name, raw.strip() if raw.__class__ is str else text(raw))
        return out
    single = len(fields) == 1
    for name, field, raw in _named_items(array, items):
        _add(out, f"{array}.{name}" if single else f"{array}.{name}.{field}", text(raw))
    return out


def _add(out: dict[str, str], key: str, value: str) -> None:
    known = out.get(key)
    if known is None:
        out[key] = value
    elif value not in known.split("\n"):
        out[key] = known + "\n" + value


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
    lowered, size = step.lower(), len(step)
    for key, child in value.items():  # names differ in case only: the length first, it is cheap
        if isinstance(key, str) and len(key) == size and key.lower() == lowered:
            yield from _walk(child, steps[1:])
            return


Reader = Callable[["KeyedRecord"], list[str]]


class KeyedRecord:
    """One raw record read by field name: keyed arrays first, then a dotted path into the record.
    Each array's keyed mapping is built on first use only, and only for the array asked for: most
    records are never asked for one, and a rule reading `ExtendedProperties.UserAgent` need not
    flatten `ModifiedProperties` (the detection rules' ingest cost, docs/performance.md)."""

    __slots__ = ("_arrays", "_lower", "_scanned", "record")

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = record
        self._arrays: dict[str, dict[str, str]] = {}
        self._lower: dict[str, dict[str, str]] = {}
        self._scanned: dict[str, int] = {}

    @property
    def keyed(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for array in NAMED_ARRAYS:
            out.update(self._array(array))
        return out

    def values(self, path: str) -> list[str]:
        """Every text value at `path` (empty values dropped); [] when the record has none."""
        return reader(path)(self)

    def first(self, path: str) -> str:
        found = self.values(path)
        return found[0] if found else ""

    def _array(self, array: str) -> dict[str, str]:
        found = self._arrays.get(array)
        if found is None:
            found = self._arrays[array] = keyed_array(self.record, array)
        return found

    def _named(self, array: str, path: str, lowered: str) -> str | None:
        mapping = self._arrays.get(array)
        if mapping is None:
            # The first two names asked of an array are scanned for (most records are asked one or
            # two); a third builds the mapping once, cheaper than scanning for each of many.
            scans = self._scanned.get(array, 0)
            if scans < 2:
                self._scanned[array] = scans + 1
                found = _scan(self.record.get(array), array, path, lowered)
                if found is not _UNDECIDED:
                    return found
            mapping = self._array(array)
        found = mapping.get(path)
        if found is None:
            lower = self._lower.get(array)
            if lower is None:  # names are matched case-insensitively when the exact one is absent
                lower = self._lower[array] = {key.lower(): value for key, value in mapping.items()}
            found = lower.get(lowered)
        return found

    def _top(self, name: str, lowered: str) -> list[str]:
        """A top-level field (`_walk` with one step, its usual case made short)."""
        record = self.record
        value = record.get(name)
        if value is None:
            if name in record:
                return []
            size = len(name)
            for key, child in record.items():  # the length first, as _walk does
                if isinstance(key, str) and len(key) == size and key.lower() == lowered:
                    value = child
                    break
            else:
                return []
        kind = value.__class__
        if kind is str:
            value = value.strip()
            return [value] if value else []
        if kind is int or kind is float:
            return [str(value)]
        return [found for found in (text(v) for v in _walk(value, [])) if found]

    def _path(self, steps: list[str]) -> list[str]:
        return [found for found in (text(v) for v in _walk(self.record, steps)) if found]


_UNDECIDED = "\x00undecided"


def _scan(items: Any, array: str, path: str, lowered: str) -> str | None:
    """What `keyed_array(record, array)` holds at `path`, read off a `[{"Name", "Value"}]` list
    without building the mapping (one pass, most records ask for one or two names); _UNDECIDED
    for anything else: another shape, names differing in case only, values holding newlines."""
    fields = NAMED_ARRAYS[array]
    if items is None:
        return None
    if len(fields) != 1 or not isinstance(items, list):
        return _UNDECIDED
    field, prefix = fields[0], len(array) + 1
    name, size = path[prefix:], len(path) - prefix
    found: list[str] = []
    lowered = lowered[prefix:]
    for item in items:
        if not isinstance(item, dict):
            continue
        given = item.get("Name")
        if given.__class__ is not str:
            return _UNDECIDED
        length = len(given)
        if length < size:
            continue  # too short to be the name, stripped or not (the usual case: lengths first)
        if length > size:
            given = given.strip()
            if len(given) != size:
                continue
        if given != name:
            if given.lower() == lowered:
                return _UNDECIDED  # names differing in case only: the mapping's reading decides
            continue
        if field not in item:
            continue
        raw = item[field]
        value = raw.strip() if raw.__class__ is str else text(raw)
        if "\n" in value:
            return _UNDECIDED
        if value not in found:
            found.append(value)
    return "\n".join(found) if found else None


def reader(path: str) -> Reader:
    """`KeyedRecord.values(path)` with the reading of `path` decided once (the rules' fields)."""
    found = _READERS.get(path)
    if found is None:
        if len(_READERS) >= 10_000:  # paths come from rules; stay bounded whatever asks
            _READERS.clear()
        found = _READERS[path] = _make_reader(path)
    return found


def _make_reader(path: str) -> Reader:
    steps = path.split(".")
    lowered = path.lower()
    head = steps[0]
    array = head if head in NAMED_ARRAYS else _NAMED_LOWER.get(head.lower())
    if array is not None:
        strict = head in NAMED_ARRAYS  # `Parameters.X`: only the keyed view; `parameters.x`: else a path

        def named(view: KeyedRecord) -> list[str]:
            found = view._named(array, path, lowered)
            if found is not None:
                return [part for part in found.split("\n") if part] if "\n" in found else ([found] if found else [])
            return [] if strict else view._path(steps)
        return named
    if len(steps) == 1:
        return lambda view: view._top(path, lowered)
    return lambda view: view._path(steps)


_READERS: dict[str, Reader] = {}
_NAMED_LOWER = {name.lower(): name for name in NAMED_ARRAYS}
