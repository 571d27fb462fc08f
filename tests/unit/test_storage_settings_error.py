"""bootstrap.storage_settings_error: which storage failures are configuration errors, and what they say."""

from __future__ import annotations

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, ServiceRequestError

from collector.bootstrap import storage_settings_error
from collector.settings import Settings

MI = Settings.from_env({"AUDIT_STORAGE_ACCOUNT_NAME": "auditkeepdata", "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555"})
KEY = Settings.from_env({})


def forbidden(code: str) -> HttpResponseError:
    error = HttpResponseError(message=f"This request is not authorized. ErrorCode:{code}")
    error.status_code, error.error_code = 403, code  # as the storage SDKs set them
    return error


def test_a_managed_identity_without_its_role_is_told_which_roles_to_grant():
    problem = storage_settings_error(forbidden("AuthorizationPermissionMismatch"), MI, "queue")
    assert problem is not None
    (line,) = problem.problems
    assert line.startswith("storage at https://auditkeepdata.queue.core.windows.net (AUDIT_STORAGE_ACCOUNT_NAME")
    assert "11111111-2222-3333-4444-555555555555 (AZURE_CLIENT_ID)" in line and "Data Contributor roles" in line


def test_a_refused_key_a_missing_credential_and_an_unreachable_host_are_configuration_errors():
    assert "copy the key again" in str(storage_settings_error(forbidden("AuthenticationFailed"), KEY, "blob"))
    no_identity = storage_settings_error(ClientAuthenticationError("ManagedIdentityCredential unavailable"), MI, "blob")
    assert "no usable credential for storage at https://auditkeepdata.blob.core.windows.net" in str(no_identity)
    unreachable = storage_settings_error(ServiceRequestError("Failed to resolve 'auditkeepdata.table.core.windows.net'"),
                                         MI, "table")
    assert "cannot be reached: Failed to resolve" in str(unreachable) and "Azurite" not in str(unreachable)


def test_other_storage_errors_are_not_configuration_errors():
    assert storage_settings_error(ResourceNotFoundError("gone"), KEY, "table") is None
    server = HttpResponseError(message="busy")
    server.status_code = 503
    assert storage_settings_error(server, KEY, "blob") is None
