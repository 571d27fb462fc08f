"""Simulated Microsoft Entra ID: OpenID discovery, the token endpoints, and the App Service
managed-identity endpoint — enough for msal's real code paths (docs/api-behaviour.md "Tokens",
"Surface").

msal's ConfidentialClientApplication (instance_discovery=False) reads
`{authority}/v2.0/.well-known/openid-configuration`, then POSTs client credentials to the
`token_endpoint` it names. ManagedIdentityClient inside App Service/Functions GETs
`$IDENTITY_ENDPOINT?api-version=2019-08-01&resource=…[&client_id=…]` with `X-IDENTITY-HEADER`
and reads `access_token` + `expires_on` (epoch seconds, a string) — see msal/managed_identity.py.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import parse_qsl

import jwt

from . import tokens
from .state import KNOWN_RESOURCES, App, Simulator, Tenant
from .timefmt import epoch_seconds
from .wire import Request, Response, json_response

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_ALGORITHMS = ("RS256", "PS256")  # msal signs RS256 with x5t, PS256 with x5t#S256


def base_url(sim: Simulator, request: Request) -> str:
    return f"https://{request.host}" if request.host else sim.base_url


# ---------------------------------------------------------------------------- Entra error shape
def entra_error(sim: Simulator, request: Request, status: int, error: str, code: int, description: str) -> Response:
    """Entra's token-endpoint error body ("Tokens"): error, error_description with trace lines, error_codes …"""
    now = sim.now()
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id, correlation_id = str(uuid.uuid4()), request.header("client-request-id") or str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{base_url(sim, request)}/error?code={code}",
    }
    return json_response(status, body, _no_cache())


def _no_cache() -> list[tuple[str, str]]:
    return [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"), ("x-ms-request-id", str(uuid.uuid4()))]


def unknown_tenant(sim: Simulator, request: Request, name: str) -> Response:
    return entra_error(
        sim, request, 400, "invalid_request", 90002,
        f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into the correct "
        "cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.",
    )


# ---------------------------------------------------------------------------- discovery
def openid_configuration(sim: Simulator, request: Request, tenant_name: str, v2: bool) -> Response:
    tenant = sim.resolve_tenant(tenant_name)
    if tenant is None:
        return unknown_tenant(sim, request, tenant_name)
    root = f"{base_url(sim, request)}/{tenant.tenant_id}"
    suffix = "/v2.0" if v2 else ""
    config = {
        "token_endpoint": f"{root}/oauth2{suffix}/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{root}/discovery{suffix}/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0" if v2 else f"https://sts.windows.net/{tenant.tenant_id}/",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2{suffix}/authorize",
        "device_authorization_endpoint": f"{root}/oauth2{suffix}/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2{suffix}/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "at_hash", "c_hash"],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    return json_response(200, config, _no_cache())


# ---------------------------------------------------------------------------- token endpoint
def token(sim: Simulator, request: Request, tenant_name: str, v2: bool) -> Response:
    """POST /{tenant}/oauth2/v2.0/token (v2, `scope`) or /{tenant}/oauth2/token (v1, `resource`)."""
    tenant = sim.resolve_tenant(tenant_name)
    if tenant is None:
        return unknown_tenant(sim, request, tenant_name)
    form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    grant_type = form.get("grant_type", "")
    if not grant_type:
        return _missing(sim, request, "grant_type")
    if grant_type != "client_credentials":
        return entra_error(sim, request, 400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'.")
    client_id = form.get("client_id", "").strip().lower()
    if not client_id:
        return _missing(sim, request, "client_id")

    with sim.lock:
        app = sim.apps.get((tenant.tenant_id, client_id))
    if app is None:
        return entra_error(
            sim, request, 400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can happen if the "
            "application has not been installed by the administrator of the tenant or consented to by any user in the tenant. "
            "You may have sent your authentication request to the wrong tenant.",
        )

    problem = _check_credential(sim, request, tenant, app, form)
    if isinstance(problem, Response):
        return problem
    credential_kind = problem

    if v2:
        scope = form.get("scope", "").strip()
        if not scope:
            return _missing(sim, request, "scope")
        defaults = [s for s in scope.split() if s.endswith("/.default")]
        if not defaults:
            return entra_error(
                sim, request, 400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with "
                "/.default suffixed to the resource identifier (application ID URI).",
            )
        resource = defaults[0][: -len("/.default")].rstrip("/")
    else:
        resource = form.get("resource", "").strip().rstrip("/")
        if not resource:
            return _missing(sim, request, "resource")
    if resource not in KNOWN_RESOURCES and resource not in sim.accepted_audiences:
        return entra_error(
            sim, request, 400, "invalid_resource", 500011,
            f"The resource principal named {resource} was not found in the tenant named {tenant.domain}. This can happen if "
            "the application has not been installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You might have sent your authentication request to the wrong tenant.",
        )

    now = sim.now()
    lifetime = sim.knobs.token_lifetime_seconds
    access_token, exp = tokens.issue(
        sim.signing_key, tenant_id=tenant.tenant_id, app_id=app.client_id, object_id=app.object_id, audience=resource,
        roles=app.roles, now=now, lifetime=lifetime, generation=sim.token_generation, credential_kind=credential_kind,
    )
    with sim.lock:
        sim.issued_tokens += 1
    if v2:
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token}
    else:  # "Tokens": the v1 endpoint answers with strings and adds expires_on/not_before/resource
        iat = int(epoch_seconds(now))
        body = {"token_type": "Bearer", "expires_in": str(lifetime), "ext_expires_in": str(lifetime), "expires_on": str(exp),
                "not_before": str(iat), "resource": resource, "access_token": access_token}
    return json_response(200, body, _no_cache())


def _missing(sim: Simulator, request: Request, name: str) -> Response:
    return entra_error(sim, request, 400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'.")


def _invalid_client(sim: Simulator, request: Request, code: int, description: str) -> Response:
    return entra_error(sim, request, 401, "invalid_client", code, description)


def _check_credential(sim: Simulator, request: Request, tenant: Tenant, app: App, form: dict[str, str]) -> str | Response:
    """Return the credential kind ("secret"/"certificate") or the Entra error response."""
    secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    if secret is None and assertion is None:
        return _invalid_client(sim, request, 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
    if secret is not None:
        if secret in app.secrets:
            return "secret"
        return _invalid_client(
            sim, request, 7000215,
            f"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the "
            f"client secret ID, for a secret added to app '{app.client_id}'.",
        )
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        return entra_error(sim, request, 400, "invalid_request", 50012, f"client_assertion_type must be '{CLIENT_ASSERTION_TYPE}'.")
    return _check_assertion(sim, request, tenant, app, assertion or "")


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _check_assertion(sim: Simulator, request: Request, tenant: Tenant, app: App, assertion: str) -> str | Response:
    """Certificate credential ("Tokens"): x5t/x5t#S256 of a registered cert, RS256/PS256 signature,
    aud = the token endpoint, iss = sub = client_id, exp/nbf within range."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return entra_error(sim, request, 400, "invalid_request", 50027, "JWT token is invalid or malformed.")
    algorithm = header.get("alg")
    if algorithm not in _ASSERTION_ALGORITHMS:
        return _invalid_client(sim, request, 5002738, f"Invalid JWT token. '{algorithm}' is not a supported signature algorithm.")
    key = None
    thumbprint = ""
    try:
        if header.get("x5t#S256"):
            thumbprint = _b64url(header["x5t#S256"]).hex().upper()
            key = app.certificates_sha256.get(bytes.fromhex(thumbprint))
        elif header.get("x5t"):
            thumbprint = _b64url(header["x5t"]).hex().upper()
            key = app.certificates_sha1.get(bytes.fromhex(thumbprint))
    except (ValueError, TypeError):
        return entra_error(sim, request, 400, "invalid_request", 50027, "JWT token is invalid or malformed.")
    if key is None:
        return _invalid_client(
            sim, request, 700027,
            f"Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for "
            f"app Id '{app.client_id}'.]",
        )
    audiences = _token_endpoint_urls(sim, request, tenant)
    try:
        # The assertion was made with the client's wall clock, so exp/nbf are checked against the wall
        # clock (with Entra's 5-minute allowance), not against the simulator's injectable clock.
        claims = jwt.decode(assertion, key, algorithms=[algorithm], audience=list(audiences), leeway=300,  # type: ignore[arg-type]
                            options={"require": ["exp", "aud", "iss", "sub"]})
    except jwt.ExpiredSignatureError:
        return _invalid_client(sim, request, 700024, "Client assertion is not within its valid time range.")
    except jwt.ImmatureSignatureError:
        return _invalid_client(sim, request, 700024, "Client assertion is not within its valid time range.")
    except jwt.InvalidAudienceError:
        return _invalid_client(
            sim, request, 700212,
            f"No matching federated identity record found for presented assertion audience. Expected one of: {sorted(audiences)}.",
        )
    except jwt.InvalidSignatureError:
        return _invalid_client(sim, request, 700027, "Client assertion failed signature validation.")
    except jwt.PyJWTError as exc:
        return entra_error(sim, request, 400, "invalid_request", 50027, f"JWT token is invalid or malformed. {exc}")
    if str(claims.get("iss", "")).lower() != app.client_id or str(claims.get("sub", "")).lower() != app.client_id:
        return _invalid_client(sim, request, 700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
    return "certificate"


def _token_endpoint_urls(sim: Simulator, request: Request, tenant: Tenant) -> set[str]:
    """Entra accepts the v1 and v2 token URLs, with the tenant GUID or a domain, as assertion audience."""
    roots = {base_url(sim, request)}
    if sim.base_url:
        roots.add(sim.base_url)
    return {f"{root}/{name}/{path}" for root in roots for name in (tenant.tenant_id, tenant.domain)
            for path in ("oauth2/token", "oauth2/v2.0/token")}


# ---------------------------------------------------------------------------- managed identity
def managed_identity_token(sim: Simulator, request: Request) -> Response:
    """App Service / Functions identity endpoint, api-version 2019-08-01 (msal `_obtain_token_on_app_service`)."""
    supplied = request.header("x-identity-header")
    if not supplied or supplied != sim.identity_header:
        return _msi_error(401, "The request is missing or has an invalid X-IDENTITY-HEADER header.")
    if request.query.get("api-version") != "2019-08-01":
        return _msi_error(400, f"The api-version '{request.query.get('api-version', '')}' is not supported. Use 2019-08-01.")
    resource = request.query.get("resource", "").strip().rstrip("/")
    if not resource:
        return _msi_error(400, "Required query parameter 'resource' is missing.")
    with sim.lock:
        identity = None
        if request.query.get("client_id"):
            identity = sim.identities.get(request.query["client_id"].lower())
        elif request.query.get("principal_id") or request.query.get("object_id"):
            wanted = (request.query.get("principal_id") or request.query.get("object_id") or "").lower()
            identity = next((i for i in sim.identities.values() if i.principal_id == wanted), None)
        elif request.query.get("mi_res_id"):
            identity = None
        else:
            identity = sim.identities.get("system")
    if identity is None:
        return _msi_error(400, "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.")
    if resource not in KNOWN_RESOURCES and resource not in sim.accepted_audiences:
        # msal notes that a wrong resource "ends up with a vague statusCode=500".
        return _msi_error(500, "An unexpected error occured while fetching the AAD Token.")
    now = sim.now()
    access_token, exp = tokens.issue(
        sim.signing_key, tenant_id=identity.tenant_id, app_id=identity.client_id, object_id=identity.principal_id,
        audience=resource, roles=identity.roles, now=now, lifetime=sim.knobs.token_lifetime_seconds,
        generation=sim.token_generation, credential_kind="managed_identity",
    )
    with sim.lock:
        sim.issued_tokens += 1
    return json_response(200, {"access_token": access_token, "expires_on": str(exp), "resource": resource,
                               "token_type": "Bearer", "client_id": identity.client_id})


def _msi_error(status: int, message: str) -> Response:
    return json_response(status, {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())})
