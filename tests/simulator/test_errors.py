"""Authentication, tenant and permission errors, throttling, random and scripted faults, and the
validation order of docs/api-behaviour.md "Check order"; plus the headers every answer carries and the request log."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import jwt
import pytest
import requests

from simulator import Simulator

from .helpers import CLIENT, NOW, SECRET, TENANT, Api, FakeClock, error_code

UNAUTHORIZED = {"Message": "Authorization has been denied for this request."}


def assert_unauthorized(response: requests.Response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == UNAUTHORIZED


def test_missing_malformed_and_forged_tokens_are_401(api: Api):
    url = f"{api.root}/subscriptions/list"
    assert_unauthorized(requests.get(url, verify=str(api.server.ca_path)))
    assert_unauthorized(requests.get(url, headers={"Authorization": "Bearer not-a-jwt"}, verify=str(api.server.ca_path)))
    forged = jwt.encode({"aud": "https://manage.office.com", "tid": TENANT, "roles": ["ActivityFeed.Read"], "exp": 2**31},
                        "a-guessed-key-of-the-right-length-32", algorithm="HS256")
    assert_unauthorized(requests.get(url, headers={"Authorization": f"Bearer {forged}"}, verify=str(api.server.ca_path)))


def test_expired_token_is_401(api: Api, clock: FakeClock):
    assert api.get("subscriptions/list").status_code == 200
    clock.advance(timedelta(seconds=3600))
    assert_unauthorized(api.get("subscriptions/list"))


def test_token_for_another_audience_is_401(sim: Simulator, api: Api):
    # "Clouds and hosts": the scope must follow the API host; a GCC token does not open the commercial API.
    response = api.session.post(f"{api.server.base_url}/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET,
        "scope": "https://manage-gcc.office.com/.default"})
    token = response.json()["access_token"]
    assert_unauthorized(api.session.get(f"{api.root}/subscriptions/list", headers={"Authorization": f"Bearer {token}"}))


def test_revoked_tokens_get_401_until_refreshed(sim: Simulator, api: Api):
    assert api.get("subscriptions/list").status_code == 200
    sim.revoke_tokens()
    assert_unauthorized(api.get("subscriptions/list"))
    api.login()
    assert api.get("subscriptions/list").status_code == 200


def test_tenant_checks(sim: Simulator, api: Api):
    not_guid = api.session.get(f"{api.server.base_url}/api/v1.0/contoso.onmicrosoft.com/activity/feed/subscriptions/list")
    assert not_guid.status_code == 400 and error_code(not_guid) == "AF20013"
    other = str(uuid.uuid4())
    mismatch = api.session.get(f"{api.server.base_url}/api/v1.0/{other}/activity/feed/subscriptions/list")
    assert error_code(mismatch) == "AF20010"
    assert mismatch.json()["error"]["message"] == (
        f"The tenant ID passed in the URL ({other}) does not match the tenant ID passed in the access token ({TENANT}).")
    sim.tenant().licensed = False
    assert error_code(api.get("subscriptions/list")) == "AF20012"
    sim.tenant().audit_enabled = False  # auditing off: not AF20011 nor AF20012 (docs/tenant-setup.md)
    off = api.get("subscriptions/list")
    assert off.status_code == 400 and off.json() == {"error": {"message": (
        f"Microsoft.Office.Compliance.Audit.DataServiceException: Tenant {TENANT} does not exist.")}}


def test_token_without_activity_feed_read_is_af10001(sim: Simulator, api: Api):
    app_id = str(uuid.uuid4())
    sim.add_app(app_id, secret="s", roles=("ServiceHealth.Read",))
    api.login(client_id=app_id, secret="s")
    response = api.content()
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "AF10001",
        "message": "The permission set (ServiceHealth.Read) sent in the request did not include the expected permission ActivityFeed.Read."}


def test_throttling_per_publisher_identifier(sim: Simulator, api: Api):
    sim.set(throttle_limit_per_min=3, throttle_window_seconds=0.5, throttle_retry_after=30)
    publisher = str(uuid.uuid4())
    # Any case of the parameter name counts against the same key ("PublisherIdentifier").
    statuses = [api.get("subscriptions/list", **{name: publisher}).status_code
                for name in ("PublisherIdentifier", "publisherIdentifier", "PUBLISHERIDENTIFIER", "publisheridentifier")]
    assert statuses == [200, 200, 200, 403]
    throttled = api.get("subscriptions/list", PublisherIdentifier=publisher)
    assert throttled.headers["Retry-After"] == "30"
    assert throttled.json()["error"] == {"code": "AF429", "message": f"Too many requests. Method=ListSubscriptions, PublisherId={publisher}"}
    assert api.get("subscriptions/list", PublisherIdentifier=TENANT).status_code == 200  # another publisher's quota
    time.sleep(0.6)
    assert api.get("subscriptions/list", PublisherIdentifier=publisher).status_code == 200  # the window passed


def test_throttling_without_publisher_uses_the_shared_pool(sim: Simulator, api: Api):
    sim.set(throttle_limit_per_min=1, throttle_status=429)
    assert api.get("subscriptions/list").status_code == 200
    response = api.get("subscriptions/content", contentType="Audit.Exchange")
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "Too many requests. Method=GetContents, PublisherId=00000000-0000-0000-0000-000000000000"
    sim.reset_throttle()
    assert api.get("subscriptions/content", contentType="Audit.Exchange").status_code == 200


def test_random_af50000_and_503(sim: Simulator, api: Api):
    sim.set(af50000_rate=1.0)
    response = api.get("subscriptions/list")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "AF50000", "message": "An internal error occurred. Retry the request."}}
    sim.set(af50000_rate=0.0, http_503_rate=1.0)
    assert api.get("subscriptions/list").status_code == 503
    sim.set(http_503_rate=0.3, fault_seed=11)
    statuses = {api.get("subscriptions/list").status_code for _ in range(30)}
    assert statuses == {200, 503}


def test_scripted_faults_are_consumed_one_request_each(sim: Simulator, api: Api):
    sim.add_blob("Audit.Exchange", NOW - timedelta(minutes=5), [{"Id": "1"}])
    injection = sim.inject("content_list", code="AF429", times=2, headers={"Retry-After": "1"})
    first, second, third = (api.content() for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [403, 403, 200]
    assert first.headers["Retry-After"] == "1"
    assert first.json()["error"]["message"] == f"Too many requests. Method=GetContents, PublisherId={TENANT}"
    assert injection.remaining == 0 and injection.hits == 2

    sim.inject("content_get", status=500, code="AF50000")
    blob_url = third.json()[0]["contentUri"]
    assert api.get(blob_url).status_code == 500
    assert api.get(blob_url).status_code == 200

    sim.inject("subscription_start", status=400, code="AF20023")
    assert error_code(api.post("subscriptions/start", contentType="Audit.General")) == "AF20023"


def test_scripted_401_then_refresh(sim: Simulator, api: Api):
    sim.inject("subscription_list", status=401)
    assert_unauthorized(api.get("subscriptions/list"))
    assert api.get("subscriptions/list").status_code == 200


def test_scripted_body_and_delay(sim: Simulator, api: Api):
    blob = sim.add_blob("Audit.Exchange", NOW - timedelta(minutes=5), [{"Id": "1"}])
    sim.inject("content_get", status=200, body=b'[{"Id": "1", "trunc')
    assert api.get(blob.content_uri(api.server.base_url)).content == b'[{"Id": "1", "trunc'
    sim.inject("content_get", delay=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.session.get(blob.content_uri(api.server.base_url), timeout=0.3)
    time.sleep(0.8)  # let the delayed answer go before the server stops


def test_scripted_fault_with_a_predicate(sim: Simulator, api: Api):
    sim.inject("content_list", code="AF50000", times=None, when=lambda r: r.query.get("contenttype") == "Audit.General")
    assert api.content("Audit.General").status_code == 500
    assert api.content("Audit.General").status_code == 500
    assert api.content("Audit.Exchange").status_code == 200
    sim.clear_injections()
    assert api.content("Audit.General").status_code == 200


def test_inject_rejects_unknown_operations(sim: Simulator):
    with pytest.raises(ValueError, match="unknown operation"):
        sim.inject("list_content", code="AF50000")


@pytest.mark.parametrize(("path", "params", "first"), [
    # AF20013 before AF20020: a bad tenant and a bad content type
    ("/api/v1.0/not-a-guid/activity/feed/subscriptions/content", {"contentType": "Bad"}, "AF20013"),
    # AF20020 before AF20022/AF20055
    (f"/api/v1.0/{TENANT}/activity/feed/subscriptions/content", {"contentType": "Bad", "startTime": "x"}, "AF20020"),
    # AF20055 before AF20031
    (f"/api/v1.0/{TENANT}/activity/feed/subscriptions/content",
     {"contentType": "Audit.Exchange", "startTime": "2024-05-10T00:00:00", "endTime": "2024-05-12T00:00:00", "nextPage": "x"}, "AF20055"),
])
def test_validation_order(api: Api, path: str, params: dict[str, str], first: str):
    response = api.session.get(api.server.base_url + path, params=params)
    assert error_code(response) == first


def test_throttle_comes_before_subscription_and_window_checks(sim: Simulator, api: Api):
    sim.tenant().subscriptions.clear()
    sim.set(throttle_limit_per_min=1)
    assert error_code(api.content(startTime="bad", endTime="bad")) == "AF20022"
    assert error_code(api.content(startTime="bad", endTime="bad")) == "AF429"


def test_every_answer_has_date_and_json_content_type(sim: Simulator, api: Api, clock: FakeClock):
    sim.set(clock_skew=timedelta(minutes=-7))
    api.login()  # a token from the unskewed clock would not be valid yet (nbf beyond the 5-minute allowance)
    answers = [api.get("subscriptions/list"), api.content("Nope"), api.session.get(f"{api.server.base_url}/nowhere"),
               api.session.post(f"{api.root}/subscriptions/stop", params={"contentType": "Audit.Exchange"}),
               requests.get(f"{api.root}/subscriptions/list", verify=str(api.server.ca_path))]
    assert [a.status_code for a in answers] == [200, 400, 404, 200, 401]
    for answer in answers:
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
        assert answer.headers["Date"] == (NOW - timedelta(minutes=7)).strftime("%a, %d %b %Y %H:%M:%S GMT")


def test_wrong_method_is_405(api: Api):
    assert api.session.get(f"{api.root}/subscriptions/start").status_code == 405
    assert api.session.post(f"{api.root}/subscriptions/list").status_code == 405


def test_request_log_records_publisher_and_bearer(sim: Simulator, api: Api):
    sim.clear_requests()
    api.get("subscriptions/list", PublisherIdentifier=TENANT)
    api.content()
    logged = sim.requests
    assert [r.operation for r in logged] == ["subscription_list", "content_list"]
    assert all(r.query["publisheridentifier"] == TENANT for r in logged)
    assert all(r.bearer and r.headers["authorization"].startswith("Bearer ") for r in logged)
    assert logged[1].query["contenttype"] == "Audit.Exchange" and logged[1].status == 200 and logged[1].at == NOW


def test_unexpected_exception_is_a_500_envelope_and_recorded(sim: Simulator, api: Api):
    def broken_clock():  # type: ignore[no-untyped-def]
        raise RuntimeError("clock exploded")

    sim.set_clock(broken_clock)
    response = api.get("subscriptions/list")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "AF50000"
    assert "clock exploded" in response.json()["error"]["message"]
    assert len(sim.errors) == 1 and "RuntimeError" in sim.errors[0]
    sim.errors.clear()  # the fixture asserts no unexpected errors remain
