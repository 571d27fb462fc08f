"""collector/alerts/rules.py matchers (pure): the per-operation specialization the engine runs
agrees with the whole condition, and each field test means what docs/alerts.md says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.alerts.rules import Event, Rule, load_rules
from collector.collect import content_items
from collector.normalize import normalize
from simulator import stories
from simulator.synthetic import generate_blobs

TENANT = "5f1c2a3b-0000-4000-8000-00000000beef"
WHEN = datetime(2026, 3, 2, tzinfo=UTC)


def rule(match: Any) -> Rule:
    spec = {"name": "x", "kind": "event", "severity": "low", "description": "d", "match": match}
    return next(r for r in load_rules(json.dumps([spec])) if r.name == "x")


def event(**record: Any) -> Event:
    return Event(normalize(record, "Audit.General", WHEN), record)


def test_the_specialized_conditions_agree_with_the_whole_ones_on_a_day_and_every_story() -> None:
    _, blobs = generate_blobs(TENANT, WHEN, WHEN + timedelta(hours=2), 1500)
    records = [record for blob in blobs for record in json.loads(blob.body)]
    for name in stories.STORIES:
        records.extend(stories.records(name, WHEN, TENANT))
    rules = [r for r in load_rules() if r.kind != "health"]
    items = content_items(records, "Audit.General", WHEN, "blob")
    matched = decided = 0
    for item in items:
        seen = Event(item.entry, records[item.position])
        for r in rules:
            whole = r.matches(seen)
            special = r.for_operation(item.entry.operation)
            if isinstance(special, bool):
                decided += 1
                assert special == whole, (r.name, item.entry.id)
            else:
                assert special(Event(item.entry, records[item.position])) == whole, (r.name, item.entry.id)
            matched += whole
    assert matched >= len(stories.STORIES)  # the stories' records do match
    assert decided > len(items) * len(rules) * 0.9  # most (rule, operation) pairs need no test per record


def test_operation_tests_are_decided_and_the_tree_simplified() -> None:
    either = rule({"any": [{"field": "operation", "in": ["New-InboxRule"]}, {"field": "user", "exists": True}]})
    assert either.for_operation("new-inboxrule") is True  # case ignored, as the test does
    rest = either.for_operation("Other")
    assert callable(rest) and rest(event(Operation="Other", UserId="a@b.c")) and not rest(event(Operation="Other"))
    both = rule({"all": [{"field": "operation", "contains": "copilot"}, {"field": "user", "exists": True}]})
    assert both.for_operation("FileAccessed") is False
    assert callable(both.for_operation("CopilotInteraction"))
    negated = rule({"not": {"field": "operation", "matches": "^remove-"}})
    assert negated.for_operation("Remove-AntiPhishPolicy") is False and negated.for_operation("Set-X") is True
    assert rule({"field": "operation", "exists": False}).for_operation("") is True
    external = rule({"field": "operation", "externalTo": "user"})  # needs the event: left to run per record
    assert callable(external.for_operation("x@y.example"))


@pytest.mark.parametrize(("test", "value", "passes", "fails"), [
    ("in", ["FileDownloaded", "FileAccessed"], "filedownloaded", "FileDeleted"),
    ("equals", "True", "TRUE", "False"),
    ("contains", ["phish", "invoice"], "Urgent INVOICE", "hello"),
    ("startsWith", "NT AUTHORITY", "nt authority\\system", "me NT AUTHORITY"),
    ("endsWith", ["#EXT#", ".exe"], "guest#ext#", "guest"),
    ("matches", "deleted|junk", "Deleted Items", "Inbox"),
    ("matches", r"^(remove|disable)-.*dlp", "Remove-DlpPolicy", "Remove-Mailbox"),
    ("gte", 100, "100", "99.5"),
    ("lt", 1, "0.5", "1"),
    ("exists", True, "x", ""),
])
def test_field_tests(test: str, value: Any, passes: str, fails: str) -> None:
    check = rule({"field": "Subject", test: value}).predicate
    assert check(event(Subject=passes)) and not check(event(Subject=fails))
    if test != "exists":
        assert not check(event())  # a missing field passes no test but exists: false


def test_a_field_with_several_values_passes_when_one_does() -> None:
    check = rule({"field": "Parameters.ForwardTo", "endsWith": "@evil.example"}).predicate
    record = {"Parameters": [{"Name": "ForwardTo", "Value": "a@contoso.com"}, {"Name": "ForwardTo", "Value": "b@evil.example"}]}
    assert check(event(**record))
    assert rule({"field": "Members.UPN", "contains": "#EXT#"}).predicate(event(Members=[{"UPN": "a"}, {"UPN": "g#EXT#"}]))


def test_literal_patterns_read_as_the_regular_expression_does_on_any_text() -> None:
    check = rule({"field": "UserAgent", "matches": "powershell|pnpps"}).predicate
    for agent, expected in [("WindowsPowerShell/5.1", True), ("PnPPS:1.12", True), ("Mozilla/5.0", False),
                            ("\u212a powershell", True),  # non-ASCII text: the regex itself decides
                            ("POWER\u017fHELL", True),  # the long s folds to s under re.IGNORECASE
                            ("p\u00f6wershell", False)]:
        assert check(event(UserAgent=agent)) is expected, agent


def test_external_to_compares_domains_and_their_subdomains() -> None:
    check = rule({"field": "Parameters.ForwardTo", "externalTo": "user"}).predicate

    def forwarding(user: str, target: str) -> Event:
        return event(UserId=user, Parameters=[{"Name": "ForwardTo", "Value": target}])
    assert check(forwarding("megan@contoso.com", "smtp:x@evil.example"))
    assert check(forwarding("megan@contoso.com", "a@contoso.com; b@evil.example"))
    assert not check(forwarding("megan@contoso.com", "a@contoso.com"))
    assert not check(forwarding("megan@contoso.com", '"Team" <team@mail.contoso.com>'))  # a subdomain is inside
    assert not check(forwarding("", "x@evil.example"))  # no inside domain: nothing is external


def test_a_window_with_fewer_rows_than_min_rows_never_holds() -> None:
    from collector.alerts.engine import WindowRow, measure  # the engine skips measuring such windows

    for r in load_rules():
        if r.threshold is None or not r.threshold.min_rows:
            continue
        fields = [test.field for test in r.threshold.tests if test.measure != "count"]
        # The most a window of so few rows can reach: every row distinct in every field.
        rows = [WindowRow(f"id{i}", {name: f"v{i}" for name in fields}) for i in range(r.threshold.min_rows - 1)]
        assert not r.threshold.holds(measure(r, rows)), r.name
        rows.append(WindowRow("last", {name: "last" for name in fields}))
        assert len(rows) == r.threshold.min_rows
    spray = next(r for r in load_rules() if r.name == "password-spray")
    assert spray.threshold is not None and spray.threshold.min_rows == 15  # distinct(user) >= 15 bounds count >= 10
    either = next(r for r in load_rules(json.dumps([{"name": "password-spray", "threshold": {"any": [
        "count >= 40", "distinct(user) > 9"]}}])) if r.name == "password-spray")
    assert either.threshold is not None and either.threshold.min_rows == 10
    summed = next(r for r in load_rules() if r.name == "mail-items-excessive")
    assert summed.threshold is not None and summed.threshold.min_rows == 0  # a sum has no such bound
