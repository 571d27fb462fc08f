import pytest

from collector.errors import ConfigError
from collector.settings import CLOUDS, DEFAULT_CONTENT_TYPES, Settings

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
CLIENT = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
BASE = {"M365_TENANT_ID": TENANT, "M365_CLIENT_ID": CLIENT, "M365_CLIENT_SECRET": "s3cr3t-value"}


def test_defaults():
    s = Settings.from_env(BASE)
    assert s.auth == "secret"
    assert s.publisher_id == TENANT
    assert s.content_types == DEFAULT_CONTENT_TYPES
    assert s.api_url == "https://manage.office.com"
    assert s.scope == "https://manage.office.com/.default"
    assert s.storage_connection_string.reveal() == "UseDevelopmentStorage=true"


def test_secrets_never_show():
    s = Settings.from_env({**BASE, "AUDIT_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=topsecretkey=="})
    text = repr(s) + str(s)
    assert "s3cr3t-value" not in text
    assert "topsecretkey" not in text


@pytest.mark.parametrize(
    ("cloud", "api", "login"),
    [("commercial", "https://manage.office.com", "https://login.microsoftonline.com"),
     ("gcc", "https://manage-gcc.office.com", "https://login.microsoftonline.com"),
     ("gcchigh", "https://manage.office365.us", "https://login.microsoftonline.us"),
     ("dod", "https://manage.protection.apps.mil", "https://login.microsoftonline.us")],
)
def test_clouds(cloud, api, login):
    s = Settings.from_env({**BASE, "M365_CLOUD": cloud.upper()})
    assert (s.api_url, s.login_url, s.scope) == (api, login, f"{api}/.default")
    assert CLOUDS[cloud].api_url == api


def test_overrides_keep_the_clouds_scope():
    s = Settings.from_env({**BASE, "M365_API_URL": "https://127.0.0.1:9443/", "M365_LOGIN_URL": "https://127.0.0.1:9443",
                                 "M365_ALLOW_CUSTOM_HOSTS": "true"})
    assert s.api_url == "https://127.0.0.1:9443"
    assert s.scope == "https://manage.office.com/.default"


@pytest.mark.parametrize(
    ("env", "auth"),
    [({"M365_CLIENT_SECRET": "x"}, "secret"),
     ({"M365_CLIENT_SECRET": ""}, "managed_identity"),
     ({"M365_CLIENT_SECRET": "", "M365_CLIENT_CERTIFICATE":
       "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\ny\n-----END CERTIFICATE-----"},
      "certificate")],
)
def test_auth_is_inferred(env, auth):
    assert Settings.from_env({**BASE, **env}).auth == auth


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"M365_TENANT_ID": "contoso", "M365_AUTH": "password", "M365_CLOUD": "mars",
                           "M365_CONTENT_TYPES": "Audit.Exchange,Audit.Nope", "M365_API_URL": "http://x",
                           "COLLECT_OVERLAP_MINUTES": "-3", "QUERY_MAX_RANGE_DAYS": "many"})
    problems = caught.value.problems
    for name in ("M365_TENANT_ID", "M365_AUTH", "M365_CLOUD", "M365_CONTENT_TYPES", "M365_API_URL",
                 "COLLECT_OVERLAP_MINUTES", "QUERY_MAX_RANGE_DAYS"):
        assert any(name in p for p in problems), (name, problems)


def test_secret_and_certificate_together_need_an_explicit_choice():
    env = {**BASE, "M365_CLIENT_CERTIFICATE":
           "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\ny\n-----END CERTIFICATE-----"}
    with pytest.raises(ConfigError, match="choose one with M365_AUTH"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "M365_AUTH": "certificate"}).auth == "certificate"


def test_certificate_file_that_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match="M365_CLIENT_CERTIFICATE_PATH cannot be read"):
        Settings.from_env({**BASE, "M365_CLIENT_SECRET": "", "M365_CLIENT_CERTIFICATE_PATH": str(tmp_path / "missing.pem")})


def test_query_only_processes_need_no_api_settings():
    s = Settings.from_env({})
    assert s.tenant_id == ""
    with pytest.raises(ConfigError, match="M365_TENANT_ID is required"):
        s.api_credentials()


def test_content_types_are_canonicalized_and_deduplicated():
    s = Settings.from_env({**BASE, "M365_CONTENT_TYPES": "audit.exchange, DLP.ALL,Audit.Exchange"})
    assert s.content_types == ("Audit.Exchange", "DLP.All")


GUID_HINT = "a GUID such as 00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(("env", "problems"), [
    ({}, [f"M365_TENANT_ID is required ({GUID_HINT})"]),
    ({"M365_AUTH": "secret"}, [f"M365_TENANT_ID is required ({GUID_HINT})", f"M365_CLIENT_ID is required ({GUID_HINT})",
                               "M365_AUTH=secret needs M365_CLIENT_SECRET"]),
    ({"M365_TENANT_ID": TENANT, "M365_CLIENT_ID": CLIENT, "M365_AUTH": "certificate"},
     ["M365_AUTH=certificate needs M365_CLIENT_CERTIFICATE_PATH or M365_CLIENT_CERTIFICATE (PEM key + certificate)"]),
])
def test_api_credentials_are_required_when_the_token_provider_is_built(env, problems):
    from collector.bootstrap import Services

    services = Services(Settings.from_env(env))  # reading the settings needs no credentials
    services.query  # noqa: B018 - nor does the query side
    with pytest.raises(ConfigError) as caught:
        services.api  # noqa: B018
    assert caught.value.problems == problems


def test_api_credentials_are_typed_per_mode():
    from collector.settings import ClientSecret, ManagedIdentity

    tenant, credential = Settings.from_env(BASE).api_credentials()
    assert tenant == TENANT and isinstance(credential, ClientSecret)
    assert credential.client_id == CLIENT and credential.secret.reveal() == "s3cr3t-value"
    _, identity = Settings.from_env({"M365_TENANT_ID": TENANT, "AZURE_CLIENT_ID": "storage-identity"}).api_credentials()
    assert identity == ManagedIdentity("storage-identity")  # the storage identity, unless M365_CLIENT_ID names another


def test_a_client_id_that_is_set_must_be_a_guid_even_for_the_query_api():
    with pytest.raises(ConfigError, match="M365_CLIENT_ID must be a GUID"):
        Settings.from_env({"M365_CLIENT_ID": "my-app"})
    assert Settings.from_env({"M365_CLIENT_ID": CLIENT.upper()}).client_id == CLIENT


def test_collect_without_a_credential_fails_at_once_with_one_line(monkeypatch, capsys):
    from collector.cli import EXIT_CONFIG, main

    monkeypatch.setenv("M365_TENANT_ID", TENANT)
    monkeypatch.setenv("M365_AUTH", "secret")
    # Nothing listens here: a storage request before the credential check would hang in retries.
    monkeypatch.setenv("AUDIT_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                       "AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/a;QueueEndpoint=http://127.0.0.1:9/a;"
                       "TableEndpoint=http://127.0.0.1:9/a")
    assert main(["collect", "--quiet"]) == EXIT_CONFIG
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"auditkeep: 2 configuration errors: M365_CLIENT_ID is required ({GUID_HINT}); "
                     "M365_AUTH=secret needs M365_CLIENT_SECRET"]


@pytest.mark.parametrize("name", ["M365_API_URL", "M365_LOGIN_URL"])
def test_a_host_outside_the_cloud_is_refused_unless_custom_hosts_are_allowed(name):
    """The token's scope stays the cloud's: sending it to another host needs an explicit opt-in (issue 12)."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, name: "https://collector.example.net"})
    (problem,) = caught.value.problems
    assert name in problem and "'collector.example.net'" in problem and "M365_ALLOW_CUSTOM_HOSTS=true" in problem
    assert getattr(Settings.from_env({**BASE, name: "https://collector.example.net", "M365_ALLOW_CUSTOM_HOSTS": "true"}),
                   name.split("_")[1].lower() + "_url") == "https://collector.example.net"


def test_another_clouds_host_names_the_cloud_to_choose():
    with pytest.raises(ConfigError, match=r"M365_API_URL host 'manage\.office365\.us' belongs to the 'gcchigh' cloud"):
        Settings.from_env({**BASE, "M365_API_URL": "https://manage.office365.us"})
    assert Settings.from_env({**BASE, "M365_CLOUD": "gcchigh", "M365_API_URL": "https://manage.office365.us/"}).api_url \
        == "https://manage.office365.us"


def test_allow_custom_hosts_must_be_a_boolean():
    with pytest.raises(ConfigError, match="M365_ALLOW_CUSTOM_HOSTS must be true or false, got 'maybe'"):
        Settings.from_env({**BASE, "M365_ALLOW_CUSTOM_HOSTS": "maybe"})
