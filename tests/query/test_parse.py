"""Pure parts of the query: parameters → plan, errors, cursors, matching, next-page parameters."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from collector.errors import QueryError
from collector.models import AuditEntry
from collector.query.cursor import decode_cursor, encode_cursor
from collector.query.matcher import matcher
from collector.query.params import QueryPlan, parse_request

NOW = datetime(2024, 3, 2, 6, 0, tzinfo=UTC)


def parse(params, max_range_days: int = 31) -> QueryPlan:
    return parse_request(params, now=NOW, max_range_days=max_range_days)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("params, expected", [
    ({}, dict(start=NOW - timedelta(hours=24), end=NOW, top=100, format="json", view="t")),
    ({"start": "2024-03-01"}, dict(start=utc(2024, 3, 1), end=NOW)),
    ({"end": "2024-03-01T12:00:00Z"}, dict(start=utc(2024, 2, 29, 12), end=utc(2024, 3, 1, 12))),
    ({"start": "2024-03-01T12:00:00+02:00"}, dict(start=utc(2024, 3, 1, 10))),
    ({"start": "2024-03-01T12:00:00-0530"}, dict(start=utc(2024, 3, 1, 17, 30))),
    ({"start": "2024-03-01T12:00:00 02:00"}, dict(start=utc(2024, 3, 1, 10))),  # "+" decoded as a space
    ({"start": "2024-03-01 12:00"}, dict(start=utc(2024, 3, 1, 12))),
    ({"start": "2024-03-01t12:00:00.1234567z"}, dict(start=utc(2024, 3, 1, 12) + timedelta(microseconds=123456))),
    ({"user": "a@x.com, B@x.com,,a@X.com"}, dict(users=("a@x.com", "B@x.com"), view="u")),
    ([("user", "a@x.com"), ("user", "b@x.com")], dict(users=("a@x.com", "b@x.com"))),
    ({"operation": "FileAccessed,UserLoggedIn"}, dict(operations=("FileAccessed", "UserLoggedIn"), view="o")),
    ({"user": "a@x.com", "operation": "Send"}, dict(view="u", residual=True)),
    ({"user": "a@x.com"}, dict(residual=False)),
    ({"recordType": "6, 15,+2,6"}, dict(record_types=(6, 15, 2))),
    ({"recordType": "-1"}, dict(record_types=(-1,))),
    ({"workload": "Exchange", "result": "failed", "clientIp": "2001:db8::5", "contentType": "audit.exchange"},
     dict(workloads=("Exchange",), results=("failed",), client_ips=("2001:db8::5",), content_types=("audit.exchange",))),
    ({"object": "https://contoso", "q": " budget "}, dict(object_prefix="https://contoso", q=" budget ")),
    ({"top": "1"}, dict(top=1)),
    ({"top": "1000", "format": "ndjson"}, dict(top=1000, format="ndjson")),
    ({"format": "csv"}, dict(format="csv")),
    ({"code": "function-key", "user": ""}, dict(users=())),  # the function key is not ours; empty = not given
    ({"user": "x' or '1' eq '1"}, dict(users=("x' or '1' eq '1",))),
    ({"start": "2023-01-01", "user": "a@x.com"}, dict(start=utc(2023, 1, 1))),  # no range limit with a user
    ({"start": "2024-02-25", "end": "2024-03-27"}, dict(end=utc(2024, 3, 27))),  # exactly 31 days
])
def test_valid_requests(params, expected):
    plan = parse(params)
    for name, value in expected.items():
        assert getattr(plan, name) == value, name


@pytest.mark.parametrize("params, parameter, code, says", [
    ({"start": "yesterday"}, "start", "InvalidParameter", "ISO 8601"),
    ({"start": "2024-13-01"}, "start", "InvalidParameter", "ISO 8601"),
    ({"start": "2024-02-30T00:00:00Z"}, "start", "InvalidParameter", "2024-02-30"),
    ({"end": "9999-12-31T23:59:59-05:00"}, "end", "InvalidParameter", "ISO 8601"),
    ({"start": "\uff12\uff10\uff12\uff14-01-01"}, "start", "InvalidParameter", "ISO 8601"),
    ({"start": "2024-01-01\n"}, "start", "InvalidParameter", "ISO 8601"),
    ({"start": "2024-01-01T00:00:00Z' or '1' eq '1"}, "start", "InvalidParameter", "ISO 8601"),
    ({"start": "2024-03-01", "end": "2024-03-01"}, "end", "InvalidParameter", "end must be after start"),
    ({"start": "2024-03-03"}, "end", "InvalidParameter", "end defaults to now"),
    ({"start": "2024-01-01", "end": "2024-03-01"}, "start", "RangeTooLarge", "QUERY_MAX_RANGE_DAYS"),
    ({"start": "2024-01-01", "end": "2024-03-01", "workload": "Exchange"}, "start", "RangeTooLarge", "31 days"),
    ({"top": "0"}, "top", "InvalidParameter", "from 1 to 1000"),
    ({"top": "1001"}, "top", "InvalidParameter", "from 1 to 1000"),
    ({"top": "abc"}, "top", "InvalidParameter", "integer"),
    ({"top": "1.5"}, "top", "InvalidParameter", "integer"),
    ({"top": "-1"}, "top", "InvalidParameter", "integer"),
    ({"top": " 5"}, "top", "InvalidParameter", "integer"),
    ({"top": "\uff11\uff10"}, "top", "InvalidParameter", "integer"),
    ({"top": "9" * 400}, "top", "InvalidParameter", "integer"),
    ({"format": "xml"}, "format", "InvalidParameter", "json, csv, ndjson"),
    ({"format": "JSON"}, "format", "InvalidParameter", "json, csv, ndjson"),
    ({"recordType": "six"}, "recordType", "InvalidParameter", "integer"),
    ({"recordType": "6,x"}, "recordType", "InvalidParameter", "'x'"),
    ({"recordType": "1e3"}, "recordType", "InvalidParameter", "integer"),
    ({"recordType": "99999999999"}, "recordType", "InvalidParameter", "integer"),
    ({"usr": "a@x.com"}, "usr", "UnknownParameter", "did you mean 'user'"),
    ({"User": "a@x.com"}, "User", "UnknownParameter", "did you mean 'user'"),
    ({"$filter": "UserId eq 'x'"}, "$filter", "UnknownParameter", "expected start, end"),
    ({"$top": "5", "skip": "1"}, "$top", "UnknownParameter", "parameters"),
    ([("start", "2024-03-01"), ("start", "2024-03-02")], "start", "InvalidParameter", "only once"),
    ([("q", "a"), ("q", "b")], "q", "InvalidParameter", "only once"),
    ({"cursor": "abc"}, "cursor", "InvalidCursor", "@odata.nextLink"),
    ({"user": "a\ud800b"}, "user", "InvalidParameter", "UTF-8"),
    ({"q": "\udcff"}, "q", "InvalidParameter", "UTF-8"),
    ({"object": "x" * 1025}, "object", "InvalidParameter", "1024"),
    ({"user": ",".join(f"u{n}@x.com" for n in range(51))}, "user", "InvalidParameter", "at most 50"),
])
def test_invalid_requests_name_the_parameter(params, parameter, code, says):
    with pytest.raises(QueryError) as caught:
        parse(params)
    assert caught.value.status == 400
    assert caught.value.parameter == parameter
    assert caught.value.code == code
    assert says in str(caught.value)


def test_error_messages_quote_input_safely():
    with pytest.raises(QueryError) as caught:
        parse({"start": "\x00\u202e" + "y" * 500})
    message = str(caught.value)
    message.encode("utf-8")  # always encodable
    assert len(message) < 400


@pytest.mark.parametrize("key", [
    "8290483199abc-def", "8290483199" + "ü" * 40, "0000000000x", "8290483199twin-0000_9a8b7c6d-5e4f",
])
def test_cursor_round_trip(key):
    token = encode_cursor(key)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(token) == key


def _flip(token: str, at: int) -> str:
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]


GOOD = encode_cursor("8290483199abcdef-1234")


@pytest.mark.parametrize("token", [
    GOOD[:-1], GOOD[:-4], _flip(GOOD, 3), _flip(GOOD, len(GOOD) - 2), GOOD + "A", GOOD + "=", "=" + GOOD,
    GOOD[:-1] + "+", GOOD[:-1] + "/", "A" * 40, "_" * 2001, "",
    encode_cursor("8290483199abc")[:6] + encode_cursor("x")[6:],
])
def test_tampered_cursors_are_refused(token):
    with pytest.raises(QueryError) as caught:
        decode_cursor(token)
    assert caught.value.code == "InvalidCursor" and caught.value.parameter == "cursor"


@pytest.mark.parametrize("key", ["123abc", "829048319", "829048319x", "8290483199a/b", "8290483199a\x00", "x" * 20])
def test_cursors_only_carry_order_keys(key):
    with pytest.raises(QueryError):
        decode_cursor(encode_cursor(key))


def test_a_bare_second_is_a_cursor_position():
    # A page whose budget ran out between rows resumes at a second boundary: ten digits alone.
    assert decode_cursor(encode_cursor("8290483199")) == "8290483199"


ENTRY = AuditEntry(
    id="0001", time="2024-03-01T10:00:00Z", user="Bob@Contoso.com", operation="FileAccessed",
    object="https://contoso.sharepoint.com/sites/Финансы/Budget.xlsx", result="Succeeded", clientIp="2001:DB8::5",
    userAgent="Mozilla/5.0", workload="SharePoint", recordType=6, contentType="Audit.SharePoint",
    organizationId="org-1",
)


@pytest.mark.parametrize("params, matches", [
    ({}, True),
    ({"user": "bob@contoso.com"}, True),
    ({"user": "BOB@CONTOSO.COM,x@y"}, True),
    ({"user": "bob@contoso"}, False),  # exact, not a prefix
    ({"operation": "fileaccessed"}, True),
    ({"operation": "FileAccessed", "user": "alice@contoso.com"}, False),
    ({"workload": "sharepoint"}, True),
    ({"workload": "Exchange,OneDrive"}, False),
    ({"result": "SUCCEEDED"}, True),
    ({"result": "Failed"}, False),
    ({"recordType": "15,6"}, True),
    ({"recordType": "15"}, False),
    ({"clientIp": "2001:db8::5"}, True),
    ({"clientIp": "2001:db8::"}, False),
    ({"contentType": "AUDIT.SHAREPOINT"}, True),
    ({"object": "HTTPS://CONTOSO.SHAREPOINT.COM/sites/финансы"}, True),
    ({"object": "sites/Финансы"}, False),  # a prefix, not a substring
    ({"q": "финансы/budget"}, True),
    ({"q": "mozilla"}, True),
    ({"q": "2024-03-01T10"}, True),  # time is a field too
    ({"q": "org-1"}, True),
    ({"q": "6"}, True),  # recordType as text
    ({"q": "exchange"}, False),
    ({"q": "x' or '1' eq '1"}, False),
])
def test_matcher(params, matches):
    assert matcher(parse(params)).__call__(ENTRY) is matches


def test_matcher_handles_missing_record_type():
    entry = replace(ENTRY, recordType=None)
    assert matcher(parse({"recordType": "6"}))(entry) is False
    assert matcher(parse({"q": "none"}))(entry) is False


def test_link_params_pin_the_range_and_keep_every_filter():
    plan = parse({"user": "a@x.com,B@x.com", "recordType": "6,15", "object": "https://a,b", "q": "x y",
                  "top": "7", "format": "json", "code": "secret"})
    pairs = plan.link_params("8290483199abc")
    assert pairs[:2] == [("start", "2024-03-01T06:00:00Z"), ("end", "2024-03-02T06:00:00Z")]
    assert ("user", "a@x.com,B@x.com") in pairs and ("recordType", "6,15") in pairs
    assert ("object", "https://a,b") in pairs and ("q", "x y") in pairs and ("top", "7") in pairs
    assert all(name != "code" and name != "format" for name, _ in pairs)  # code is the api layer's business
    assert dict(pairs)["cursor"] == encode_cursor("8290483199abc")
    again = parse(pairs)  # the next page parses to the same plan, positioned after the key
    assert replace(again, after=None) == plan and again.after == "8290483199abc"


def test_day_windows_cut_at_utc_midnight_newest_first():
    from collector.query.service import day_windows

    start, end = utc(2024, 2, 28, 22, 30), datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    assert day_windows(start, end) == [
        (utc(2024, 3, 1), end), (utc(2024, 2, 29), utc(2024, 3, 1)), (start, utc(2024, 2, 29)),
    ]
    assert day_windows(utc(2024, 3, 1), utc(2024, 3, 2)) == [(utc(2024, 3, 1), utc(2024, 3, 2))]
    assert day_windows(utc(2024, 3, 1, 5), utc(2024, 3, 1, 5)) == []
    offset = datetime.fromisoformat("2024-03-01T01:00:00+02:00")  # 2024-02-29T23:00Z
    assert day_windows(offset, utc(2024, 3, 1, 1)) == [(utc(2024, 3, 1), utc(2024, 3, 1, 1)), (utc(2024, 2, 29, 23), utc(2024, 3, 1))]
