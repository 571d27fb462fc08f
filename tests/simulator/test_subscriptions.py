"""subscriptions/start, stop, list (docs/api-behaviour.md "Subscriptions") and the stop → gap rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulator import Simulator

from .helpers import NOW, TENANT, Api, FakeClock, error_code


@pytest.fixture
def cold(sim: Simulator) -> Simulator:
    """A tenant without subscriptions (what a new deployment sees)."""
    sim.tenant().subscriptions.clear()
    return sim


def test_cold_start_list_start_then_af20024(cold: Simulator, api: Api):
    listed = api.get("subscriptions/list", PublisherIdentifier=TENANT)
    assert listed.status_code == 200 and listed.json() == []
    started = api.post("subscriptions/start", contentType="Audit.Exchange", PublisherIdentifier=TENANT)
    assert started.status_code == 200
    assert started.json() == {"contentType": "Audit.Exchange", "status": "enabled", "webhook": None}
    again = api.post("subscriptions/start", contentType="Audit.Exchange", PublisherIdentifier=TENANT)
    assert again.status_code == 400
    assert again.json() == {"error": {"code": "AF20024", "message": "The subscription is already enabled. No property change."}}
    assert api.get("subscriptions/list").json() == [{"contentType": "Audit.Exchange", "status": "enabled", "webhook": None}]


def test_start_accepts_an_empty_body_and_records_a_start_time(cold: Simulator, api: Api, clock: FakeClock):
    response = api.session.post(f"{api.root}/subscriptions/start", params={"contentType": "Audit.General"}, data=b"")
    assert response.status_code == 200
    assert cold.subscription("Audit.General").first_started_at == NOW


def test_listing_without_a_subscription_is_af20022(cold: Simulator, api: Api):
    response = api.content("Audit.SharePoint")
    assert response.status_code == 400 and error_code(response) == "AF20022"
    assert error_code(api.post("subscriptions/stop", contentType="Audit.SharePoint")) == "AF20022"


def test_stop_creates_a_gap_that_is_never_listable(sim: Simulator, api: Api, clock: FakeClock):
    before = sim.add_blob("Audit.Exchange", NOW - timedelta(minutes=30), [{"Id": "before"}])
    stopped = api.post("subscriptions/stop", contentType="Audit.Exchange", PublisherIdentifier=TENANT)
    assert stopped.status_code == 200 and stopped.content == b""
    assert api.get("subscriptions/list").json()[1] == {"contentType": "Audit.Exchange", "status": "disabled", "webhook": None}

    clock.advance(timedelta(minutes=10))
    in_gap = sim.add_blob("Audit.Exchange", clock() - timedelta(minutes=5), [{"Id": "gap"}])
    disabled = api.content()
    assert disabled.status_code == 400
    assert disabled.json() == {"error": {"code": "AF20023", "message": "The subscription was disabled."}}
    assert error_code(api.get(in_gap.content_uri(api.server.base_url))) == "AF20023"

    clock.advance(timedelta(minutes=10))
    assert api.post("subscriptions/start", contentType="Audit.Exchange").status_code == 200
    after = sim.add_blob("Audit.Exchange", clock(), [{"Id": "after"}])
    clock.advance(timedelta(seconds=1))
    listed = [item["contentId"] for item in api.content(startTime=(NOW - timedelta(hours=1)).isoformat()[:19],
                                                         endTime=clock().isoformat()[:19]).json()]
    assert listed == [before.content_id, after.content_id]  # the gap's blob is gone for good
    gone = api.get(in_gap.content_uri(api.server.base_url))
    assert gone.status_code == 400 and error_code(gone) == "AF20050"


def test_admin_disablement_names_the_admin(sim: Simulator, api: Api):
    sim.disable_subscription("Audit.SharePoint")
    response = api.content("Audit.SharePoint")
    assert response.json()["error"] == {"code": "AF20023", "message": "The subscription was disabled by a tenant admin."}
    assert api.content("Audit.Exchange").status_code == 200  # only that content type


def test_start_throttle_knob(sim: Simulator, api: Api, clock: FakeClock):
    sim.set(start_throttle_minutes=15, throttle_status=429)
    api.post("subscriptions/stop", contentType="Audit.General")
    assert api.post("subscriptions/start", contentType="Audit.General").status_code == 200
    api.post("subscriptions/stop", contentType="Audit.General")
    clock.advance(timedelta(minutes=14))
    refused = api.post("subscriptions/start", contentType="Audit.General", PublisherIdentifier=TENANT)
    assert refused.status_code == 429 and error_code(refused) == "AF429"
    assert "Method=StartSubscription" in refused.json()["error"]["message"]
    clock.advance(timedelta(minutes=16))
    assert api.post("subscriptions/start", contentType="Audit.General").status_code == 200


def test_first_content_delay_after_start(cold: Simulator, api: Api, clock: FakeClock):
    cold.set(first_content_delay_after_start=timedelta(hours=12))
    api.post("subscriptions/start", contentType="Audit.Exchange")
    cold.add_blob("Audit.Exchange", NOW + timedelta(minutes=5), [{"Id": "1"}])
    clock.advance(timedelta(hours=11))
    api.login()  # the first token expired meanwhile
    assert api.content().json() == []
    clock.advance(timedelta(hours=1, minutes=1))
    api.login()
    assert len(api.content().json()) == 1


def test_webhook_must_be_https_and_can_be_updated(sim: Simulator, api: Api):
    refused = api.post("subscriptions/start", {"webhook": {"address": "http://hooks.example.com/o365"}}, contentType="Audit.Exchange")
    assert error_code(refused) == "AF20021"
    assert "must begin with HTTPS" in refused.json()["error"]["message"]
    hook = {"webhook": {"address": "https://hooks.example.com/o365", "authId": "o365activityapinotification", "expiration": ""}}
    updated = api.post("subscriptions/start", hook, contentType="Audit.Exchange")
    assert updated.status_code == 200
    assert updated.json()["webhook"] == {"status": "enabled", "address": "https://hooks.example.com/o365",
                                         "authId": "o365activityapinotification", "expiration": None}
    assert error_code(api.post("subscriptions/start", hook, contentType="Audit.Exchange")) == "AF20024"


def test_notifications_are_listed_for_webhook_subscriptions(sim: Simulator, api: Api):
    blob = sim.add_blob("Audit.Exchange", NOW - timedelta(minutes=10), [{"Id": "1"}])
    assert api.get("subscriptions/notifications", contentType="Audit.Exchange").json() == []
    api.post("subscriptions/start", {"webhook": {"address": "https://hooks.example.com/o365"}}, contentType="Audit.Exchange")
    items = api.get("subscriptions/notifications", contentType="Audit.Exchange").json()
    assert [i["contentId"] for i in items] == [blob.content_id]
    assert items[0]["notificationStatus"] == "success" and items[0]["notificationSent"].endswith("Z")
