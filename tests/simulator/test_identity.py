"""Simulated Entra: msal's real code paths (secret, certificate, managed identity) and Entra's errors."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import jwt
import msal
import pytest
import requests

from simulator import Simulator, SimulatorServer, make_client_certificate

from .helpers import CLIENT, SECRET, TENANT, Api

SCOPE = ["https://manage.office.com/.default"]


def confidential(server: SimulatorServer, client_id: str, credential: object, tenant: str = TENANT) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(client_id, authority=f"{server.base_url}/{tenant}", client_credential=credential,
                                              instance_discovery=False)


def claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


def test_msal_client_secret_gets_a_token_the_api_accepts(sim: Simulator, server: SimulatorServer):
    result = confidential(server, CLIENT, SECRET).acquire_token_for_client(scopes=SCOPE)
    assert "access_token" in result, result
    payload = claims(result["access_token"])
    assert payload["aud"] == "https://manage.office.com"
    assert payload["tid"] == TENANT
    assert payload["roles"] == ["ActivityFeed.Read"]
    assert payload["appid"] == CLIENT
    assert payload["exp"] - payload["iat"] == 3599
    response = requests.get(f"{server.base_url}/api/v1.0/{TENANT}/activity/feed/subscriptions/list",
                            headers={"Authorization": f"Bearer {result['access_token']}"})
    assert response.status_code == 200
    assert [r.operation for r in sim.requests] == ["openid_configuration", "token", "subscription_list"]


@pytest.mark.parametrize("style", ["sha1_thumbprint_rs256", "public_certificate_ps256"])
def test_msal_certificate_credential(sim: Simulator, server: SimulatorServer, style: str):
    certificate = make_client_certificate()
    app_id = str(uuid.uuid4())
    sim.add_app(app_id, certificate_pem=certificate.certificate_pem)
    credential = ({"private_key": certificate.private_key_pem, "thumbprint": certificate.sha1_thumbprint}
                  if style == "sha1_thumbprint_rs256" else
                  {"private_key": certificate.private_key_pem, "public_certificate": certificate.certificate_pem})
    result = confidential(server, app_id, credential).acquire_token_for_client(scopes=SCOPE)
    assert "access_token" in result, result.get("error_description")
    assert claims(result["access_token"])["appidacr"] == "2"


def test_unregistered_certificate_is_refused(sim: Simulator, server: SimulatorServer):
    registered, other = make_client_certificate(), make_client_certificate()
    app_id = str(uuid.uuid4())
    sim.add_app(app_id, certificate_pem=registered.certificate_pem)
    result = confidential(server, app_id, {"private_key": other.private_key_pem, "thumbprint": other.sha1_thumbprint}).acquire_token_for_client(scopes=SCOPE)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    assert other.sha1_thumbprint in result["error_description"]


def _assertion(certificate_pem_key: str, sha1_hex: str, **overrides: object) -> str:
    now = int(time.time())
    payload = {"aud": "", "iss": CLIENT, "sub": CLIENT, "jti": str(uuid.uuid4()), "nbf": now, "exp": now + 600}
    payload.update(overrides)
    x5t = base64.urlsafe_b64encode(bytes.fromhex(sha1_hex)).decode().rstrip("=")
    return jwt.encode(payload, certificate_pem_key, algorithm="RS256", headers={"x5t": x5t})


@pytest.mark.parametrize(("change", "code"), [
    ({"aud": "https://login.microsoftonline.com/elsewhere/oauth2/v2.0/token"}, 700212),
    ({"iss": "11111111-1111-4111-8111-111111111111", "sub": "11111111-1111-4111-8111-111111111111"}, 700021),
    ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 4000}, 700024),
])
def test_client_assertion_is_checked(sim: Simulator, server: SimulatorServer, change: dict[str, object], code: int):
    certificate = make_client_certificate()
    sim.app().add_certificate(certificate.certificate_pem)
    endpoint = f"{server.base_url}/{TENANT}/oauth2/v2.0/token"
    assertion = _assertion(certificate.private_key_pem, certificate.sha1_thumbprint, **{"aud": endpoint, **change})
    response = requests.post(endpoint, data={
        "grant_type": "client_credentials", "client_id": CLIENT, "scope": SCOPE[0],
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
    })
    assert response.status_code == 401
    assert response.json()["error_codes"] == [code]
    # And a correct assertion passes, so the failure above is the one change.
    good = _assertion(certificate.private_key_pem, certificate.sha1_thumbprint, aud=endpoint)
    ok = requests.post(endpoint, data={"grant_type": "client_credentials", "client_id": CLIENT, "scope": SCOPE[0],
                                       "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                                       "client_assertion": good})
    assert ok.status_code == 200, ok.text


def test_wrong_secret_is_aadsts7000215_with_http_401(server: SimulatorServer):
    result = confidential(server, CLIENT, "not-the-secret").acquire_token_for_client(scopes=SCOPE)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    response = requests.post(f"{server.base_url}/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT, "client_secret": "nope", "scope": SCOPE[0]})
    assert response.status_code == 401
    body = response.json()
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)


def test_unknown_app_is_aadsts700016(server: SimulatorServer):
    result = confidential(server, str(uuid.uuid4()), SECRET).acquire_token_for_client(scopes=SCOPE)
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


def test_unknown_tenant_is_aadsts90002(server: SimulatorServer):
    other = str(uuid.uuid4())
    with pytest.raises(ValueError, match="Unable to get authority configuration"):  # msal's OpenID discovery fails first
        confidential(server, CLIENT, SECRET, tenant=other)
    discovery = requests.get(f"{server.base_url}/{other}/v2.0/.well-known/openid-configuration")
    assert discovery.status_code == 400 and discovery.json()["error_codes"] == [90002]
    response = requests.post(f"{server.base_url}/{other}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET, "resource": "https://manage.office.com"})
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_scope_must_be_a_known_resource_with_default(server: SimulatorServer):
    url = f"{server.base_url}/{TENANT}/oauth2/v2.0/token"
    base = {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}
    assert requests.post(url, data={**base, "scope": "https://manage.office.com/ActivityFeed.Read"}).json()["error_codes"] == [1002012]
    assert requests.post(url, data={**base, "scope": "https://unknown.example.com/.default"}).json()["error_codes"] == [500011]
    assert requests.post(url, data={**base}).json()["error_codes"] == [900144]


def test_v1_endpoint_with_domain_authority_answers_strings(sim: Simulator, server: SimulatorServer, clock):
    response = requests.post(f"{server.base_url}/contoso.onmicrosoft.com/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET, "resource": "https://manage.office.com"})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == "3599" and body["resource"] == "https://manage.office.com"
    assert int(body["expires_on"]) == int(clock().timestamp()) + 3599
    assert claims(body["access_token"])["tid"] == TENANT


def test_token_lifetime_and_roles_are_configurable(sim: Simulator, api: Api):
    sim.set(token_lifetime_seconds=120)
    app_id = str(uuid.uuid4())
    sim.add_app(app_id, secret="s2", roles=("ActivityFeed.Read", "ActivityFeed.ReadDlp"))
    payload = claims(api.token(client_id=app_id, secret="s2"))
    assert payload["exp"] - payload["iat"] == 120
    assert payload["roles"] == ["ActivityFeed.Read", "ActivityFeed.ReadDlp"]


def test_openid_configuration_points_at_the_simulator(server: SimulatorServer):
    for path in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration"):
        response = requests.get(f"{server.base_url}/{TENANT}/{path}")
        assert response.status_code == 200
        assert response.json()["token_endpoint"].startswith(f"{server.base_url}/{TENANT}/oauth2/")


@pytest.mark.parametrize("user_assigned", [True, False])
def test_msal_managed_identity_app_service_protocol(sim: Simulator, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch,
                                                    user_assigned: bool):
    identity = sim.add_managed_identity(str(uuid.uuid4()) if user_assigned else None)
    monkeypatch.setenv("IDENTITY_ENDPOINT", server.managed_identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", sim.identity_header)
    managed = msal.UserAssignedManagedIdentity(client_id=identity.client_id) if user_assigned else msal.SystemAssignedManagedIdentity()
    with requests.Session() as session:
        result = msal.ManagedIdentityClient(managed, http_client=session).acquire_token_for_client(resource="https://manage.office.com")
    assert "access_token" in result, result
    payload = claims(result["access_token"])
    assert payload["appid"] == identity.client_id and payload["tid"] == TENANT
    request = next(r for r in sim.requests if r.operation == "msi_token")
    assert request.query["api-version"] == "2019-08-01"
    assert request.headers["x-identity-header"] == sim.identity_header
    assert ("client_id" in request.query) is user_assigned


def test_managed_identity_endpoint_errors(sim: Simulator, server: SimulatorServer):
    url = server.managed_identity_endpoint
    params = {"api-version": "2019-08-01", "resource": "https://manage.office.com"}
    assert requests.get(url, params=params, headers={"X-IDENTITY-HEADER": "wrong"}).status_code == 401
    missing = requests.get(url, params={**params, "client_id": str(uuid.uuid4())}, headers={"X-IDENTITY-HEADER": sim.identity_header})
    assert missing.status_code == 400 and "No User Assigned" in missing.json()["message"]
    sim.add_managed_identity(None)
    ok = requests.get(url, params=params, headers={"X-IDENTITY-HEADER": sim.identity_header})
    assert ok.status_code == 200 and int(ok.json()["expires_on"]) > 0


def test_x5t_s256_thumbprint_header_matches_sha256_of_the_der(sim: Simulator):
    certificate = make_client_certificate()
    app = sim.add_app(str(uuid.uuid4()), certificate_pem=certificate.certificate_pem)
    assert bytes.fromhex(certificate.sha256_thumbprint) in app.certificates_sha256
    assert hashlib.sha1(bytes.fromhex("00")).digest() not in app.certificates_sha1  # noqa: S324
