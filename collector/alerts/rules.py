"""Detection rules as data: loading, user overrides, validation, and compiled matchers (pure logic).

The built-in rules are `rules.json` beside this module (docs/alerts.md lists them). A user file
(ALERT_RULES_JSON, or the blob ALERT_RULES_BLOB) has the same shape and is applied on top of it,
by rule name: `{"name": "x", "enabled": false}` switches a rule off, any other field given replaces
the built-in one (`threshold`, `window`, `severity`, `match`...), and a name the built-ins do not
have adds a rule. Every problem is reported at once, each naming the rule and the field.

A rule:

    name         [a-z0-9-], unique
    kind         event | threshold | first-seen | health
    severity     informational | low | medium | high | critical
    description, source   text (source: which published rule it follows)
    match        a condition (below); not for health rules
    key          threshold/first-seen: the fields whose values group records (["user", "clientIp"])
    window       threshold: the bucket length; first-seen: how long a key stays known; health: the
                 silence a check tolerates. "5m", "3h", "1d", "PT15M", "P7D"
    threshold    threshold rules: aggregate tests over a window's records, all of which must hold
                 (a list), or {"any": [...]}: "count >= 10", "distinct(user) >= 15", "sum(OperationCount) >= 100"
    check        health rules: feed-silent | feed-empty | queue-stuck | poison | subscription-disabled

A condition is {"all": [...]}, {"any": [...]}, {"not": {...}} or a field test {"field": F, OP: V}
with OP one of in, equals, exists, contains, startsWith, endsWith, matches (a regular expression),
gte, lte, gt, lt (numbers), externalTo (an address whose domain is not that of field V). Text tests
ignore case; a field with several values (a list in the record, a repeated name) passes when one
value does. F is a normalized field (`user`, `operation`, `result`, `clientIp`, `userAgent`,
`workload`, `recordType`, `object`, `contentType`) or a keyed name / dotted path of the raw record
(`Parameters.ForwardTo`, `ModifiedProperties.Role_DisplayName.NewValue`, `CopilotEventData.AppHost`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..keyed import KeyedRecord
from ..models import FIELDS, AuditEntry

BUILTIN_RULES = Path(__file__).with_name("rules.json")
KINDS = ("event", "threshold", "first-seen", "health")
SEVERITIES = ("informational", "low", "medium", "high", "critical")
HEALTH_CHECKS = ("feed-silent", "feed-empty", "queue-stuck", "poison", "subscription-disabled")
TEXT_OPS = ("in", "equals", "contains", "startsWith", "endsWith", "matches")
NUMBER_OPS = {"gte": float.__ge__, "lte": float.__le__, "gt": float.__gt__, "lt": float.__lt__}
FIELD_OPS = (*TEXT_OPS, *NUMBER_OPS, "exists", "externalTo")
RULE_FIELDS = ("name", "number", "kind", "severity", "description", "source", "match", "key", "window", "threshold",
               "check", "enabled")
# A window is kept as one row per matching record; the longest window a rule may ask for, and the
# most records an aggregate reads (a rule over more would cost more than it finds).
MAX_WINDOW = timedelta(days=31)
MAX_THRESHOLD = 1000
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DURATION = re.compile(r"^(?:(\d+)([smhd])|P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?)$", re.IGNORECASE)
_AGGREGATE = re.compile(r"^\s*(count|distinct\(\s*([\w.]+)\s*\)|sum\(\s*([\w.]+)\s*\))\s*(>=|<=|>|<|==)\s*(\d+)\s*$")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__, "==": float.__eq__}

Record = Mapping[str, Any]


class Event:
    """One record as the rules read it: the normalized entry, and the raw record by field name."""

    __slots__ = ("entry", "keyed", "record")

    def __init__(self, entry: AuditEntry, record: Record) -> None:
        self.entry = entry
        self.record = record
        self.keyed = KeyedRecord(record)

    def values(self, name: str) -> list[str]:
        if name in _ENTRY_FIELDS:
            value = getattr(self.entry, name)
            return [str(value)] if value not in (None, "") else []
        return self.keyed.values(name)

    def first(self, name: str) -> str:
        found = self.values(name)
        return found[0] if found else ""


_ENTRY_FIELDS = frozenset(FIELDS)
Predicate = Callable[[Event], bool]


@dataclass(frozen=True)
class Aggregate:
    """One threshold test: `measure(field) op value` over a window's records."""

    measure: str  # count | distinct | sum
    field: str
    op: str
    value: float
    text: str

    def holds(self, measures: Mapping[str, float]) -> bool:
        return _COMPARE[self.op](float(measures.get(self.name, 0.0)), self.value)

    @property
    def name(self) -> str:
        return "count" if self.measure == "count" else f"{self.measure}({self.field})"


@dataclass(frozen=True)
class Threshold:
    tests: tuple[Aggregate, ...]
    any: bool = False  # any test suffices (else all must hold)

    def holds(self, measures: Mapping[str, float]) -> bool:
        results = (test.holds(measures) for test in self.tests)
        return any(results) if self.any else all(results)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields a window row must carry for these tests."""
        return tuple(dict.fromkeys(t.field for t in self.tests if t.measure != "count"))

    def describe(self) -> str:
        return (" or " if self.any else " and ").join(t.text for t in self.tests)


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    severity: str
    description: str
    source: str = ""
    number: int | None = None
    key: tuple[str, ...] = ()
    window: timedelta | None = None
    threshold: Threshold | None = None
    check: str = ""
    match_spec: Any = None
    predicate: Predicate = field(default=lambda _: False, compare=False, repr=False)
    operations: frozenset[str] | None = None  # the operations it can match (lower case); None: any
    # For a rule without such a list: whether an operation (lower case) can match at all (its
    # `operation contains/matches/...` tests), None when any can; the engine caches it per operation.
    operation_gate: Callable[[str], bool] | None = field(default=None, compare=False, repr=False)

    def matches(self, event: Event) -> bool:
        return self.predicate(event)

    def key_of(self, event: Event) -> tuple[str, ...]:
        return tuple(event.first(name).lower() for name in self.key)


# ------------------------------------------------------------------ loading


def load_rules(user: str | None = None, *, builtin: Path = BUILTIN_RULES) -> list[Rule]:
    """The built-in rules with the user's file (JSON text) applied; ConfigError naming each problem."""
    problems: list[str] = []
    specs = _specs(builtin.read_text(encoding="utf-8"), f"built-in rules {builtin.name}", problems)
    if user:
        specs = merge(specs, _specs(user, "the user rules (ALERT_RULES_JSON / ALERT_RULES_BLOB)", problems), problems)
    rules = []
    for spec in specs:
        if spec.get("enabled", True) is False:
            continue
        rule = compile_rule(spec, problems)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return rules


def _specs(text: str, where: str, problems: list[str]) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        problems.append(f"{where} are not JSON: {exc}")
        return []
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        problems.append(f'{where} must be a JSON list of rule objects, or {{"rules": [...]}}')
        return []
    return data


def merge(builtin: Sequence[dict[str, Any]], user: Sequence[dict[str, Any]], problems: list[str]) -> list[dict[str, Any]]:
    """The built-in specs with each user spec applied by name (fields replaced), new names added."""
    by_name: dict[str, dict[str, Any]] = {}
    for spec in builtin:
        by_name[str(spec.get("name"))] = dict(spec)
    for spec in user:
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"a user rule has no name: {json.dumps(spec)[:120]}")
            continue
        if name in by_name:
            by_name[name] = {**by_name[name], **spec}
        else:
            by_name[name] = dict(spec)
    return list(by_name.values())


def parse_duration(value: Any) -> timedelta | None:
    """ "5m", "1h", "7d", "PT15M", "P7D" → timedelta; None when unreadable."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value.strip())
    if not match or not any(match.groups()):
        return None
    number, unit, days, hours, minutes, seconds = match.groups()
    if number:
        return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit.lower()]: int(number)})
    return timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0), seconds=int(seconds or 0))


def compile_rule(spec: Mapping[str, Any], problems: list[str]) -> Rule | None:
    """One spec → a Rule, or None with its problems appended (each names the rule and field)."""
    name = spec.get("name")
    label = f"rule {name!r}"
    before = len(problems)

    def problem(field_name: str, message: str) -> None:
        problems.append(f"{label}: {field_name}: {message}")

    if not isinstance(name, str) or not _NAME.match(name):
        problem("name", "must be 1-63 characters of a-z, 0-9 and '-'")
    for unknown in sorted(set(spec) - set(RULE_FIELDS)):
        problem(unknown, f"unknown field; rule fields are {', '.join(RULE_FIELDS)}")
    kind = spec.get("kind")
    if kind not in KINDS:
        problem("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    severity = spec.get("severity")
    if severity not in SEVERITIES:
        problem("severity", f"must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        problem("description", "must be a non-empty text")
    if "enabled" in spec and not isinstance(spec["enabled"], bool):
        problem("enabled", "must be true or false")
    number = spec.get("number")
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
        problem("number", "must be a whole number")
    window = parse_duration(spec.get("window")) if "window" in spec else None
    if "window" in spec and (window is None or not timedelta(0) < window <= MAX_WINDOW):
        problem("window", f"must be a duration such as 5m, 1h, 7d or PT15M of at most {MAX_WINDOW.days} days, "
                          f"got {spec.get('window')!r}")
    key = spec.get("key", [])
    if not isinstance(key, list) or not all(isinstance(k, str) and k for k in key):
        problem("key", "must be a list of field names")
        key = []
    predicate: Predicate = _never
    operations: frozenset[str] | None = None
    threshold: Threshold | None = None
    check = ""
    if kind == "health":
        check = str(spec.get("check", ""))
        if check not in HEALTH_CHECKS:
            problem("check", f"must be one of {', '.join(HEALTH_CHECKS)}, got {spec.get('check')!r}")
        if check in ("feed-silent", "feed-empty", "queue-stuck") and window is None:
            problem("window", f"a {check} check needs a window (how long a silence it tolerates)")
    elif kind in KINDS:
        if "match" not in spec:
            problem("match", "is required")
        else:
            predicate = _condition(spec["match"], "match", problem)
            operations = _operations(spec["match"])
        if kind in ("threshold", "first-seen") and not key:
            problem("key", f"a {kind} rule needs the fields that group its records")
        if kind in ("threshold", "first-seen") and window is None:
            problem("window", f"a {kind} rule needs a window")
        if kind == "threshold":
            threshold = _threshold(spec.get("threshold"), problem)
        elif "threshold" in spec:
            problem("threshold", f"only threshold rules have one (this is a {kind} rule)")
    if len(problems) > before:
        return None
    return Rule(name=str(name), kind=str(kind), severity=str(severity), description=str(description).strip(),
                source=str(spec.get("source", "")), number=number, key=tuple(key), window=window, threshold=threshold,
                check=check, match_spec=spec.get("match"), predicate=predicate, operations=operations,
                operation_gate=_operation_gate(spec.get("match")) if operations is None else None)


def _never(_: Event) -> bool:
    return False


def _threshold(spec: Any, problem: Callable[[str, str], None]) -> Threshold | None:
    any_of = isinstance(spec, dict) and set(spec) == {"any"}
    tests = spec["any"] if any_of and isinstance(spec, dict) else spec
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        problem("threshold", 'must be a list of tests such as "count >= 10" (all must hold), or {"any": [...]}')
        return None
    parsed = []
    for test in tests:
        match = _AGGREGATE.match(test)
        if not match:
            problem("threshold", f'{test!r} is not "count|distinct(field)|sum(field) >=|>|<=|<|== number"')
            continue
        head, distinct, summed, op, value = match.groups()
        measure = "count" if head == "count" else ("distinct" if distinct else "sum")
        if measure != "sum" and op in (">=", ">", "==") and int(value) > MAX_THRESHOLD:
            problem("threshold", f"{test!r}: at most {MAX_THRESHOLD} records per window are counted")
        parsed.append(Aggregate(measure, distinct or summed or "", op, float(value), test.strip()))
    return Threshold(tuple(parsed), any_of) if len(parsed) == len(tests) else None


def _condition(spec: Any, where: str, problem: Callable[[str, str], None]) -> Predicate:
    if not isinstance(spec, dict) or not spec:
        problem(where, "a condition must be an object: {all|any: [...]}, {not: {...}} or {field, <test>}")
        return _never
    if "all" in spec or "any" in spec:
        word = "all" if "all" in spec else "any"
        items = spec[word]
        if len(spec) != 1 or not isinstance(items, list) or not items:
            problem(where, f"{word!r} must be the only key and hold a non-empty list")
            return _never
        parts = tuple(_condition(item, f"{where}.{word}[{i}]", problem) for i, item in enumerate(items))
        if word == "all":
            return lambda event: all(part(event) for part in parts)
        return lambda event: any(part(event) for part in parts)
    if "not" in spec:
        if len(spec) != 1:
            problem(where, "'not' must be the only key")
            return _never
        inner = _condition(spec["not"], f"{where}.not", problem)
        return lambda event: not inner(event)
    name = spec.get("field")
    ops = [op for op in spec if op != "field"]
    if not isinstance(name, str) or not name:
        problem(where, "a field test needs 'field' (a field name)")
        return _never
    if len(ops) != 1 or ops[0] not in FIELD_OPS:
        problem(f"{where} ({name})", f"needs exactly one test of {', '.join(FIELD_OPS)}, got {ops}")
        return _never
    return _field_test(name, ops[0], spec[ops[0]], f"{where} ({name})", problem)


def _texts(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value.lower(),)
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return tuple(str(v).lower() for v in value)
    return None


def _field_test(name: str, op: str, value: Any, where: str, problem: Callable[[str, str], None]) -> Predicate:
    if op == "exists":
        if not isinstance(value, bool):
            problem(where, "exists must be true or false")
            return _never
        return lambda event: bool(event.values(name)) is value
    if op in NUMBER_OPS:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problem(where, f"{op} must be a number")
            return _never
        compare, bound = NUMBER_OPS[op], float(value)
        return lambda event: any(compare(number, bound) for number in numbers(event.values(name)))
    if op == "externalTo":
        if not isinstance(value, str) or not value:
            problem(where, "externalTo must name the field holding the inside address (e.g. \"user\")")
            return _never
        return lambda event: _external(event.values(name), event.first(value))
    if op == "matches":
        if not isinstance(value, str):
            problem(where, "matches must be a regular expression")
            return _never
        try:
            pattern = re.compile(value, re.IGNORECASE)
        except re.error as exc:
            problem(where, f"matches is not a regular expression: {exc}")
            return _never
        return lambda event: any(pattern.search(v) for v in event.values(name))
    wanted = _texts(value)
    if wanted is None:
        problem(where, f"{op} must be a text or a non-empty list of texts")
        return _never
    if op in ("in", "equals"):
        allowed = frozenset(wanted)
        return lambda event: any(v.lower() in allowed for v in event.values(name))
    if op == "contains":
        return lambda event: any(w in v.lower() for v in event.values(name) for w in wanted)
    if op == "startsWith":
        return lambda event: any(v.lower().startswith(wanted) for v in event.values(name))
    return lambda event: any(v.lower().endswith(wanted) for v in event.values(name))


def numbers(values: list[str]) -> list[float]:
    """The values that read as numbers (a field's texts; the others are skipped)."""
    out = []
    for value in values:
        try:
            out.append(float(value))
        except ValueError:
            continue
    return out


def domain_of(address: str) -> str:
    """The domain of `smtp:a@b.com`, `a@b.com` or `"Name" <a@b.com>`; "" when there is none."""
    text = address.strip().strip("<>\"'").lower()
    if text.startswith("smtp:"):
        text = text[5:]
    return text.rsplit("@", 1)[1].strip(" >\"'") if "@" in text else ""


def _external(values: list[str], inside: str) -> bool:
    """One of the addresses (a value may list several, split on ; or ,) lies outside `inside`'s
    domain or its subdomains. Without a known inside domain nothing can be called external."""
    home = domain_of(inside)
    if not home:
        return False
    for value in values:
        for address in re.split(r"[;,]", value):
            domain = domain_of(address)
            if domain and domain != home and not domain.endswith("." + home) and not home.endswith("." + domain):
                return True
    return False


def _operation_gate(spec: Any) -> Callable[[str], bool] | None:
    """A test of the lower-cased operation alone that is False only when `spec` cannot match a
    record with that operation; None when the operation alone says nothing (pure, conservative)."""
    if not isinstance(spec, dict):
        return None
    if isinstance(spec.get("all"), list) and spec["all"]:
        known = [g for g in (_operation_gate(part) for part in spec["all"]) if g is not None]
        return (lambda op: all(g(op) for g in known)) if known else None
    if isinstance(spec.get("any"), list) and spec["any"]:
        gates = [_operation_gate(part) for part in spec["any"]]
        if any(g is None for g in gates):
            return None
        return lambda op: any(g(op) for g in gates if g is not None)
    if str(spec.get("field", "")).lower() != "operation":
        return None
    tests = [op for op in spec if op != "field"]
    if len(tests) != 1:
        return None
    test, value = tests[0], spec[tests[0]]
    if test == "matches" and isinstance(value, str):
        try:
            pattern = re.compile(value, re.IGNORECASE)
        except re.error:
            return None
        return lambda op: pattern.search(op) is not None
    wanted = _texts(value)
    if wanted is None:
        return None
    if test in ("in", "equals"):
        return lambda op: op in wanted
    if test == "contains":
        return lambda op: any(w in op for w in wanted)
    if test == "startsWith":
        return lambda op: op.startswith(wanted)
    if test == "endsWith":
        return lambda op: op.endswith(wanted)
    return None


def _operations(spec: Any) -> frozenset[str] | None:
    """The operations a match can accept, when it requires `operation in [...]` (an index for the
    engine: most records are then never tested against the rule); None when it can match any."""
    if not isinstance(spec, dict):
        return None
    if spec.get("field") == "operation" and isinstance(spec.get("in") or spec.get("equals"), (list, str)):
        wanted = _texts(spec.get("in") or spec.get("equals"))
        return frozenset(wanted) if wanted else None
    if isinstance(spec.get("all"), list):
        found = [ops for ops in (_operations(part) for part in spec["all"]) if ops is not None]
        return frozenset.intersection(*found) if found else None
    if isinstance(spec.get("any"), list):
        parts = [_operations(part) for part in spec["any"]]
        if parts and all(ops is not None for ops in parts):
            return frozenset().union(*(ops for ops in parts if ops is not None))
    return None
