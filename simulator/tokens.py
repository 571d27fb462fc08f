"""Access tokens the simulated Entra issues and the simulated API accepts (docs/api-behaviour.md "Tokens").

Real tokens are RS256 JWTs signed by Entra; here they are HS256 with a per-simulator key, which keeps
the same claims (aud, tid, roles, exp, appid …) and lets the API reject forged or stale tokens.
Revocation uses a generation counter stamped into each token, so it works with a frozen test clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt

from .timefmt import epoch_seconds

ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    """What the API needs from a verified token."""

    tenant_id: str
    app_id: str
    audience: str
    roles: tuple[str, ...]
    expires: float  # epoch seconds


class TokenError(Exception):
    """The bearer token is missing, malformed, forged, expired, revoked or for another audience."""


def issue(key: bytes, *, tenant_id: str, app_id: str, object_id: str, audience: str, roles: tuple[str, ...],
          now: datetime, lifetime: int, generation: int, credential_kind: str) -> tuple[str, int]:
    """Return (token, exp). `credential_kind` is "secret", "certificate" or "managed_identity"."""
    iat = int(epoch_seconds(now))
    exp = iat + lifetime
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "aio": uuid.uuid4().hex,
        "app_displayname": "AuditKeep (simulated)",
        "appid": app_id,
        # Entra's appidacr: 1 = client secret, 2 = certificate; managed identities also present 2.
        "appidacr": "1" if credential_kind == "secret" else "2",
        "idp": f"https://sts.windows.net/{tenant_id}/",
        "idtyp": "app",
        "oid": object_id,
        "roles": list(roles),
        "sub": object_id,
        "tid": tenant_id,
        "uti": uuid.uuid4().hex[:22],
        "ver": "1.0",
        "xms_sim_gen": generation,  # simulator-only: tokens older than the last revoke_tokens() fail
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": "JWT"}), exp


def verify(key: bytes, authorization: str, *, audiences: frozenset[str], now: datetime, generation: int) -> TokenClaims:
    """Check an `Authorization` header value; raise TokenError on any problem."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("no bearer token")
    try:
        claims = jwt.decode(
            token.strip(), key, algorithms=[ALGORITHM],
            # exp/nbf are checked below against the simulator's clock, not the wall clock.
            options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"bad token: {exc}") from exc
    if claims.get("aud") not in audiences:
        raise TokenError(f"audience {claims.get('aud')!r} is not accepted")
    seconds = epoch_seconds(now)
    if float(claims.get("exp", 0)) <= seconds:
        raise TokenError("token expired")
    if float(claims.get("nbf", 0)) > seconds + 300:  # Entra-style 5-minute skew allowance
        raise TokenError("token not yet valid")
    if int(claims.get("xms_sim_gen", -1)) < generation:
        raise TokenError("token revoked")
    return TokenClaims(
        tenant_id=str(claims.get("tid", "")),
        app_id=str(claims.get("appid", "")),
        audience=str(claims["aud"]),
        roles=tuple(str(r) for r in claims.get("roles", [])),
        expires=float(claims["exp"]),
    )
