"""collector/alerts/rules.py validation: every malformed user rule file is refused with each
problem named by rule and field (the exact messages: they are what a user reads at startup)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from collector.alerts.rules import load_rules
from collector.errors import ConfigError

EVENT = {"kind": "event", "severity": "low", "description": "d", "match": {"field": "operation", "in": ["X"]}}
THRESHOLD = {**EVENT, "kind": "threshold", "key": ["user"], "window": "5m", "threshold": ["count >= 5"]}
USER = "the user rules (ALERT_RULES_JSON / ALERT_RULES_BLOB)"
FIELD_OPS = "in, equals, contains, startsWith, endsWith, matches, gte, lte, gt, lt, exists, externalTo"
DURATION = "must be a duration such as 5m, 1h, 7d or PT15M of at most 31 days"
MODIFIED = "a modified property is read as ModifiedProperties.<Name>.OldValue or .NewValue"


def problems(user: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_rules(user if isinstance(user, str) else json.dumps(user))
    return caught.value.problems


def new(**fields: Any) -> list[dict[str, Any]]:
    """A user file adding one event rule `x` with `fields` changed (None removes a field)."""
    spec = {**EVENT, "name": "x", **fields}
    return [{k: v for k, v in spec.items() if v is not None}]


def test_the_built_in_rules_are_valid_and_a_good_user_file_applies() -> None:
    names = [rule.name for rule in load_rules()]
    assert len(names) == len(set(names)) == 30
    rules = {rule.name: rule for rule in load_rules(json.dumps([
        {"name": "mail-flow-rule-changed", "enabled": False},
        {"name": "mass-download", "threshold": ["distinct(object) >= 50"], "window": "5m"},
        {"name": "inbox-forwarding-external", "severity": "critical"},
        *new(name="guest-added"), {**THRESHOLD, "name": "prepared", "enabled": False}]))}
    assert "mail-flow-rule-changed" not in rules and "prepared" not in rules
    assert rules["mass-download"].threshold is not None and rules["mass-download"].threshold.describe() == "distinct(object) >= 50"
    assert rules["mass-download"].window is not None and rules["mass-download"].window.total_seconds() == 300
    assert rules["inbox-forwarding-external"].severity == "critical"
    assert rules["guest-added"].kind == "event"
    assert load_rules(json.dumps({"rules": [{"name": "mass-download", "severity": "high"}]}))  # the object form


@pytest.mark.parametrize(("user", "expected"), [
    # The file itself.
    ("[{", [f"{USER} are not JSON: Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"]),
    ("[1, 2]", [f'{USER} must be a JSON list of rule objects, or {{"rules": [...]}}']),
    ({"rule": []}, [f"{USER}: unknown key 'rule' (the object holds \"rules\": [...])",
                    f'{USER} must be a JSON list of rule objects, or {{"rules": [...]}}']),
    ({"rules": [], "version": 2}, [f"{USER}: unknown key 'version' (the object holds \"rules\": [...])"]),
    # Names.
    ([{"kind": "event"}], ['a user rule has no name: {"kind": "event"}']),
    (new(name="Bad Name"), ["rule 'Bad Name': name: must be 1-63 characters of a-z, 0-9 and '-'"]),
    ([{"name": "mass-download", "enabled": False}, {"name": "mass-download", "window": "5m"}],
     ["rule 'mass-download': name: given twice in the user rules (one object per rule)"]),
    ([{"name": "mass-downlaod", "enabled": False}],
     ["rule 'mass-downlaod': enabled: there is no built-in rule of this name to switch off (docs/alerts.md lists them)"]),
    # The rule's own fields.
    (new(treshold=5), ["rule 'x': treshold: unknown field; rule fields are name, number, kind, severity, description, "
                       "source, match, key, window, threshold, check, enabled"]),
    (new(kind="sequence"), ["rule 'x': kind: must be one of event, threshold, first-seen, health, got 'sequence'"]),
    (new(severity="urgent"), ["rule 'x': severity: must be one of informational, low, medium, high, critical, got 'urgent'"]),
    (new(description=" "), ["rule 'x': description: must be a non-empty text"]),
    (new(description=None), ["rule 'x': description: must be a non-empty text"]),
    (new(source=5), ["rule 'x': source: must be a text (which published rule this one follows)"]),
    ([{"name": "mass-download", "enabled": "no"}], ["rule 'mass-download': enabled: must be true or false"]),
    (new(number="7"), ["rule 'x': number: must be a whole number"]),
    (new(severity="hi", description=""), ["rule 'x': severity: must be one of informational, low, medium, high, "
                                          "critical, got 'hi'", "rule 'x': description: must be a non-empty text"]),
    # A switched-off rule is checked too (it must work once switched on).
    (new(enabled=False, severity="huge"),
     ["rule 'x': severity: must be one of informational, low, medium, high, critical, got 'huge'"]),
    # Windows, keys and thresholds.
    ([{"name": "mass-download", "window": "5 minutes"}], [f"rule 'mass-download': window: {DURATION}, got '5 minutes'"]),
    ([{"name": "mass-download", "window": "P40D"}], [f"rule 'mass-download': window: {DURATION}, got 'P40D'"]),
    ([{"name": "mass-download", "window": "0m"}], [f"rule 'mass-download': window: {DURATION}, got '0m'"]),
    ([{"name": "mass-download", "key": "user"}], ["rule 'mass-download': key: must be a list of field names"]),
    ([{"name": "mass-download", "key": []}],
     ["rule 'mass-download': key: a threshold rule needs the fields that group its records"]),
    ([{"name": "mass-download", "key": ["user", "Parameters"]}],
     ["rule 'mass-download': key: 'Parameters': Parameters is read by name, as Parameters.<Name>"]),
    ([{"name": "mass-download", "threshold": ["distinct(object) >> 5"]}],
     ["rule 'mass-download': threshold: 'distinct(object) >> 5' is not "
      "\"count|distinct(field)|sum(field) >=|>|<=|<|== number\""]),
    ([{"name": "mass-download", "threshold": "count >= 5"}],
     ["rule 'mass-download': threshold: must be a list of tests such as \"count >= 10\" (all must hold), or {\"any\": [...]}"]),
    ([{"name": "mass-download", "threshold": {"any": []}}],
     ["rule 'mass-download': threshold: must be a list of tests such as \"count >= 10\" (all must hold), or {\"any\": [...]}"]),
    ([{"name": "mass-download", "threshold": ["count >= 5000"]}],
     ["rule 'mass-download': threshold: 'count >= 5000': at most 1000 records per window are counted"]),
    ([{"name": "mass-download", "threshold": ["distinct(ModifiedProperties.Role) >= 2"]}],
     [f"rule 'mass-download': threshold: 'distinct(ModifiedProperties.Role) >= 2': 'ModifiedProperties.Role': {MODIFIED}"]),
    ([{**THRESHOLD, "name": "x", "key": None, "window": None}],
     [f"rule 'x': window: {DURATION}, got None", "rule 'x': key: must be a list of field names"]),
    ([{k: v for k, v in THRESHOLD.items() if k not in ("key", "window")} | {"name": "x"}],
     ["rule 'x': key: a threshold rule needs the fields that group its records",
      "rule 'x': window: a threshold rule needs a window"]),
    # Fields a kind does not have (they were accepted and never read).
    (new(threshold=["count >= 2"]), ["rule 'x': threshold: only threshold rules have one (this is an event rule)"]),
    (new(key=["user"], window="5m"),
     ["rule 'x': key: only threshold and first-seen rules have one (an event rule fires on each match)",
      "rule 'x': window: only threshold and first-seen rules have one (an event rule fires on each match)"]),
    (new(check="poison"), ["rule 'x': check: only health rules have one (this is an event rule)"]),
    (new(match=None), ["rule 'x': match: is required"]),
    ([{"name": "feed-silent", "check": "feed-quiet"}],
     ["rule 'feed-silent': check: must be one of feed-silent, feed-empty, queue-stuck, poison, subscription-disabled, "
      "got 'feed-quiet'"]),
    ([{"name": "q", "kind": "health", "severity": "low", "description": "d", "check": "queue-stuck"}],
     ["rule 'q': window: a queue-stuck check needs a window (how long a silence it tolerates)"]),
    ([{"name": "poison-messages", "window": "1h"}],
     ["rule 'poison-messages': window: a poison check has none (it fires on the state itself)"]),
    ([{"name": "poison-messages", "match": {"field": "user", "exists": True}, "threshold": ["count >= 1"]}],
     ["rule 'poison-messages': match: health rules have none (they watch AuditKeep itself, not records)",
      "rule 'poison-messages': threshold: health rules have none (they watch AuditKeep itself, not records)"]),
    # Conditions.
    (new(match=["operation"]),
     ["rule 'x': match: a condition must be an object: {all|any: [...]}, {not: {...}} or {field, <test>}"]),
    (new(match={"all": []}), ["rule 'x': match: 'all' must be the only key and hold a non-empty list"]),
    (new(match={"any": [{"field": "user", "exists": True}], "not": {}}),
     ["rule 'x': match: 'any' must be the only key and hold a non-empty list"]),
    (new(match={"not": {"field": "user", "exists": True}, "field": "x"}), ["rule 'x': match: 'not' must be the only key"]),
    (new(match={"not": []}),
     ["rule 'x': match.not: a condition must be an object: {all|any: [...]}, {not: {...}} or {field, <test>}"]),
    (new(match={"in": ["a"]}), ["rule 'x': match: a field test needs 'field' (a field name)"]),
    (new(match={"field": "user", "in": ["a"], "equals": "b"}),
     [f"rule 'x': match (user): needs exactly one test of {FIELD_OPS}, got ['in', 'equals']"]),
    (new(match={"field": "user", "like": "a%"}), [f"rule 'x': match (user): needs exactly one test of {FIELD_OPS}, got ['like']"]),
    (new(match={"field": "user"}), [f"rule 'x': match (user): needs exactly one test of {FIELD_OPS}, got []"]),
    (new(match={"field": "user", "exists": "yes"}), ["rule 'x': match (user): exists must be true or false, got 'yes'"]),
    (new(match={"field": "OperationCount", "gte": "5"}), ["rule 'x': match (OperationCount): gte must be a number, got '5'"]),
    (new(match={"field": "OperationCount", "lt": True}), ["rule 'x': match (OperationCount): lt must be a number, got True"]),
    (new(match={"field": "Parameters.ForwardTo", "externalTo": ""}),
     ["rule 'x': match (Parameters.ForwardTo): externalTo must name the field holding the inside address (e.g. \"user\")"]),
    (new(match={"field": "Parameters.ForwardTo", "externalTo": "a..b"}),
     ["rule 'x': match (Parameters.ForwardTo): 'a..b' is not a field name (an empty part between dots)"]),
    (new(match={"field": "user", "matches": 5}), ["rule 'x': match (user): matches must be a regular expression"]),
    (new(match={"field": "user", "matches": "(unclosed"}),
     ["rule 'x': match (user): matches is not a regular expression: missing ), unterminated subpattern at position 0"]),
    (new(match={"field": "user", "in": []}), ["rule 'x': match (user): in must be a text or a non-empty list of texts, got []"]),
    (new(match={"field": "user", "equals": [True]}),
     ["rule 'x': match (user): equals must be a text or a non-empty list of texts, got [true]"]),
    (new(match={"field": "user", "contains": {"a": 1}}),
     ["rule 'x': match (user): contains must be a text or a non-empty list of texts, got {\"a\": 1}"]),
    (new(match={"all": [{"field": "operation", "in": ["X"]}, {"field": "ModifiedProperties.Role_DisplayName", "contains": "A"}]}),
     [f"rule 'x': match.all[1] (ModifiedProperties.Role_DisplayName): 'ModifiedProperties.Role_DisplayName': {MODIFIED}"]),
    (new(match={"field": "modifiedproperties.Role.OldValues", "exists": True}),
     [f"rule 'x': match (modifiedproperties.Role.OldValues): 'modifiedproperties.Role.OldValues': {MODIFIED}"]),
    (new(match={"field": "CopilotEventData..AppHost", "exists": True}),
     ["rule 'x': match (CopilotEventData..AppHost): 'CopilotEventData..AppHost' is not a field name "
      "(an empty part between dots)"]),
    (new(match={"field": "ExtendedProperties", "exists": True}),
     ["rule 'x': match (ExtendedProperties): 'ExtendedProperties': ExtendedProperties is read by name, as "
      "ExtendedProperties.<Name>"]),
    (new(match={"any": [{"field": "user", "exists": 1}, {"not": {"field": "user", "gt": "x"}}]}),
     ["rule 'x': match.any[0] (user): exists must be true or false, got 1",
      "rule 'x': match.any[1].not (user): gt must be a number, got 'x'"]),
])
def test_each_malformed_rule_is_refused_naming_the_rule_and_field(user: Any, expected: list[str]) -> None:
    assert problems(user) == expected


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    found = problems([*new(name="a", severity="nope"), *new(name="b", match={"field": "user", "gte": "x"}),
                      {"name": "mass-download", "window": "forever"}])
    assert found == ["rule 'mass-download': window: " + DURATION + ", got 'forever'",
                     "rule 'a': severity: must be one of informational, low, medium, high, critical, got 'nope'",
                     "rule 'b': match (user): gte must be a number, got 'x'"]
    with pytest.raises(ConfigError, match="^3 configuration errors: rule 'mass-download': window"):
        load_rules(json.dumps([*new(name="a", severity="nope"), *new(name="b", match={"field": "user", "gte": "x"}),
                               {"name": "mass-download", "window": "forever"}]))


def test_a_built_in_rule_file_with_a_problem_names_the_file(tmp_path: Any) -> None:
    builtin = tmp_path / "rules.json"
    builtin.write_text(json.dumps({"rules": [{**EVENT, "name": "x", "severity": "loud"}]}))
    with pytest.raises(ConfigError) as caught:
        load_rules(builtin=builtin)
    assert caught.value.problems == ["rule 'x': severity: must be one of informational, low, medium, high, critical, "
                                     "got 'loud'"]
    builtin.write_text("{")
    with pytest.raises(ConfigError) as caught:
        load_rules(builtin=builtin)
    assert caught.value.problems[0].startswith("built-in rules rules.json are not JSON: ")
