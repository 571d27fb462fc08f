"""Each M365_AUTH mode through our token providers and msal's real code paths, against the simulator."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from collector.auth import build_token_provider
from collector.errors import AuthError, ConfigError
from collector.settings import Settings
from simulator import make_client_certificate

from .world import START, World, record


def collect_one(world: World, **env: str) -> int:
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1), [record(1, START - timedelta(hours=1))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint", **env)
    from collector.cli import run_cycle

    assert run_cycle(services, workers=1, quiet=True)
    return len(list(services.index.scan("t", START - timedelta(days=1), START)))


def test_certificate_from_a_pem_file(world: World, tmp_path):
    certificate = make_client_certificate()
    world.sim.app().add_certificate(certificate.certificate_pem)
    pem = tmp_path / "auditkeep.pem"
    pem.write_text(certificate.combined_pem)
    assert collect_one(world, M365_CLIENT_SECRET="", M365_CLIENT_CERTIFICATE_PATH=str(pem)) == 1
    assert world.sim.issued_tokens == 1


def test_certificate_as_pem_text_as_a_key_vault_reference_delivers_it(world: World):
    certificate = make_client_certificate()
    world.sim.app().add_certificate(certificate.certificate_pem)
    assert collect_one(world, M365_AUTH="certificate", M365_CLIENT_CERTIFICATE=certificate.combined_pem) == 1


def test_an_unregistered_certificate_is_refused_with_the_entra_error(world: World):
    certificate = make_client_certificate()  # never uploaded to the app registration
    settings = Settings.from_env({**world.env, "M365_CLIENT_SECRET": "", "M365_CLIENT_CERTIFICATE": certificate.combined_pem})
    with pytest.raises(AuthError, match="AADSTS"):
        build_token_provider(settings).token()


def test_managed_identity_through_the_app_service_endpoint(world: World, monkeypatch: pytest.MonkeyPatch):
    client_id = str(uuid.uuid4())
    world.sim.add_managed_identity(client_id)
    # What the Functions host sets for msal's ManagedIdentityClient (App Service protocol).
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{world.server.base_url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", world.sim.identity_header)
    assert collect_one(world, M365_AUTH="managed_identity", M365_CLIENT_ID=client_id, M365_CLIENT_SECRET="") == 1
    assert any(r.operation == "msi_token" for r in world.sim.requests)


def test_managed_identity_tokens_are_cached_per_process(tmp_path, monkeypatch: pytest.MonkeyPatch):
    # Real clock here: the App Service protocol's expires_on is absolute, so a fake clock in the
    # past would make every token look expired to msal.
    from simulator import Simulator, SimulatorServer

    from .world import TENANT

    client_id = str(uuid.uuid4())
    sim = Simulator(TENANT, subscribed=True)
    sim.add_managed_identity(client_id)
    with SimulatorServer(sim, state_dir=tmp_path / "sim") as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{server.base_url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", sim.identity_header)
        settings = Settings.from_env({"M365_TENANT_ID": TENANT, "M365_AUTH": "managed_identity", "M365_CLIENT_ID": client_id,
                                      "M365_API_URL": server.base_url, "M365_LOGIN_URL": server.base_url,
                                      "M365_ALLOW_CUSTOM_HOSTS": "true"})
        provider = build_token_provider(settings)
        first = provider.token()
        assert provider.token() == first
        assert provider.token(force_refresh=True)
    assert [r.operation for r in sim.requests if r.operation == "msi_token"] == ["msi_token", "msi_token"]


def test_managed_identity_without_an_endpoint_is_a_clear_auth_error(world: World, monkeypatch: pytest.MonkeyPatch):
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env({**world.env, "M365_AUTH": "managed_identity", "M365_CLIENT_SECRET": ""})
    # Outside Azure msal falls back to IMDS (169.254.169.254), which is not reachable here: either
    # way the caller gets an AuthError, not a stack trace.
    monkeypatch.setenv("IDENTITY_ENDPOINT", "https://127.0.0.1:9/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "x")
    with pytest.raises(AuthError, match="managed identity"):
        build_token_provider(settings).token()


def test_missing_credentials_are_reported_before_any_request():
    settings = Settings.from_env({"M365_AUTH": "secret"})
    with pytest.raises(ConfigError) as caught:
        build_token_provider(settings)
    assert any("M365_TENANT_ID" in p for p in caught.value.problems)
    assert any("M365_CLIENT_SECRET" in p for p in caught.value.problems)
