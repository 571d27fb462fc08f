"""Tokens for the Management Activity API, through msal (secret, certificate, managed identity).

One msal application per process holds the token cache, so a warm Functions worker reuses its
token across invocations. Never logs tokens, secrets or key material.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests

from .errors import AuthError, ConfigError
from .settings import ClientCertificate, ClientSecret, ManagedIdentity, Settings

_MICROSOFT_LOGIN_HOSTS = {"login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn"}
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


class TokenProvider(Protocol):
    """Gives a bearer token for the API; `force_refresh` after a 401 skips the cache."""

    def token(self, *, force_refresh: bool = False) -> str: ...


def split_pem(pem: str) -> tuple[str, str]:
    """(private key PEM, certificate PEM) from one PEM text holding both (Key Vault's PEM format)."""
    key = cert = ""
    for match in _PEM_BLOCK.finditer(pem):
        label = match.group(1)
        if label.endswith("PRIVATE KEY") and not key:
            if label == "ENCRYPTED PRIVATE KEY":
                raise ConfigError(["the M365 client certificate's private key is encrypted; export it without a password"])
            key = match.group(0)
        elif label == "CERTIFICATE" and not cert:
            cert = match.group(0)
    if not key or not cert:
        raise ConfigError(["the M365 client certificate must be PEM text holding both the private key and the certificate"])
    return key, cert


def _failure(result: dict[str, Any], what: str) -> AuthError:  # msal's result: JSON as Any
    description = str(result.get("error_description") or "").strip().splitlines()
    first = description[0] if description else "no description"
    correlation = result.get("correlation_id")
    suffix = f" (correlation_id {correlation})" if correlation else ""
    return AuthError(f"{what} failed: {result.get('error', 'unknown_error')}: {first}{suffix}")


class MsalClientCredentialProvider:
    """Client-credentials flow with a secret or a certificate (Microsoft identity platform:
    "Microsoft identity platform and the OAuth 2.0 client credentials flow")."""

    def __init__(self, settings: Settings, tenant_id: str, credential: ClientSecret | ClientCertificate,
                 http_client: requests.Session | None = None) -> None:
        client_credential: str | dict[str, str]
        if isinstance(credential, ClientCertificate):
            key, cert = split_pem(credential.pem.reveal())
            # msal ≥ 1.35 derives the SHA-256 thumbprint (x5t#S256) from the public certificate.
            client_credential = {"private_key": key, "public_certificate": cert}
        else:
            client_credential = credential.secret.reveal()
        self._settings = settings
        self._tenant_id = tenant_id
        self._client_id = credential.client_id
        self._credential = client_credential
        self._http_client = http_client
        self._scope = settings.scope
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        # Built on first use: msal fetches the authority's OpenID configuration when it is
        # constructed, and starting a worker (or indexing an archived blob) should not need the network.
        if self._app is not None:
            return self._app
        settings = self._settings
        host = (urlsplit(settings.login_url).hostname or "").lower()
        try:
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                authority=f"{settings.login_url}/{self._tenant_id}",
                client_credential=self._credential,
                # Instance discovery asks Microsoft's hosts about the authority: only for Microsoft's
                # own login hosts (a simulator or proxy would be refused).
                instance_discovery=host in _MICROSOFT_LOGIN_HOSTS,
                http_client=self._http_client,
                token_cache=msal.TokenCache(),
            )
        except ValueError as exc:  # msal validates key/cert shape and the authority URL
            raise AuthError(f"cannot build the msal client: {exc}") from exc
        except requests.RequestException as exc:
            raise AuthError(f"cannot reach the login host {settings.login_url}: {exc.__class__.__name__}") from exc
        return self._app

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            app = self._application()
            if force_refresh:
                app.remove_tokens_for_client()
            try:
                result = app.acquire_token_for_client(scopes=[self._scope])
            except requests.RequestException as exc:
                raise AuthError(f"token request failed: cannot reach the login host ({exc.__class__.__name__})") from exc
            except ValueError as exc:
                raise AuthError(f"token request failed: {exc}") from exc
        if "access_token" not in result:
            raise _failure(result, "token request")
        return str(result["access_token"])


class MsalManagedIdentityProvider:
    """The Function App's managed identity, granted ActivityFeed.Read as an app role (docs/deploy.md)."""

    def __init__(self, settings: Settings, credential: ManagedIdentity, http_client: requests.Session | None = None) -> None:
        identity: object = (
            msal.UserAssignedManagedIdentity(client_id=credential.client_id) if credential.client_id
            else msal.SystemAssignedManagedIdentity()
        )
        self._resource = settings.scope.removesuffix("/.default")
        self._lock = threading.Lock()
        self._app = msal.ManagedIdentityClient(identity, http_client=http_client or requests.Session(),
                                               token_cache=msal.TokenCache())

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            try:
                # A claims challenge is msal's documented way to bypass its cache for managed identity.
                result = self._app.acquire_token_for_client(
                    resource=self._resource, claims_challenge='{"access_token":{}}' if force_refresh else None)
            except requests.RequestException as exc:
                raise AuthError(f"managed identity token request failed ({exc.__class__.__name__})") from exc
            except msal.ManagedIdentityError as exc:
                raise AuthError(f"managed identity is not available here: {exc}") from exc
        if "access_token" not in result:
            raise _failure(result, "managed identity token request")
        return str(result["access_token"])


def build_token_provider(settings: Settings) -> TokenProvider:
    """The provider for the configured M365_AUTH mode; ConfigError when its credentials are incomplete
    (Settings.api_credentials) or the certificate's PEM is unusable."""
    tenant_id, credential = settings.api_credentials()
    if isinstance(credential, ManagedIdentity):
        return MsalManagedIdentityProvider(settings, credential)
    return MsalClientCredentialProvider(settings, tenant_id, credential)
