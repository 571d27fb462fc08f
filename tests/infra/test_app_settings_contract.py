"""The contract between the template and the code: the function app's app settings are exactly
what collector/settings.py and function_app.py's bindings read in Azure, plus a short list of
platform settings, and the credential arrives only as a Key Vault reference."""

from __future__ import annotations

import re

from collector import settings

from .bicep import MODULES, parse, setting_names, strings

FUNCTION_APP = MODULES / "functionapp.bicep"

# Settings read by the Functions platform itself, not by our code.
PLATFORM_SETTINGS = {
    # Host storage by identity (no connection string, no key).
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    # Application Insights with Entra-authenticated ingestion.
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    # HTTP streams of the Python worker (function_app.py's FastAPI routes).
    "PYTHON_ENABLE_INIT_INDEXING",
}
# Identity-based connection of the queue trigger (functions-reference: <CONNECTION>__queueServiceUri ...).
QUEUE_CONNECTION_SETTINGS = {f"{settings.QUEUE_CONNECTION}__{part}" for part in ("queueServiceUri", "credential", "clientId")}
BINDING_SETTINGS = {name for name in settings.BINDING_SETTINGS if name != settings.QUEUE_CONNECTION} | QUEUE_CONNECTION_SETTINGS
# Deprecated or rejected on Flex Consumption, or a key in disguise: never set.
NEVER_SET = {
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "AzureWebJobsStorage", "AUDIT_STORAGE_CONNECTION_STRING",
    "M365_CLIENT_CERTIFICATE_PATH", settings.QUEUE_CONNECTION,
}
CREDENTIAL_SETTINGS = {"certificate": "M365_CLIENT_CERTIFICATE", "secret": "M365_CLIENT_SECRET"}


def _settings_vars() -> dict[str, object]:
    """The variables that the appSettings union() is made of, by name."""
    variables = parse(FUNCTION_APP)["variables"]
    union = variables["appSettings"]["value"]["function"]
    assert union["type"] == "union"
    return {name: variables[name]["value"] for name in union["parameters"].values()}


def _unconditional() -> set[str]:
    # A variable whose value is a plain object literal is set in every deployment.
    found: set[str] = set()
    for value in _settings_vars().values():
        if isinstance(value, dict) and not ({"operator", "function"} & set(value)):
            found |= set(value)
    return found


def _all_names() -> set[str]:
    return set().union(*(setting_names(v) for v in _settings_vars().values()))


def test_settings_reach_the_site() -> None:
    text = FUNCTION_APP.read_text()
    assert re.search(r"appSettings: \[for setting in items\(appSettings\): \{", text)


def test_template_sets_only_what_the_code_and_platform_read() -> None:
    allowed = set(settings.ENVIRONMENT_VARIABLES) | BINDING_SETTINGS | PLATFORM_SETTINGS
    unexpected = _all_names() - allowed
    assert not unexpected, f"the template sets settings nothing reads: {sorted(unexpected)}"


def test_every_setting_required_in_azure_is_always_set() -> None:
    always = _unconditional()
    missing = set(settings.AZURE_REQUIRED_SETTINGS) - always
    assert not missing, f"required in Azure but not set by the template: {sorted(missing)}"
    assert not BINDING_SETTINGS - always, sorted(BINDING_SETTINGS - always)
    assert not PLATFORM_SETTINGS - always, sorted(PLATFORM_SETTINGS - always)
    assert "M365_CLIENT_ID" in always  # the app registration, or the identity in managed_identity mode


def test_nothing_forbidden_is_set() -> None:
    assert not (_all_names() & NEVER_SET), sorted(_all_names() & NEVER_SET)


def test_credential_is_a_key_vault_reference_chosen_by_auth_mode() -> None:
    variables = parse(FUNCTION_APP)["variables"]
    assert variables["credentialReference"]["value"] == "@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${m365CredentialName})"
    by_name = _settings_vars()
    for mode, setting in CREDENTIAL_SETTINGS.items():
        holders = [name for name, value in by_name.items() if setting in setting_names(value)]
        assert len(holders) == 1, f"{setting} must be set by exactly one variable"
        value = by_name[holders[0]]
        assert setting not in _unconditional(), f"{setting} must depend on the auth mode"
        # The guard names its mode, and the value is the Key Vault reference, nothing else.
        assert mode in strings(value) and "credentialReference" in strings(value), holders[0]
    auth_modes = next(d["argument"] for d in parse(FUNCTION_APP)["parameters"]["m365AuthMode"]["decorators"] if d["type"] == "allowed")
    assert set(auth_modes) == set(settings.AUTH_MODES)


def test_managed_identity_mode_uses_the_identity_as_client() -> None:
    text = FUNCTION_APP.read_text()
    assert "M365_CLIENT_ID: m365AuthMode == 'managed_identity' ? identityClientId :" in text
    assert "AZURE_CLIENT_ID: identityClientId" in text
    for name in ("AzureWebJobsStorage__clientId", f"{settings.QUEUE_CONNECTION}__clientId"):
        assert f"{name}: identityClientId" in text
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'" in text


def test_http_streams_are_enabled_for_the_python_worker() -> None:
    # function_app.py's routes take and return FastAPI types (HTTP streams): without this setting
    # the worker cannot index them and the app has no HTTP functions.
    assert "PYTHON_ENABLE_INIT_INDEXING: '1'" in FUNCTION_APP.read_text()
    assert "PYTHON_ENABLE_INIT_INDEXING" in _unconditional()


def test_identity_connections_use_the_managed_identity() -> None:
    text = FUNCTION_APP.read_text()
    for prefix in ("AzureWebJobsStorage", settings.QUEUE_CONNECTION):
        assert f"{prefix}__credential: 'managedidentity'" in text
    assert "AUDIT_STORAGE__queueServiceUri: 'https://${dataStorageAccountName}.queue.${storageSuffix}'" in text
    assert "AUDIT_STORAGE_ENDPOINT_SUFFIX: storageSuffix" in text
    assert "var storageSuffix = environment().suffixes.storage" in text


def test_enumerations_match_the_code() -> None:
    main = parse(MODULES.parent / "main.bicep")["parameters"]

    def allowed(param: str) -> set[str]:
        return set(next(d["argument"] for d in main[param]["decorators"] if d["type"] == "allowed"))

    assert allowed("m365Cloud") == set(settings.CLOUDS)
    assert allowed("m365ContentTypes") == set(settings.CONTENT_TYPES)
    assert allowed("m365AuthMode") == set(settings.AUTH_MODES)
    assert main["m365ContentTypes"]["default"] == list(settings.DEFAULT_CONTENT_TYPES)
    assert main["collectSchedule"]["default"] == "0 */5 * * * *"
    assert main["archiveContainerName"]["default"] == settings.Settings.archive_container
    assert main["queueName"]["default"] == settings.Settings.queue_name
    assert main["tablePrefix"]["default"] == settings.Settings.table_prefix
    assert main["queryMaxRangeDays"]["default"] == settings.Settings.query_max_range_days
    assert main["queryMaxExportRows"]["default"] == settings.Settings.query_max_export_rows
