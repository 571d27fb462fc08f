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
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..keyed import NAMED_ARRAYS, KeyedRecord
from ..keyed import reader as keyed_reader
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
_LITERALS = re.compile(r"[A-Za-z0-9 ]+(?:\|[A-Za-z0-9 ]+)*")  # a `matches` pattern that is words or'ed
_AGGREGATE = re.compile(r"^\s*(count|distinct\(\s*([\w.]+)\s*\)|sum\(\s*([\w.]+)\s*\))\s*(>=|<=|>|<|==)\s*(\d+)\s*$")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__, "==": float.__eq__}

Record = Mapping[str, Any]


class Event:
    """One record as the rules read it: the normalized entry, and the raw record by field name (its
    keyed view is made only when a rule reads a field that is not the entry's)."""

    __slots__ = ("_keyed", "entry", "record")

    def __init__(self, entry: AuditEntry, record: Record) -> None:
        self.entry = entry
        self.record = record
        self._keyed: KeyedRecord | None = None

    @property
    def keyed(self) -> KeyedRecord:
        if self._keyed is None:
            self._keyed = KeyedRecord(self.record)
        return self._keyed

    def values(self, name: str) -> list[str]:
        return field_reader(name)(self)

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

    @cached_property
    def name(self) -> str:  # read per window the engine meets: made once
        return "count" if self.measure == "count" else f"{self.measure}({self.field})"


@dataclass(frozen=True)
class Threshold:
    tests: tuple[Aggregate, ...]
    any: bool = False  # any test suffices (else all must hold)

    def holds(self, measures: Mapping[str, float]) -> bool:
        results = (test.holds(measures) for test in self.tests)
        return any(results) if self.any else all(results)

    @cached_property
    def min_rows(self) -> int:
        """Fewer window rows than this cannot hold (count and distinct never exceed the rows), so
        the engine skips measuring such windows; 0 when no such bound is known (sum, <=, <)."""
        bounds = []
        for test in self.tests:
            if test.measure == "sum" or test.op in ("<=", "<"):
                bounds.append(0)
            else:
                bounds.append(int(test.value) + (1 if test.op == ">" else 0))
        return min(bounds) if self.any else max(bounds)

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
    condition: Condition = field(default=False, compare=False, repr=False)

    @property
    def predicate(self) -> Predicate:
        """The whole condition as one test of an event (the engine uses `for_operation`)."""
        return predicate_of(self.condition)

    def matches(self, event: Event) -> bool:
        return self.predicate(event)

    def for_operation(self, operation: str) -> Predicate | bool:
        """The condition for records of one operation (the normalized `operation`, as given): its
        operation tests decided, what is left compiled. False: no record of it can match; True:
        every record of it matches. The engine asks once per distinct operation."""
        found = specialize(self.condition, operation)
        return found if isinstance(found, bool) else predicate_of(found)

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
        rule = compile_rule(spec, problems)  # a switched-off rule is checked too: it must work when switched on
        if rule is not None and spec.get("enabled", True) is not False:
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
        for unknown in sorted(set(data) - {"rules"}):
            problems.append(f'{where}: unknown key {unknown!r} (the object holds "rules": [...])')
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
    given: set[str] = set()
    for spec in user:
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"a user rule has no name: {json.dumps(spec)[:120]}")
            continue
        if name in given:  # the second would silently replace fields of the first
            problems.append(f"rule {name!r}: name: given twice in the user rules (one object per rule)")
            continue
        given.add(name)
        if name in by_name:
            by_name[name] = {**by_name[name], **spec}
        elif spec.get("enabled") is False and "kind" not in spec:  # a switch-off of a rule that is not there
            problems.append(f"rule {name!r}: enabled: there is no built-in rule of this name to switch off "
                            f"(docs/alerts.md lists them)")
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
    if "source" in spec and not isinstance(spec["source"], str):
        problem("source", "must be a text (which published rule this one follows)")
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
    key_given = isinstance(key, list) and all(isinstance(k, str) and k for k in key)
    if not key_given:
        problem("key", "must be a list of field names")
        key = []
    for name_in_key in key:
        wrong = field_name_problem(name_in_key)
        if wrong:
            problem("key", wrong)
    condition: Condition = False
    threshold: Threshold | None = None
    check = ""
    if kind == "health":
        check = str(spec.get("check", ""))
        if check not in HEALTH_CHECKS:
            problem("check", f"must be one of {', '.join(HEALTH_CHECKS)}, got {spec.get('check')!r}")
        if check in ("feed-silent", "feed-empty", "queue-stuck") and "window" not in spec:
            problem("window", f"a {check} check needs a window (how long a silence it tolerates)")
        if check in ("poison", "subscription-disabled") and "window" in spec:
            problem("window", f"a {check} check has none (it fires on the state itself)")
        for ignored in ("match", "key", "threshold"):  # they would be accepted and never read
            if ignored in spec:
                problem(ignored, "health rules have none (they watch AuditKeep itself, not records)")
    elif kind in KINDS:
        if "check" in spec:
            problem("check", f"only health rules have one (this is {_a(kind)} rule)")
        if kind == "event":
            for ignored in ("key", "window"):
                if ignored in spec:
                    problem(ignored, "only threshold and first-seen rules have one (an event rule fires on each match)")
        if "match" not in spec:
            problem("match", "is required")
        else:
            condition = _condition(spec["match"], "match", problem)
        if kind in ("threshold", "first-seen") and not key and key_given:  # (a bad one is reported above)
            problem("key", f"a {kind} rule needs the fields that group its records")
        if kind in ("threshold", "first-seen") and "window" not in spec:
            problem("window", f"a {kind} rule needs a window")
        if kind == "threshold":
            threshold = _threshold(spec.get("threshold"), problem)
        elif "threshold" in spec:
            problem("threshold", f"only threshold rules have one (this is {_a(kind)} rule)")
    if len(problems) > before:
        return None
    return Rule(name=str(name), kind=str(kind), severity=str(severity), description=str(description).strip(),
                source=str(spec.get("source", "")), number=number, key=tuple(key), window=window, threshold=threshold,
                check=check, match_spec=spec.get("match"), condition=condition)


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


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
        wrong = field_name_problem(distinct or summed) if measure != "count" else None
        if wrong:
            problem("threshold", f"{test!r}: {wrong}")
            continue
        if measure != "sum" and op in (">=", ">", "==") and int(value) > MAX_THRESHOLD:
            problem("threshold", f"{test!r}: at most {MAX_THRESHOLD} records per window are counted")
        parsed.append(Aggregate(measure, distinct or summed or "", op, float(value), test.strip()))
    return Threshold(tuple(parsed), any_of) if len(parsed) == len(tests) else None


# A match compiles to a small tree (all / any / not over field tests) rather than straight to one
# closure, so that the engine can decide a rule's operation tests once per distinct operation and
# run only what is left on each record (`specialize`, `Rule.for_operation`): a record meets only
# the rules its operation can match, and of those only the tests its operation does not decide.


@dataclass(frozen=True)
class FieldTest:
    field: str
    test: Callable[[list[str]], bool] | None  # the test of the field's values; None: it needs the event (externalTo)
    predicate: Predicate  # the test of an event


@dataclass(frozen=True)
class Node:
    word: str  # all | any | not
    parts: tuple[Condition, ...]


Condition = Node | FieldTest | bool


def specialize(condition: Condition, operation: str) -> Condition:
    """`condition` for records whose normalized operation is `operation`: its tests of the
    operation replaced by their outcome and the tree simplified (True/False when decided)."""
    if isinstance(condition, bool):
        return condition
    if isinstance(condition, FieldTest):
        if condition.field == "operation" and condition.test is not None:
            return condition.test([operation] if operation else [])  # what Event.values("operation") gives
        return condition
    parts = [specialize(part, operation) for part in condition.parts]
    if condition.word == "not":
        inner = parts[0]
        return (not inner) if isinstance(inner, bool) else Node("not", (inner,))
    decisive = condition.word == "any"  # one True decides an any, one False an all
    if any(part is decisive for part in parts):
        return decisive
    rest = tuple(part for part in parts if not isinstance(part, bool))
    if not rest:
        return not decisive
    return rest[0] if len(rest) == 1 else Node(condition.word, rest)


def predicate_of(condition: Condition) -> Predicate:
    """One closure testing an event (loops, not generators: this runs per record)."""
    if isinstance(condition, bool):
        return _always if condition else _never
    if isinstance(condition, FieldTest):
        return condition.predicate
    parts = tuple(predicate_of(part) for part in condition.parts)
    if condition.word == "not":
        inner = parts[0]
        return lambda event: not inner(event)
    if len(parts) == 1:
        return parts[0]
    if condition.word == "all":
        if len(parts) == 2:
            first, second = parts
            return lambda event: first(event) and second(event)

        def all_of(event: Event) -> bool:
            for part in parts:  # noqa: SIM110 - per record: a loop is cheaper than any(<generator>)
                if not part(event):
                    return False
            return True
        return all_of

    def any_of(event: Event) -> bool:
        for part in parts:  # noqa: SIM110 - per record: a loop is cheaper than any(<generator>)
            if part(event):
                return True
        return False
    return any_of


def _always(_: Event) -> bool:
    return True


def _condition(spec: Any, where: str, problem: Callable[[str, str], None]) -> Condition:
    if not isinstance(spec, dict) or not spec:
        problem(where, "a condition must be an object: {all|any: [...]}, {not: {...}} or {field, <test>}")
        return False
    if "all" in spec or "any" in spec:
        word = "all" if "all" in spec else "any"
        items = spec[word]
        if len(spec) != 1 or not isinstance(items, list) or not items:
            problem(where, f"{word!r} must be the only key and hold a non-empty list")
            return False
        return Node(word, tuple(_condition(item, f"{where}.{word}[{i}]", problem) for i, item in enumerate(items)))
    if "not" in spec:
        if len(spec) != 1:
            problem(where, "'not' must be the only key")
            return False
        return Node("not", (_condition(spec["not"], f"{where}.not", problem),))
    name = spec.get("field")
    ops = [op for op in spec if op != "field"]
    if not isinstance(name, str) or not name:
        problem(where, "a field test needs 'field' (a field name)")
        return False
    if len(ops) != 1 or ops[0] not in FIELD_OPS:
        problem(f"{where} ({name})", f"needs exactly one test of {', '.join(FIELD_OPS)}, got {ops}")
        return False
    wrong = field_name_problem(name) or (field_name_problem(spec[ops[0]]) if ops[0] == "externalTo"
                                          and isinstance(spec[ops[0]], str) and spec[ops[0]] else None)
    if wrong:
        problem(f"{where} ({name})", wrong)
        return False
    return _field_test(name, ops[0], spec[ops[0]], f"{where} ({name})", problem)


def field_name_problem(name: str) -> str | None:
    """Why a field name can never read a value (it would be accepted and never match), or None."""
    parts = name.split(".")
    if not all(part.strip() for part in parts):
        return f"{name!r} is not a field name (an empty part between dots)"
    array = next((known for known in NAMED_ARRAYS if known.lower() == parts[0].lower()), None)
    if array is None:
        return None
    if len(parts) == 1:
        return f"{name!r}: {array} is read by name, as {array}.<Name>"
    if array == "ModifiedProperties" and (len(parts) < 3 or parts[-1].lower() not in ("oldvalue", "newvalue")):
        return f"{name!r}: a modified property is read as ModifiedProperties.<Name>.OldValue or .NewValue"
    return None


def field_reader(name: str) -> Callable[[Event], list[str]]:
    """What Event.values(name) reads, decided once per name: the entry's field, or the raw record
    by keyed name or path (collector/keyed.py)."""
    found = _FIELD_READERS.get(name)
    if found is None:
        if len(_FIELD_READERS) >= 10_000:  # names come from rules; stay bounded whatever asks
            _FIELD_READERS.clear()
        found = _FIELD_READERS[name] = _make_field_reader(name)
    return found


def _make_field_reader(name: str) -> Callable[[Event], list[str]]:
    if name in _ENTRY_FIELDS:
        def entry_values(event: Event) -> list[str]:
            value = getattr(event.entry, name)
            return [str(value)] if value not in (None, "") else []
        return entry_values
    read = keyed_reader(name)
    return lambda event: read(event.keyed)


_FIELD_READERS: dict[str, Callable[[Event], list[str]]] = {}


def _texts(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value.lower(),)
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return tuple(str(v).lower() for v in value)
    return None


def _field_test(name: str, op: str, value: Any, where: str, problem: Callable[[str, str], None]) -> Condition:
    get = field_reader(name)
    if op == "externalTo":
        if not isinstance(value, str) or not value:
            problem(where, "externalTo must name the field holding the inside address (e.g. \"user\")")
            return False
        inside = field_reader(value)

        def external(event: Event) -> bool:
            home = inside(event)
            return _external(get(event), home[0] if home else "")
        return FieldTest(name, None, external)
    test = _values_test(op, value, where, problem)
    if test is None:
        return False
    return FieldTest(name, test, lambda event: test(get(event)))


def _values_test(op: str, value: Any, where: str, problem: Callable[[str, str], None]) -> Callable[[list[str]], bool] | None:
    """The test of a field's values (any value passing passes); None with a problem when `value` is bad."""
    if op == "exists":
        if not isinstance(value, bool):
            problem(where, f"exists must be true or false, got {value!r}")
            return None
        return _nonempty if value else _empty
    if op in NUMBER_OPS:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problem(where, f"{op} must be a number, got {value!r}")
            return None
        compare, bound = NUMBER_OPS[op], float(value)

        def number_test(values: list[str]) -> bool:
            return any(compare(number, bound) for number in numbers(values))
        return number_test
    if op == "matches":
        if not isinstance(value, str):
            problem(where, "matches must be a regular expression")
            return None
        try:
            search = re.compile(value, re.IGNORECASE).search
        except re.error as exc:
            problem(where, f"matches is not a regular expression: {exc}")
            return None
        words = _LITERALS.fullmatch(value) and tuple(value.lower().split("|"))

        def matches(values: list[str]) -> bool:
            for text in values:
                # `a|b c|d` of ASCII letters, digits and spaces over an ASCII text is a search for
                # its lower-cased words: the same answer, several times faster than the regex.
                if words and text.isascii():
                    lowered = text.lower()
                    if any(word in lowered for word in words):
                        return True
                elif search(text):
                    return True
            return False
        return matches
    wanted = _texts(value)
    if wanted is None:
        problem(where, f"{op} must be a text or a non-empty list of texts, got {json.dumps(value)[:80]}")
        return None
    if op in ("in", "equals"):
        allowed = frozenset(wanted)

        def one_of(values: list[str]) -> bool:
            for text in values:  # noqa: SIM110 - per record: a loop is cheaper than any(<generator>)
                if text.lower() in allowed:
                    return True
            return False
        return one_of
    if op == "contains":
        def contains(values: list[str]) -> bool:
            for text in values:
                lowered = text.lower()
                for word in wanted:
                    if word in lowered:
                        return True
            return False
        return contains
    if op == "startsWith":
        return lambda values: any(text.lower().startswith(wanted) for text in values)
    return lambda values: any(text.lower().endswith(wanted) for text in values)


def _nonempty(values: list[str]) -> bool:
    return bool(values)


def _empty(values: list[str]) -> bool:
    return not values


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
