"""Hypothesis strategies of hostile query input: parameter names and values that a client, a
proxy or an attacker could send to GET /api/audit (the dataset's own values in other cases,
OData fragments, control characters, lone surrogates, over-long text, odd times and encodings)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from tests.fuzz.hostile import HOSTILE_VALUES, KNOWN, NOW, PASSTHROUGH
from tests.query.data import ACTIVITIES, IPS, OBJECTS, RESULTS, USERS

ODATA = ["' or 1 eq 1", "x' or 'a' eq 'a", " eq ", "PartitionKey ge ''", "$filter=RowKey ne ''", "') or true or ('",
         "'; drop table audit; --", "%27%20or%201%20eq%201", "*", "%", "_", "\\", "..", "../../", "null", "''"]
ODD_NAMES = ["$filter", "$top", "$select", "User", "USER", "user ", " user", "top[]", "user[]", "", "code2", "Code",
             "cursor\x00", "st\u0430rt", "ﬁlter", "a" * 300]
# C0, C1 and DEL, lone surrogates, the BOM, bidi controls, a noncharacter, U+FFFD.
ODD_CHARS = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xFEFF,
                              0x202E, 0x2066, 0xFFFF, 0xFFFD, 0x10FFFF)]

_any_char = st.one_of(st.characters(codec=None, categories=None, exclude_categories=()), st.sampled_from(ODD_CHARS))
odd_text = st.text(_any_char, max_size=40)
long_text = st.builds(lambda c, n, tail: c * n + tail, st.sampled_from(["x", "é", "\U0001F600", "'"]),
                      st.integers(1000, 1100), st.sampled_from(["", "'", " or 1 eq 1"]))

_dataset_values = [*USERS, *(a[0] for a in ACTIVITIES), *(a[1] for a in ACTIVITIES), *(a[3] for a in ACTIVITIES),
                   *OBJECTS, *IPS, *RESULTS, "Audit.General", "6", "15", "50", "2", "-1", "2147483647", "2147483648"]


@st.composite
def _recased(draw: st.DrawFn) -> str:
    value = draw(st.sampled_from(_dataset_values + HOSTILE_VALUES))
    mode = draw(st.sampled_from(["same", "upper", "lower", "swap", "prefix", "cut"]))
    if mode == "prefix":
        return value[: draw(st.integers(0, max(len(value), 1)))]
    if mode == "cut":
        return value[draw(st.integers(0, max(len(value), 1))):]
    return {"same": value, "upper": value.upper(), "lower": value.lower(), "swap": value.swapcase()}[mode]


@st.composite
def _joined(draw: st.DrawFn) -> str:
    """A comma-separated list mixing dataset values and hostile ones (with stray spaces and empties)."""
    parts = draw(st.lists(st.one_of(_recased(), st.sampled_from(ODATA), odd_text), min_size=1, max_size=4))
    return draw(st.sampled_from([",", ", ", " ,", ",,"])).join(parts)


@st.composite
def times(draw: st.DrawFn) -> str:
    """start/end text: mostly valid times near the dataset in the documented spellings, sometimes not."""
    when = NOW + timedelta(minutes=draw(st.integers(-60 * 24 * 60, 60 * 24 * 2)))
    spelling = draw(st.sampled_from(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S",
                                     "%Y-%m-%dt%H:%M:%S.%fz", "%Y-%m-%dT%H:%M:%S+02:00", "%Y-%m-%dT%H:%M:%S 05:30",
                                     "%Y-%m-%dT%H:%M:%S-0800", "%Y-%m-%dT%H:%M:%S+23:59"]))
    valid = when.strftime(spelling)
    return draw(st.one_of(
        st.just(valid),
        st.sampled_from(["0001-01-01", "0001-01-01T23:59:59Z", "0001-01-02", "9999-12-31", "9999-12-31T23:59:59Z",
                         "2024-02-30", "2024-13-01", "2024-03-01T24:00:00Z", "2024-03-01T10:00:00+24:00",
                         "2024-03-01T10:00:00+23:99", "２０２４-03-01", "2024-03-01T10:00:00.1234567890Z", "now",
                         "2024-03-01T10:00:00+02:00'", "1709272800", "-2024-03-01", "2024-3-1", " 2024-03-01"]),
        st.builds(lambda head, tail: head + tail, st.just(valid), st.sampled_from(ODATA)),
        odd_text,
    ))


def values_for(name: str) -> st.SearchStrategy[str]:
    common = st.one_of(st.sampled_from(HOSTILE_VALUES + ODATA), odd_text, long_text, st.just(""))
    if name in ("start", "end"):
        return st.one_of(times(), times(), common)
    if name == "top":
        return st.one_of(st.integers(-5, 1200).map(str), st.sampled_from(["1", "07", "1e3", "+5", " 5", "５", "0x10",
                                                                          "9" * 12, "10.0"]), common)
    if name == "format":
        return st.one_of(st.sampled_from(["json", "csv", "ndjson", "JSON", "xml", "json ", "csv\x00"]), common)
    if name == "recordType":
        return st.one_of(st.sampled_from(["6", "15,50", "6, 2", "-0", "+6", "2147483648", "٦", "6.0", "1e1",
                                          "99999999999"]), _joined(), common)
    if name == "cursor":
        return st.one_of(st.text("ABCDEFabcdef0123456789_-", min_size=18, max_size=40), common)
    return st.one_of(_recased(), _recased(), _joined(), common)


_FILTERS = ("user", "operation", "workload", "result", "clientIp", "contentType", "recordType", "object", "q")
_WIDE_STARTS = ["2024-01-01", "2024-02-22T00:00:00Z", "2024-02-28", "2024-03-01T12:00:00+02:00", ""]


@st.composite
def plausible_pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A query a client could mean: dataset values (in other cases, in lists), a range over the
    dataset, one or two filters, sometimes one hostile value among them: most have records to return."""
    pairs: list[tuple[str, str]] = []
    start = draw(st.sampled_from(_WIDE_STARTS))
    if start:
        pairs.append(("start", start))
    if start[:7] == "2024-01" or draw(st.booleans()):
        pairs.append((draw(st.sampled_from(["user", "operation"])), draw(_recased())))
    for name in draw(st.lists(st.sampled_from(_FILTERS), max_size=2, unique=True)):
        value = draw(st.one_of(_recased(), _recased(), _recased(), values_for(name)))
        if name in ("object", "q"):
            value = value[: draw(st.integers(0, 12))]
        pairs.append((name, value))
    if draw(st.booleans()):
        pairs.append(("top", str(draw(st.integers(1, 60)))))
    if draw(st.integers(0, 4)) == 0:
        pairs.append(("code", draw(st.sampled_from(["k3y/+=&x", "", "' or 1 eq 1"]))))
    return draw(st.permutations(pairs))


def query_pairs() -> st.SearchStrategy[list[tuple[str, str]]]:
    """Query pairs of GET /api/audit: half plausible queries, half anything."""
    return st.one_of(plausible_pairs(), hostile_pairs())


@st.composite
def hostile_pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Usually well-named parameters (often a user or operation, so the range may be long),
    sometimes unknown or repeated ones and the function key `code`; values anything."""
    names = draw(st.lists(st.one_of(st.sampled_from(KNOWN), st.sampled_from(KNOWN),
                                    st.sampled_from(PASSTHROUGH + tuple(ODD_NAMES)), odd_text),
                          max_size=5))
    if draw(st.booleans()):
        names.append(draw(st.sampled_from(["user", "operation"])))
    pairs = [(name, draw(values_for(name))) for name in names]
    return draw(st.permutations(pairs))
