"""subscriptions/content (listing, windows, paging) and GET audit/{contentId} (docs/api-behaviour.md "Listing windows",
"Paging", "Content blobs", "Window rules")."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from simulator import Simulator

from .helpers import NOW, TENANT, Api, FakeClock, error_code

FMT = "%Y-%m-%dT%H:%M:%S"


def add(sim: Simulator, n: int, start_minutes_ago: int = 600, step: int = 10, content_type: str = "Audit.Exchange") -> list[str]:
    ids = []
    for i in range(n):
        created = NOW - timedelta(minutes=start_minutes_ago - i * step)
        blob = sim.add_blob(content_type, created, [{"Id": f"r{i}", "CreationTime": (created - timedelta(minutes=3)).strftime(FMT)}])
        ids.append(blob.content_id)
    return ids


def walk(api: Api, **params: str) -> tuple[list[str], list[int], list[str]]:
    """Follow NextPageUri (adding PublisherIdentifier, as a client must); return ids, page sizes, next links."""
    response = api.content(**params)
    ids: list[str] = []
    sizes: list[int] = []
    links: list[str] = []
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        sizes.append(len(page))
        ids += [item["contentId"] for item in page]
        link = response.headers.get("NextPageUri")
        if not link:
            return ids, sizes, links
        links.append(link)
        response = api.get(link + f"&PublisherIdentifier={TENANT}")


def window(start: object, end: object) -> dict[str, str]:
    return {"startTime": start.strftime(FMT), "endTime": end.strftime(FMT)}  # type: ignore[attr-defined]


def test_listing_entries_have_the_documented_shape(sim: Simulator, api: Api):
    (content_id,) = add(sim, 1)
    response = api.content()
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Date" in response.headers
    (item,) = response.json()
    assert set(item) == {"contentType", "contentId", "contentUri", "contentCreated", "contentExpiration"}
    assert item["contentUri"] == f"{api.server.base_url}/api/v1.0/{TENANT}/activity/feed/audit/{content_id}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item["contentCreated"])
    # "Content and page identifiers": {T1}${T2}$audit_exchange$Audit_Exchange${region}; T2 starts with contentCreated
    t1, t2, lower, upper, region = content_id.split("$")
    assert (lower, upper, region) == ("audit_exchange", "Audit_Exchange", "na0017")
    assert len(t1) == len(t2) == 23
    assert t2[:17] == re.sub(r"\D", "", item["contentCreated"])


def test_paging_with_lower_case_next_page_uri_without_publisher(sim: Simulator, api: Api):
    expected = add(sim, 8)
    ids, sizes, links = walk(api)
    assert ids == expected  # ascending contentCreated, nothing lost or repeated
    assert sizes == [3, 3, 2]
    for link in links:
        parts = urlsplit(link)
        names = [name for name, _ in parse_qsl(parts.query)]
        assert names == ["contenttype", "starttime", "endtime", "nextpage"]  # lower-case, no PublisherIdentifier
        assert parts.netloc == urlsplit(api.server.base_url).netloc
        query = dict(parse_qsl(parts.query))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", query["starttime"])
        assert re.fullmatch(r"\d{23}\$\d{23}\$na0017", query["nextpage"])


def test_empty_page_with_a_next_page_uri(sim: Simulator, api: Api):
    expected = add(sim, 7)
    sim.set(emit_empty_page_with_next=True)
    ids, sizes, _ = walk(api)
    assert sizes == [0, 3, 3, 1]
    assert ids == expected


def test_random_empty_pages_keep_the_position(sim: Simulator, api: Api):
    expected = add(sim, 10)
    sim.set(empty_page_rate=0.5, fault_seed=3)
    ids, sizes, _ = walk(api)
    assert ids == expected
    assert 0 in sizes


def test_invalid_next_page_is_af20031(sim: Simulator, api: Api):
    add(sim, 5)
    link = api.content().headers["NextPageUri"]
    broken = re.sub(r"nextpage=[^&]+", "nextpage=garbage", link)
    response = api.get(broken)
    assert response.status_code == 400 and error_code(response) == "AF20031"
    assert response.json()["error"]["message"] == "Invalid nextPage Input: garbage."


def test_window_filters_on_content_created_start_inclusive_end_exclusive(sim: Simulator, api: Api):
    ids = add(sim, 6, start_minutes_ago=60, step=10)  # created at NOW-60, -50, …, -10 min
    start, end = NOW - timedelta(minutes=50), NOW - timedelta(minutes=20)
    assert [i["contentId"] for i in api.content(**window(start, end)).json()] == ids[1:4]


def test_future_content_is_not_listed_until_the_clock_reaches_it(sim: Simulator, api: Api, clock: FakeClock):
    blob = sim.add_blob("Audit.Exchange", NOW + timedelta(minutes=5), [{"Id": "x"}])
    assert api.content().json() == []
    assert error_code(api.get(blob.content_uri(api.server.base_url))) == "AF20050"
    clock.advance(timedelta(minutes=6))
    assert [i["contentId"] for i in api.content().json()] == [blob.content_id]


@pytest.mark.parametrize(("start", "end", "ok"), [
    (NOW - timedelta(hours=24), NOW, True),  # exactly 24 h
    (NOW - timedelta(hours=24, seconds=1), NOW, False),  # 24 h + 1 s
    (NOW - timedelta(days=7, minutes=1), NOW - timedelta(days=6, hours=1), False),  # start older than 7 days
    (NOW - timedelta(days=7) + timedelta(minutes=1), NOW - timedelta(days=6, hours=1), True),
    (NOW, NOW - timedelta(hours=1), False),  # end before start
    (NOW, NOW, False),  # empty window
    (NOW - timedelta(hours=1), NOW + timedelta(hours=2), True),  # a future end is accepted
])
def test_window_validation(api: Api, start, end, ok: bool):
    response = api.content(**window(start, end))
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert error_code(response) == "AF20055"
        assert "prior to  end time" in message and f"StartTime:{start.strftime(FMT)}.0000000Z" in message


def test_window_start_tolerance_knob(sim: Simulator, api: Api):
    params = window(NOW - timedelta(days=7, minutes=30), NOW - timedelta(days=6, hours=12))
    assert api.content(**params).status_code == 400
    sim.set(window_start_tolerance=timedelta(hours=1))
    assert api.content(**params).status_code == 200


@pytest.mark.parametrize("params", [{"startTime": "2024-05-14T10:00:00"}, {"endTime": "2024-05-14T10:00:00"},
                                    {"startTime": "yesterday", "endTime": "today"}])
def test_both_or_neither_and_readable_times(api: Api, params: dict[str, str]):
    response = api.content(**params)
    assert response.status_code == 400 and error_code(response) == "AF20055"


@pytest.mark.parametrize("value", ["2024-05-14", "2024-05-14T10:00", "2024-05-14T10:00:00", "2024-05-14T10:00:00Z",
                                   "2024-05-14T10:00:00.1234567Z", "2024-05-14T12:00:00+02:00"])
def test_documented_and_observed_time_formats(api: Api, value: str):
    assert api.content(startTime=value, endTime="2024-05-14T11:00:00").status_code == 200


def test_default_window_knob_last24h_or_today(sim: Simulator, api: Api):
    ids = add(sim, 2, start_minutes_ago=14 * 60, step=12 * 60)  # NOW-14h (yesterday 22:00 UTC), NOW-2h
    assert [i["contentId"] for i in api.content().json()] == ids
    sim.set(default_window="todayUtc")
    assert [i["contentId"] for i in api.content().json()] == ids[1:]


def test_next_page_uri_of_the_default_window_carries_the_interval(sim: Simulator, api: Api):
    add(sim, 4)
    link = api.content().headers["NextPageUri"]
    query = dict(parse_qsl(urlsplit(link).query))
    assert query["starttime"] == (NOW - timedelta(hours=24)).strftime(FMT) + ".0000000Z"
    assert query["endtime"] == NOW.strftime(FMT) + ".0000000Z"


def test_query_names_are_case_insensitive(sim: Simulator, api: Api):
    add(sim, 1)
    url = f"{api.root}/subscriptions/content?CONTENTTYPE=Audit.Exchange&publisherIdentifier={TENANT}"
    assert len(api.get(url).json()) == 1
    assert api.sim.requests[-1].query["publisheridentifier"] == TENANT


@pytest.mark.parametrize(("content_type", "code"), [("Audit.Unknown", "AF20020"), ("audit.exchange", "AF20020"), (None, "AF20001")])
def test_content_type_is_validated(api: Api, content_type: str | None, code: str):
    params = {"PublisherIdentifier": TENANT} if content_type is None else {"contentType": content_type}
    response = api.get("subscriptions/content", **params)
    assert response.status_code == 400 and error_code(response) == code


def test_unknown_query_parameters_are_ignored(sim: Simulator, api: Api):
    add(sim, 1)
    # "Request conventions": an HTML-escaped "&amp;startTime=" is just an unknown name: the default window applies.
    url = f"{api.root}/subscriptions/content?contentType=Audit.Exchange&amp;startTime=2020-01-01"
    assert len(api.get(url).json()) == 1


# ---------------------------------------------------------------------------- retrieval
def test_get_content_returns_the_records(sim: Simulator, api: Api):
    records = [{"Id": "a", "CreationTime": "2024-05-14T11:00:00", "Nested": {"x": [1, "2"]}}, {"Id": "b", "ClientIP": None}]
    blob = sim.add_blob("Audit.SharePoint", NOW - timedelta(minutes=1), records)
    response = api.get(blob.content_uri(api.server.base_url), PublisherIdentifier=TENANT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == records
    assert blob.records == records and blob.record_count == 2


def test_expired_content_is_af20051_with_http_400(sim: Simulator, api: Api, clock: FakeClock):
    blob = sim.add_blob("Audit.Exchange", NOW - timedelta(minutes=10), [{"Id": "a", "CreationTime": "2024-05-14T11:40:00"}])
    assert blob.content_expiration == NOW - timedelta(minutes=20) + timedelta(days=7)  # T1 = earliest CreationTime
    assert len(api.content().json()) == 1
    clock.set(blob.content_expiration)
    api.login()
    response = api.get(blob.content_uri(api.server.base_url))
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "AF20051", "message": f"Content requested with the key {blob.content_id} has already "
                                         "expired. Content older than 7 days cannot be retrieved."}}


def test_expiration_knob_and_explicit_expiration(sim: Simulator):
    sim.set(expiration_days=14)
    blob = sim.add_blob("Audit.Exchange", NOW, [], t1=NOW - timedelta(hours=1))
    assert blob.content_expiration == NOW - timedelta(hours=1) + timedelta(days=14)
    explicit = sim.add_blob("Audit.Exchange", NOW, [], expiration=NOW + timedelta(days=1))
    assert explicit.content_expiration == NOW + timedelta(days=1)


def test_unknown_and_malformed_content_ids(api: Api):
    unknown = api.get("audit/20240514093001118004412$20240514100613512007725$audit_exchange$Audit_Exchange$na0017")
    assert unknown.status_code == 400 and error_code(unknown) == "AF20050"
    malformed = api.get("audit/not%20a%20content%20id!")
    assert malformed.status_code == 400 and error_code(malformed) == "AF20052"
    assert malformed.json()["error"]["message"] == "Content ID not a content id! in the URL is invalid."


def test_af20050_status_knob(sim: Simulator, api: Api):
    sim.set(af20050_status=404)
    assert api.get("audit/20240514093001118004412$x$audit_exchange$Audit_Exchange$na0017").status_code == 404


def test_dlp_needs_the_read_dlp_permission(sim: Simulator, api: Api):
    blob = sim.add_blob("DLP.All", NOW - timedelta(minutes=1), [{"Id": "d", "UserKey": "DlpAgent"}])
    for response in (api.content("DLP.All"), api.get(blob.content_uri(api.server.base_url))):
        assert response.status_code == 403 and error_code(response) == "AF10001"
        assert "ActivityFeed.ReadDlp" in response.json()["error"]["message"]
    sim.app().roles = ("ActivityFeed.Read", "ActivityFeed.ReadDlp")
    api.login()
    assert [i["contentId"] for i in api.content("DLP.All").json()] == [blob.content_id]
    assert api.get(blob.content_uri(api.server.base_url)).json() == [{"Id": "d", "UserKey": "DlpAgent"}]


def test_advertised_base_url_knob(sim: Simulator, api: Api):
    add(sim, 4)
    sim.set(advertised_base_url="https://manage.office.com")
    response = api.content()
    assert response.headers["NextPageUri"].startswith(f"https://manage.office.com/api/v1.0/{TENANT}/")
    assert json.loads(response.content)[0]["contentUri"].startswith("https://manage.office.com/")
