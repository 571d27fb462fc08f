"""collector/keyed.py: name/value arrays read by name, and dotted paths into the raw record (pure)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.keyed import KEY_FIELDS, KeyedRecord, keyed, named, parse_command_line, text


def values(record: dict[str, Any], path: str) -> list[str]:
    return KeyedRecord(record).values(path)


# ------------------------------------------------------------------ the arrays by name


def test_each_array_is_flattened_by_name_and_modified_properties_keep_old_and_new() -> None:
    record = {
        "Parameters": [{"Name": "Identity", "Value": "Forward all"}, {"Name": "ForwardTo", "Value": "x@evil.example"}],
        "ExtendedProperties": [{"Name": "RequestType", "Value": "OAuth2:Authorize"}],
        "ModifiedProperties": [{"Name": "Role.DisplayName", "OldValue": "", "NewValue": "Global Administrator"},
                               {"Name": "AllowGuestUser", "OldValue": "False", "NewValue": "True"}],
        "OperationProperties": [{"Name": "IsThrottled", "Value": "True"}],
        "DeviceProperties": [{"Name": "IsCompliant", "Value": "False"}],
    }
    assert keyed(record) == {
        "Parameters.Identity": "Forward all", "Parameters.ForwardTo": "x@evil.example",
        "ExtendedProperties.RequestType": "OAuth2:Authorize",
        "ModifiedProperties.Role.DisplayName.OldValue": "", "ModifiedProperties.Role.DisplayName.NewValue": "Global Administrator",
        "ModifiedProperties.AllowGuestUser.OldValue": "False", "ModifiedProperties.AllowGuestUser.NewValue": "True",
        "OperationProperties.IsThrottled": "True", "DeviceProperties.IsCompliant": "False",
    }
    assert values(record, "ModifiedProperties.Role.DisplayName.NewValue") == ["Global Administrator"]
    assert values(record, "ModifiedProperties.Role.DisplayName.OldValue") == []  # empty values are dropped
    assert values(record, "ModifiedProperties.AllowGuestUser.OldValue") == ["False"]
    assert values(record, "ModifiedProperties.AllowGuestUser") == []  # a modified property is read by Old/NewValue
    assert values(record, "Parameters.Missing") == []


def test_a_repeated_name_keeps_each_distinct_value_once_in_order() -> None:
    record = {"Parameters": [{"Name": "ForwardTo", "Value": "a@x.example"}, {"Name": "Other", "Value": "1"},
                             {"Name": "ForwardTo", "Value": "b@y.example"}, {"Name": "ForwardTo", "Value": "a@x.example"},
                             {"Name": " ForwardTo ", "Value": " c@z.example "}]}
    assert keyed(record)["Parameters.ForwardTo"] == "a@x.example\nb@y.example\nc@z.example"
    assert values(record, "Parameters.ForwardTo") == ["a@x.example", "b@y.example", "c@z.example"]


def test_type_drift_an_object_and_a_string_of_one_name_are_both_text() -> None:
    as_object = {"ExtendedProperties": [{"Name": "Detail", "Value": {"b": 1, "a": [True, None]}}]}
    as_string = {"ExtendedProperties": [{"Name": "Detail", "Value": '{"a":[true,null],"b":1}'}]}
    assert values(as_object, "ExtendedProperties.Detail") == ['{"a":[true,null],"b":1}']  # compact JSON, keys sorted
    assert values(as_string, "ExtendedProperties.Detail") == ['{"a":[true,null],"b":1}']
    both = {"ExtendedProperties": [*as_object["ExtendedProperties"], {"Name": "Detail", "Value": "plain"},
                                   {"Name": "Detail", "Value": 7}, {"Name": "Detail", "Value": False}]}
    assert values(both, "ExtendedProperties.Detail") == ['{"a":[true,null],"b":1}', "plain", "7", "False"]
    assert all(isinstance(v, str) for v in keyed(both).values())


def test_names_are_matched_case_insensitively_when_the_exact_one_is_absent() -> None:
    record = {"Parameters": [{"Name": "forwardto", "Value": "a@x.example"}]}
    assert values(record, "Parameters.ForwardTo") == ["a@x.example"]
    assert values(record, "parameters.FORWARDTO") == ["a@x.example"]  # the array's name too
    exact = {"Parameters": [{"Name": "forwardto", "Value": "low@x.example"}, {"Name": "ForwardTo", "Value": "exact@x.example"}]}
    assert values(exact, "Parameters.ForwardTo") == ["exact@x.example"]


def test_exchange_parameters_sent_as_one_command_line_are_parsed() -> None:
    line = """-Identity "Forward all" -ForwardTo 'x@evil.example' -StopProcessingRules -Priority 2 -Name:Quick"""
    assert parse_command_line(line) == [("Identity", "Forward all"), ("ForwardTo", "x@evil.example"),
                                        ("StopProcessingRules", "True"), ("Priority", "2"), ("Name", "Quick")]
    record = {"Parameters": line}
    assert values(record, "Parameters.ForwardTo") == ["x@evil.example"]
    assert values(record, "Parameters.StopProcessingRules") == ["True"]
    assert keyed({"ExtendedProperties": "-Name x"}) == {}  # only Parameters come as a command line


def test_text_of_every_json_type() -> None:
    assert [text(v) for v in (None, " a ", True, False, 3, 2.5, [1, "x"], {"b": 1, "a": 2})] == [
        "", "a", "True", "False", "3", "2.5", '[1,"x"]', '{"a":2,"b":1}']
    assert text({"b": 1, "a": 2}, sort_keys=False) == '{"b":1,"a":2}'


def test_named_reads_the_first_raw_value_case_insensitively() -> None:
    items = [{"Name": "UserAgent", "Value": "first"}, {"Name": "useragent", "Value": "second"}]
    assert named(items, "USERAGENT") == "first"
    assert named(items, "Missing") is None
    assert named("not a list", "UserAgent") is None


# ------------------------------------------------------------------ the record types of the issue


COPILOT = {
    "RecordType": 261, "Operation": "CopilotInteraction", "AppIdentity": "Copilot.Studio.Agent",
    "CopilotEventData": {
        "AppHost": "Teams", "ThreadId": "19:abc",
        "Contexts": [{"Id": "https://contoso.sharepoint.com/a.docx", "Type": "File"}, {"Id": "chat-1", "Type": "TeamsChat"}],
        "AccessedResources": [{"Name": "a.docx", "SensitivityLabelId": "label-1"}, {"Name": "b.xlsx"}],
        "Messages": [{"Id": "1", "JailbreakDetected": False}, {"Id": "2", "JailbreakDetected": True}],
        "AISystemPlugin": [{"Id": "BingWebSearch"}],
    },
}
MAIL_ITEMS_ACCESSED = {
    "RecordType": 50, "Operation": "MailItemsAccessed", "OperationCount": 12, "ClientAppId": "",
    "OperationProperties": [{"Name": "MailAccessType", "Value": "Bind"}, {"Name": "IsThrottled", "Value": "True"}],
    "Folders": [{"Path": "\\Inbox", "FolderItems": [{"InternetMessageId": "<1@x>"}, {"InternetMessageId": "<2@x>"}]},
                {"Path": "\\Sent", "FolderItems": [{"InternetMessageId": "<3@x>"}]}],
}
SIGN_IN = {
    "RecordType": 15, "Operation": "UserLoginFailed", "LogonError": "InvalidUserNameOrPassword", "ErrorNumber": "50126",
    "ExtendedProperties": [{"Name": "RequestType", "Value": "OAuth2:Token"}, {"Name": "UserAgent", "Value": "BAV2ROPC"},
                           {"Name": "ResultStatusDetail", "Value": "Success"}],
    "DeviceProperties": [{"Name": "OS", "Value": "Windows 10"}, {"Name": "IsCompliant", "Value": "False"}],
    "Actor": [{"ID": "a", "Type": 0}, {"ID": "megan@contoso.com", "Type": 5}], "Target": [{"ID": "t", "Type": 0}],
}
DLP = {
    "RecordType": 11, "Operation": "DlpRuleMatch",
    "PolicyDetails": [{"PolicyName": "PCI", "Rules": [
        {"RuleName": "Cards", "Severity": "High", "Actions": ["NotifyUser", "BlockAccess"],
         "ConditionsMatched": {"SensitiveInformation": [{"SensitiveInformationTypeName": "Credit Card Number"},
                                                        {"SensitiveInformationTypeName": "IBAN"}]}}]}],
}
MIP_LABEL = {
    "RecordType": 43, "Operation": "MipLabel", "LabelName": "Confidential", "LabelAction": "Upgrade",
    "SensitivityLabelEventData": {"SensitivityLabelId": "new-label", "OldSensitivityLabelId": "old-label"},
    "Receivers": ["a@contoso.com", "b@fabrikam.example"],
}


@pytest.mark.parametrize(("record", "path", "expected"), [
    (COPILOT, "AppIdentity", ["Copilot.Studio.Agent"]),
    (COPILOT, "CopilotEventData.AppHost", ["Teams"]),
    (COPILOT, "copilotEventData.appHost", ["Teams"]),  # property names drift in case
    (COPILOT, "CopilotEventData.Contexts.Id", ["https://contoso.sharepoint.com/a.docx", "chat-1"]),
    (COPILOT, "CopilotEventData.AccessedResources.SensitivityLabelId", ["label-1"]),
    (COPILOT, "CopilotEventData.Messages.JailbreakDetected", ["False", "True"]),
    (COPILOT, "CopilotEventData.AISystemPlugin.Id", ["BingWebSearch"]),
    (MAIL_ITEMS_ACCESSED, "OperationProperties.IsThrottled", ["True"]),
    (MAIL_ITEMS_ACCESSED, "OperationProperties.MailAccessType", ["Bind"]),
    (MAIL_ITEMS_ACCESSED, "OperationCount", ["12"]),
    (MAIL_ITEMS_ACCESSED, "ClientAppId", []),
    (MAIL_ITEMS_ACCESSED, "Folders.FolderItems.InternetMessageId", ["<1@x>", "<2@x>", "<3@x>"]),
    (SIGN_IN, "ExtendedProperties.RequestType", ["OAuth2:Token"]),
    (SIGN_IN, "ExtendedProperties.UserAgent", ["BAV2ROPC"]),
    (SIGN_IN, "DeviceProperties.IsCompliant", ["False"]),
    (SIGN_IN, "LogonError", ["InvalidUserNameOrPassword"]),
    (SIGN_IN, "Actor.Type", ["0", "5"]),
    (DLP, "PolicyDetails.PolicyName", ["PCI"]),
    (DLP, "PolicyDetails.Rules.Actions", ["NotifyUser", "BlockAccess"]),
    (DLP, "PolicyDetails.Rules.ConditionsMatched.SensitiveInformation.SensitiveInformationTypeName",
     ["Credit Card Number", "IBAN"]),
    (MIP_LABEL, "LabelName", ["Confidential"]),
    (MIP_LABEL, "SensitivityLabelEventData.OldSensitivityLabelId", ["old-label"]),
    (MIP_LABEL, "Receivers", ["a@contoso.com", "b@fabrikam.example"]),
])
def test_the_key_fields_of_the_issues_record_types(record: dict[str, Any], path: str, expected: list[str]) -> None:
    before = copy.deepcopy(record)
    assert values(record, path) == expected
    assert record == before  # the raw record is never changed


def test_key_fields_names_only_readable_paths() -> None:
    for paths in KEY_FIELDS.values():
        for path in paths:
            assert path and all(path.split(".")), path
    # The listed paths of the sample records above read what they hold.
    samples = {"Copilot": COPILOT, "ExchangeItemAggregated": MAIL_ITEMS_ACCESSED, "AzureActiveDirectoryStsLogon": SIGN_IN,
               "DLP": DLP, "MIPLabel": MIP_LABEL}
    for kind, record in samples.items():
        paths = next(p for label, p in KEY_FIELDS.items() if label.startswith(kind))
        readable = [path for path in paths if values(record, path)]
        assert readable, kind


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize("shape", [None, 5, "text", True, [1, "x", None, []], [{"Value": "no name"}],
                                   [{"Name": "", "Value": "empty name"}], [{"Name": None, "Value": "x"}],
                                   [{"Name": "NoValue"}]])
def test_odd_shapes_give_nothing_and_never_raise(shape: Any) -> None:
    record = {"ExtendedProperties": shape, "ModifiedProperties": shape, "OperationProperties": shape}
    assert keyed(record) == {}
    for path in ("ExtendedProperties.NoValue", "ModifiedProperties.NoValue.NewValue", "OperationProperties.x"):
        assert values(record, path) == []


def test_a_single_object_instead_of_a_list_is_read_as_one_item() -> None:
    record = {"ExtendedProperties": {"Name": "RequestType", "Value": "Cmsi:Cmsi"}}
    assert values(record, "ExtendedProperties.RequestType") == ["Cmsi:Cmsi"]


def test_names_of_other_types_are_read_as_text() -> None:
    record = {"Parameters": [{"Name": 5, "Value": "five"}, {"Name": True, "Value": "yes"}]}
    assert keyed(record) == {"Parameters.5": "five", "Parameters.True": "yes"}
    assert values(record, "Parameters.5") == ["five"]


def test_a_value_holding_newlines_reads_as_its_lines() -> None:
    record = {"Parameters": [{"Name": "Body", "Value": "line one\nline two"}, {"Name": "Body", "Value": "line two"}]}
    assert values(record, "Parameters.Body") == ["line one", "line two"]


def test_huge_arrays_are_read_whole() -> None:
    items = [{"Name": f"Name{i}", "Value": str(i)} for i in range(100_000)]
    items.append({"Name": "Name7", "Value": "again"})
    record = {"Parameters": items}
    assert values(record, "Parameters.Name99999") == ["99999"]
    assert values(record, "Parameters.Name7") == ["7", "again"]
    assert len(keyed(record)) == 100_000
    view = KeyedRecord(record)  # one view asked many names: the mapping is built once and agrees
    assert [view.first(f"Parameters.Name{i}") for i in (0, 1, 2, 50_000)] == ["0", "1", "2", "50000"]


# ------------------------------------------------------------------ one reading, whatever the path taken


def reference(record: dict[str, Any], path: str) -> list[str]:
    """KeyedRecord.values of an array path as documented: the whole mapping, the exact key, else the
    key equal case-insensitively (the last such), the joined values split."""
    mapping = keyed(record)
    found = mapping.get(path)
    if found is None:
        found = {key.lower(): value for key, value in mapping.items()}.get(path.lower())
    return [part for part in (found or "").split("\n") if part]


_names = st.sampled_from(["UserAgent", "useragent", "USERAGENT", " UserAgent ", "RequestType", "Other", "", "User"])
_values = st.one_of(st.sampled_from(["", "a", "b", "a\nb", " c "]), st.integers(-3, 3), st.booleans(), st.none(),
                    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2))
_item = st.one_of(st.fixed_dictionaries({"Name": _names, "Value": _values}),
                  st.fixed_dictionaries({"Name": st.one_of(st.integers(0, 2), st.none()), "Value": _values}),
                  st.fixed_dictionaries({"Value": _values}), st.just("not an item"))


@settings(max_examples=300, deadline=None)
@given(items=st.one_of(st.lists(_item, max_size=8), _item),
       path=st.sampled_from(["ExtendedProperties.UserAgent", "ExtendedProperties.useragent", "extendedproperties.RequestType",
                             "ExtendedProperties.Other", "ExtendedProperties.User"]))
def test_the_scan_for_one_name_and_the_mapping_read_alike(items: Any, path: str) -> None:
    record = {"ExtendedProperties": items}
    expected = reference(record, path)
    assert values(record, path) == expected  # a fresh view: the first name is scanned for
    view = KeyedRecord(record)
    for other in ("ExtendedProperties.A", "ExtendedProperties.B"):
        view.values(other)
    assert view.values(path) == expected  # the third name builds the mapping
    assert json.loads(json.dumps(record)) == record  # nothing was changed in place
