"""What crosses the wire: the request/response values handlers work with, and the service's error bodies.

Handlers are plain functions from `Request` to `Response` so they can be tested without sockets;
`server.py` does the HTTP plumbing (and adds `Date` and the standard headers to every answer).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json; charset=utf-8"  # docs/api-behaviour.md "Request conventions": every API response

# "Error codes": message templates as Microsoft's error table words them ({0}, {1} filled by `af_error`).
AF_MESSAGES: dict[str, str] = {
    "AF10001": "The permission set ({0}) sent in the request did not include the expected permission {1}.",
    "AF20001": "Missing parameter: {0}.",
    "AF20002": "Invalid parameter type: {0}. Expected type: {1}",
    "AF20003": "Expiration {0} provided is set to past date and time.",
    "AF20010": "The tenant ID passed in the URL ({0}) does not match the tenant ID passed in the access token ({1}).",
    "AF20011": "Specified tenant ID ({0}) does not exist in the system or has been deleted.",
    "AF20012": "Specified tenant ID ({0}) is incorrectly configured in the system.",
    "AF20013": "The tenant ID passed in the URL ({0}) is not a valid GUID.",
    "AF20020": "The specified content type is not valid.",
    "AF20021": "The webhook endpoint {{{0}) could not be validated. {1}",  # sic: the docs' unbalanced brace
    "AF20022": "No subscription found for the specified content type.",
    # "Stopping a subscription": observed text after stop→start; admin disablement uses the documented "by {0}" form.
    "AF20023": "The subscription was disabled.",
    "AF20024": "The subscription is already enabled. No property change.",
    "AF20030": (
        "Start time and end time must both be specified (or both omitted) and must be less than or equal to "
        "24 hours apart, with the start time no more than 7 days in the past."
    ),
    "AF20031": "Invalid nextPage Input: {0}.",
    "AF20050": "The specified content ({0}) does not exist.",
    "AF20051": "Content requested with the key {0} has already expired. Content older than 7 days cannot be retrieved.",
    "AF20052": "Content ID {0} in the URL is invalid.",
    "AF20053": "Only one language may be present in the Accept-Language header.",
    "AF20054": "Invalid syntax in Accept-Language header.",
    # "Listing windows": the observed body keeps the double space in "prior to  end time" and appends both times.
    "AF20055": (
        "Start time and end time must both be specified (or both omitted) and must be less than or equal to "
        "24 hours apart, with the start time prior to  end time and start time no more than 7 days in the past. "
        "StartTime:{0}, EndTime:{1}"
    ),
    "AF429": "Too many requests. Method={0}, PublisherId={1}",
    "AF50000": "An internal error occurred. Retry the request.",
}

# HTTP status per code ("Error codes"): observed where known, else the simulator's documented choice.
AF_STATUS: dict[str, int] = {
    "AF10001": 403,  # unconfirmed (401/403); knob af10001_status
    "AF20050": 400,  # unconfirmed (400/404); knob af20050_status
    "AF429": 403,  # Microsoft's troubleshooting page; knob throttle_status
    "AF50000": 500,
}

UNAUTHORIZED_BODY = {"Message": "Authorization has been denied for this request."}  # "Error codes": failures without the envelope


@dataclass
class Request:
    """One HTTP request as handlers see it. Query names are lower-cased ("Request conventions": case-insensitive)."""

    method: str
    path: str  # percent-decoded path, no query
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    raw_path: str = ""  # the request target as sent (path + query, still encoded)
    host: str = ""  # the Host header, used to build absolute URLs the client can follow

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = JSON_CONTENT_TYPE
    delay_seconds: float = 0.0  # scripted slowness: the server sleeps before answering
    transport_fault: str | None = None  # knobs.TRANSPORT_FAULTS: how server.py breaks this answer on the wire

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def dumps(value: Any) -> bytes:
    """Compact JSON, as the service sends it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(status: int, value: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, dumps(value), list(headers or []))


def af_message(code: str, *args: object) -> str:
    template = AF_MESSAGES.get(code)
    if template is None:
        return "An error occurred."
    wanted = sum(1 for _, name, _, _ in string.Formatter().parse(template) if name is not None)
    filled = [*args, *([""] * max(wanted - len(args), 0))]
    return template.format(*filled)


def af_error(code: str, *args: object, status: int | None = None, message: str | None = None,
             headers: list[tuple[str, str]] | None = None) -> Response:
    """The activity feed's error envelope ("Error codes"): {"error":{"code":..., "message":...}}."""
    body = {"error": {"code": code, "message": message if message is not None else af_message(code, *args)}}
    return json_response(status or AF_STATUS.get(code, 400), body, headers)


def unauthorized() -> Response:
    """"Error codes": missing/invalid/expired bearer token → 401, WWW-Authenticate: Bearer, ASP.NET body."""
    return json_response(401, UNAUTHORIZED_BODY, [("WWW-Authenticate", "Bearer")])


def not_found(raw_path: str, host: str) -> Response:
    """ASP.NET Web API's answer for a URL no route matches."""
    return json_response(404, {"Message": f"No HTTP resource was found that matches the request URI 'https://{host}{raw_path}'."})


def method_not_allowed(method: str) -> Response:
    return json_response(405, {"Message": f"The requested resource does not support http method '{method}'."})
