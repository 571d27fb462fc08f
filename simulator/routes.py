"""URL → operation, and the faults that sit in front of every operation (docs/api-behaviour.md "Surface",
"Fault and realism knobs").

Order per request: route (404/405) → scripted injection → random bare 503 (API only) → the operation;
then the answer may break on the wire (a scripted `fault`, or reset_rate / cut_body_rate for API operations).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from . import api, identity
from .knobs import API_OPERATIONS, Injection
from .state import Simulator
from .wire import AF_STATUS, Request, Response, af_error, json_response, method_not_allowed, not_found, unauthorized

Handler = Callable[[Simulator, Request], Response]

_API_ROUTES = {  # (segment after feed/, next segment) → (operation, method)
    ("subscriptions", "start"): ("subscription_start", "POST"),
    ("subscriptions", "stop"): ("subscription_stop", "POST"),
    ("subscriptions", "list"): ("subscription_list", "GET"),
    ("subscriptions", "content"): ("content_list", "GET"),
    ("subscriptions", "notifications"): ("notifications_list", "GET"),
    ("resources", "dlpsensitivetypes"): ("dlp_sensitive_types", "GET"),
}


def route(request: Request) -> tuple[str | None, Handler | None, Response | None]:
    """Return (operation, handler, None) or (None, None, a 404/405 response)."""
    segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].strip("/").split("/")]
    lower = [s.lower() for s in segments]
    method = request.method

    def pick(operation: str, wanted: str, handler: Handler) -> tuple[str | None, Handler | None, Response | None]:
        if method != wanted:
            return None, None, method_not_allowed(method)
        return operation, handler, None

    # ASP.NET routing is case-insensitive on the fixed segments.
    if len(segments) >= 6 and lower[:2] == ["api", "v1.0"] and lower[3:5] == ["activity", "feed"]:
        tenant = segments[2]
        if len(segments) == 7 and (lower[5], lower[6]) in _API_ROUTES:
            operation, wanted = _API_ROUTES[(lower[5], lower[6])]
            return pick(operation, wanted, lambda sim, req: api.handle(sim, req, operation, tenant))
        if len(segments) == 7 and lower[5] == "audit":
            content_id = segments[6]
            return pick("content_get", "GET", lambda sim, req: api.handle(sim, req, "content_get", tenant, content_id))
    elif lower == ["msi", "token"]:
        return pick("msi_token", "GET", identity.managed_identity_token)
    elif len(segments) == 4 and lower[1:] == ["v2.0", ".well-known", "openid-configuration"]:
        return pick("openid_configuration", "GET", lambda sim, req: identity.openid_configuration(sim, req, segments[0], True))
    elif len(segments) == 3 and lower[1:] == [".well-known", "openid-configuration"]:
        return pick("openid_configuration", "GET", lambda sim, req: identity.openid_configuration(sim, req, segments[0], False))
    elif len(segments) == 4 and lower[1:] == ["oauth2", "v2.0", "token"]:
        return pick("token", "POST", lambda sim, req: identity.token(sim, req, segments[0], True))
    elif len(segments) == 3 and lower[1:] == ["oauth2", "token"]:
        return pick("token", "POST", lambda sim, req: identity.token(sim, req, segments[0], False))
    elif lower == ["_sim", "health"]:
        return pick("health", "GET", lambda sim, req: json_response(200, {"status": "ok", "now": sim.now().isoformat()}))
    return None, None, not_found(request.raw_path, request.host or "localhost")


def dispatch(sim: Simulator, request: Request) -> tuple[str | None, Response]:
    """Answer one request (the server adds Date and the standard headers)."""
    operation, handler, problem = route(request)
    if problem is not None or handler is None or operation is None:
        return operation, problem or not_found(request.raw_path, request.host)
    injection = sim.take_injection(operation, request)
    response = _answer(sim, request, operation, handler, injection)
    if injection is not None and injection.fault is not None:
        response.transport_fault = injection.fault
    elif operation in API_OPERATIONS and sim.fault(sim.knobs.reset_rate):
        response.transport_fault = "reset"
    elif operation in API_OPERATIONS and sim.fault(sim.knobs.cut_body_rate):
        response.transport_fault = "cut"
    return operation, response


def _answer(sim: Simulator, request: Request, operation: str, handler: Handler, injection: Injection | None) -> Response:
    if injection is not None:
        response = _injected(sim, request, operation, injection)
        if response is not None:
            return response
        delay = injection.delay  # a delay-only (or fault-only) injection changes the normal answer's delivery
    else:
        delay = 0.0
    if operation in API_OPERATIONS and sim.fault(sim.knobs.http_503_rate):
        # A front end failing before the service sees the request ("Error codes": a front end that is down).
        return json_response(503, {"Message": "The service is unavailable."})
    response = handler(sim, request)
    response.delay_seconds = max(response.delay_seconds, delay)
    return response


def _injected(sim: Simulator, request: Request, operation: str, injection: Injection) -> Response | None:
    """Build the scripted answer, or None when the injection only adds a delay."""
    headers = list(injection.headers.items())
    if injection.body is not None:
        response = Response(injection.status or 500, injection.body, headers)
    elif injection.code is not None and operation in ("token", "msi_token", "openid_configuration"):
        digits = int("".join(c for c in injection.code if c.isdigit()) or "0")
        response = identity.entra_error(sim, request, injection.status or 400, "invalid_request", digits,
                                        injection.message or "Injected failure.")
        response.headers.extend(headers)
    elif injection.code is not None:
        status = injection.status
        if status is None:
            status = sim.knobs.throttle_status if injection.code == "AF429" else AF_STATUS.get(injection.code, 400)
        args = _default_args(request, operation, injection.code)
        response = af_error(injection.code, *args, status=status, message=injection.message, headers=headers)
    elif injection.status == 401:
        response = unauthorized()
        response.headers.extend(headers)
    elif injection.status is not None:
        response = json_response(injection.status, {"Message": injection.message or "Injected failure."}, headers)
    else:
        return None
    response.delay_seconds = injection.delay
    return response


def _default_args(request: Request, operation: str, code: str) -> tuple[str, ...]:
    """Fill an AF message template from the request so injected errors read like real ones."""
    publisher = request.query.get("publisheridentifier", "").lower() or api.SHARED_POOL
    content_id = request.path.rstrip("/").rsplit("/", 1)[-1]
    tenant = request.path.strip("/").split("/")[2] if request.path.startswith("/api/") else ""
    return {
        "AF429": (api.THROTTLE_METHODS.get(operation, "Unknown"), publisher),
        "AF20050": (content_id,), "AF20051": (content_id,), "AF20052": (content_id,),
        "AF20011": (tenant,), "AF20012": (tenant,), "AF20013": (tenant,),
        "AF20031": (request.query.get("nextpage", ""),),
        "AF20055": (request.query.get("starttime", ""), request.query.get("endtime", "")),
        "AF10001": ("", "ActivityFeed.Read"),
        "AF20001": ("contentType",),
    }.get(code, ())
