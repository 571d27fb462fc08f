"""The activity feed operations under /api/v1.0/{tenant}/activity/feed/ (docs/api-behaviour.md; quoted headings
below are sections of that page).

Checks run in the simulator's documented order ("Check order"):
401 → AF20013 → AF20010 → AF10001 → AF20011/AF20012 → AF20020 → AF429 → AF20022/AF20023 → AF20055 → AF20031.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import timefmt, tokens
from .content_types import CONTENT_TYPES
from .state import READ_DLP_ROLE, READ_ROLE, Blob, Simulator, Subscription, Tenant, Webhook, is_guid, micros
from .wire import Request, Response, af_error, json_response, unauthorized

AUDIT_OFF_MESSAGE = "Microsoft.Office.Compliance.Audit.DataServiceException: Tenant {0} does not exist."

SHARED_POOL = "00000000-0000-0000-0000-000000000000"  # "PublisherIdentifier": requests without it
MAX_WINDOW = timedelta(hours=24)
MAX_AGE = timedelta(days=7)
# AF429 "Method=" names per operation ("Error codes" documents GetBlob and GetContents).
THROTTLE_METHODS = {
    "subscription_start": "StartSubscription", "subscription_stop": "StopSubscription",
    "subscription_list": "ListSubscriptions", "content_list": "GetContents", "content_get": "GetBlob",
    "notifications_list": "GetNotifications", "dlp_sensitive_types": "GetDlpSensitiveTypes",
}
_CONTENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9$_.\-]{0,511}$")
_NEXT_PAGE = re.compile(r"^(\d{17})(\d{6,})\$(\d{23})\$([A-Za-z]+\d*)$")
DLP_SENSITIVE_TYPES = [  # "DLP sensitive types" (a few of the built-in types)
    {"id": "50842eb7-edc8-4019-85dd-5a5c1f2bb085", "name": "Credit Card Number"},
    {"id": "a44669fe-0d48-453d-a9b1-2cc83f2cba77", "name": "U.S. Social Security Number (SSN)"},
    {"id": "e55e2a32-f92d-4985-a35d-a0b269eb687b", "name": "International Banking Account Number (IBAN)"},
    {"id": "cb353f78-2b72-4c3c-8827-92ebe4f69fdf", "name": "ABA Routing Number"},
]


@dataclass
class Context:
    """What the common checks established, for the operation handlers."""

    sim: Simulator
    request: Request
    operation: str
    tenant_in_url: str
    tenant: Tenant
    claims: tokens.TokenClaims
    now: datetime

    @property
    def root(self) -> str:
        """Root of absolute URLs handed to the client (contentUri, NextPageUri)."""
        if self.sim.knobs.advertised_base_url:
            return self.sim.knobs.advertised_base_url.rstrip("/")
        return f"https://{self.request.host}" if self.request.host else self.sim.base_url


def handle(sim: Simulator, request: Request, operation: str, tenant_in_url: str, tail: str = "") -> Response:
    """Run the common checks, then the operation. `tail` is the content id for content_get."""
    now = sim.now()
    try:
        claims = tokens.verify(sim.signing_key, request.header("authorization"), audiences=sim.accepted_audiences,
                               now=now, generation=sim.token_generation)
    except tokens.TokenError:
        return unauthorized()
    if not is_guid(tenant_in_url):
        return af_error("AF20013", tenant_in_url)
    if claims.tenant_id.lower() != tenant_in_url.lower():
        return af_error("AF20010", tenant_in_url, claims.tenant_id)
    if READ_ROLE not in claims.roles:
        return _no_permission(sim, claims, READ_ROLE)
    if sim.fault(sim.knobs.af50000_rate):
        return af_error("AF50000")
    with sim.lock:
        tenant = sim.tenants.get(tenant_in_url.lower())
    if tenant is None:
        return af_error("AF20011", tenant_in_url)
    if not tenant.audit_enabled:
        # "Permissions and tenant prerequisites" (docs/api-behaviour.md): auditing off answers with
        # "Microsoft.Office.Compliance.Audit.DataServiceException: Tenant <id> does not exist." The
        # status and envelope are not documented: a 400 in the usual envelope without an AF code.
        return json_response(400, {"error": {"message": AUDIT_OFF_MESSAGE.format(tenant_in_url)}})
    if not tenant.licensed:
        return af_error("AF20012", tenant_in_url)
    ctx = Context(sim, request, operation, tenant_in_url, tenant, claims, now)
    return _HANDLERS[operation](ctx, tail)


def _no_permission(sim: Simulator, claims: tokens.TokenClaims, role: str) -> Response:
    return af_error("AF10001", ",".join(claims.roles), role, status=sim.knobs.af10001_status)


def _throttled(ctx: Context) -> Response | None:
    """"Throttling": AF429 per PublisherIdentifier (any case of the name); without it, the shared pool."""
    publisher = ctx.request.query.get("publisheridentifier", "").strip().lower()
    key = publisher or SHARED_POOL
    knobs = ctx.sim.knobs
    if ctx.sim.throttle.allow(key, knobs.throttle_limit_per_min, knobs.throttle_window_seconds):
        return None
    headers = [("Retry-After", str(knobs.throttle_retry_after))] if knobs.throttle_retry_after is not None else []
    return af_error("AF429", THROTTLE_METHODS[ctx.operation], key, status=knobs.throttle_status, headers=headers)


def _content_type(ctx: Context) -> str | Response:
    """AF20001/AF20020, the DLP permission, then AF429 — the checks every content-type operation shares."""
    content_type = ctx.request.query.get("contenttype")
    if content_type is None:
        return af_error("AF20001", "contentType")
    if content_type not in CONTENT_TYPES:  # "Content types": names are case-sensitive in requests
        return af_error("AF20020")
    if content_type == "DLP.All" and READ_DLP_ROLE not in ctx.claims.roles:
        return _no_permission(ctx.sim, ctx.claims, READ_DLP_ROLE)
    return _throttled(ctx) or content_type


def _subscription_error(sub: Subscription | None) -> Response | None:
    if sub is None:
        return af_error("AF20022")
    if sub.status != "enabled":
        if sub.disabled_by:
            return af_error("AF20023", message=f"The subscription was disabled by {sub.disabled_by}.")
        return af_error("AF20023")
    return None


# ---------------------------------------------------------------------------- subscriptions
def start(ctx: Context, _: str) -> Response:
    """"Starting a subscription": enable (or update the webhook of) a subscription; AF20024 when nothing would change."""
    checked = _content_type(ctx)
    if isinstance(checked, Response):
        return checked
    content_type = checked
    webhook, change_webhook, problem = _webhook_from_body(ctx)
    if problem is not None:
        return problem
    sim, knobs = ctx.sim, ctx.sim.knobs
    with sim.lock:
        sub = ctx.tenant.subscriptions.get(content_type)
        if knobs.start_throttle_minutes > 0 and sub is not None and sub.last_start_request_at is not None \
                and ctx.now - sub.last_start_request_at < timedelta(minutes=knobs.start_throttle_minutes):
            code = knobs.start_throttle_code
            publisher = ctx.request.query.get("publisheridentifier", "").lower() or SHARED_POOL
            args = ("StartSubscription", publisher) if code == "AF429" else ()
            return af_error(code, *args, status=knobs.throttle_status if code == "AF429" else None)
        if sub is not None:
            sub.last_start_request_at = ctx.now
            if sub.status == "enabled":
                if not change_webhook or _same_webhook(sub.webhook, webhook):
                    return af_error("AF20024")
                sub.webhook = webhook
                return json_response(200, sub.as_json())
        sub = sim.start_subscription(content_type, ctx.tenant.tenant_id)
        if change_webhook:
            sub.webhook = webhook
        sub.last_start_request_at = ctx.now
        return json_response(200, sub.as_json())


def _same_webhook(a: Webhook | None, b: Webhook | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.address, a.auth_id, a.expiration) == (b.address, b.auth_id, b.expiration)


def _webhook_from_body(ctx: Context) -> tuple[Webhook | None, bool, Response | None]:
    """Parse the optional start body ("Starting a subscription"). Returns (webhook, whether the body sets it, error)."""
    text = ctx.request.body.decode("utf-8", "replace").strip()
    if not text:
        return None, False, None  # "Request conventions": an empty body with Content-Length: 0 is fine
    try:
        body = json.loads(text)
    except ValueError:
        return None, False, af_error("AF20002", "body", "json")
    if not isinstance(body, dict) or "webhook" not in body:
        return None, False, None
    raw = body["webhook"]
    if raw is None:
        return None, True, None
    if not isinstance(raw, dict):
        return None, False, af_error("AF20002", "webhook", "object")
    address = str(raw.get("address") or "")
    if not address:
        return None, False, af_error("AF20001", "address")
    if not address.lower().startswith("https://"):
        return None, False, af_error("AF20021", address, "The address must begin with HTTPS.")
    expiration = raw.get("expiration") or None
    if expiration:
        try:
            if timefmt.parse_api_time(str(expiration)) <= ctx.now:
                return None, False, af_error("AF20003", expiration)
        except ValueError:
            return None, False, af_error("AF20002", "expiration", "datetime")
    webhook = Webhook(address, raw.get("authId"), expiration)
    if ctx.sim.knobs.validate_webhooks and not _validate_webhook(webhook):
        return None, False, af_error("AF20021", address, "The endpoint did not return HTTP 200.")
    return webhook, True, None


def _validate_webhook(webhook: Webhook) -> bool:
    """"Webhooks": POST {"validationCode": …} to the address; only 200 OK passes."""
    import secrets

    import requests

    code = secrets.token_hex(16)
    headers = {"Content-Type": "application/json; charset=utf-8", "Webhook-ValidationCode": code}
    if webhook.auth_id:
        headers["Webhook-AuthID"] = webhook.auth_id
    try:
        response = requests.post(webhook.address, json={"validationCode": code}, headers=headers, timeout=10)
    except requests.RequestException:
        return False
    return response.status_code == 200


def stop(ctx: Context, _: str) -> Response:
    """"Stopping a subscription": 200 with an empty body; content until the next start is lost."""
    checked = _content_type(ctx)
    if isinstance(checked, Response):
        return checked
    with ctx.sim.lock:
        if ctx.tenant.subscriptions.get(checked) is None:
            return af_error("AF20022")
        ctx.sim.stop_subscription(checked, ctx.tenant.tenant_id)
    return Response(200, b"")


def list_subscriptions(ctx: Context, _: str) -> Response:
    """"Listing subscriptions": a JSON array, possibly []."""
    throttled = _throttled(ctx)
    if throttled:
        return throttled
    with ctx.sim.lock:
        return json_response(200, [sub.as_json() for sub in ctx.tenant.subscriptions.values()])


# ---------------------------------------------------------------------------- content listing
def list_content(ctx: Context, _: str) -> Response:
    return _listing(ctx, "content")


def list_notifications(ctx: Context, _: str) -> Response:
    return _listing(ctx, "notifications")


def _listing(ctx: Context, kind: str) -> Response:
    """"Listing windows", "Paging" (and "Notifications", same rules): validate, filter start <= contentCreated < end, page by page_size."""
    checked = _content_type(ctx)
    if isinstance(checked, Response):
        return checked
    content_type = checked
    with ctx.sim.lock:
        problem = _subscription_error(ctx.tenant.subscriptions.get(content_type))
        has_webhook = bool((sub := ctx.tenant.subscriptions.get(content_type)) and sub.webhook)
    if problem:
        return problem
    window = _window(ctx)
    if isinstance(window, Response):
        return window
    start, end = window
    token = ctx.request.query.get("nextpage")
    position: tuple[int, int] | None = None
    if token is not None:
        position = _parse_next_page(token, start)
        if position is None:
            return af_error("AF20031", token)

    if kind == "notifications" and not has_webhook:
        blobs: list[Blob] = []  # notifications exist only for subscriptions with a webhook
    else:
        blobs = ctx.sim.window(ctx.tenant.tenant_id, content_type, start, end)
    index = 0 if position is None else bisect.bisect_left(blobs, position, key=lambda b: b.key)
    knobs = ctx.sim.knobs
    next_key: tuple[int, int] | None = None
    if knobs.emit_empty_page_with_next and position is None:
        # An empty page that still has a NextPageUri: clients must not stop on [] ("Paging").
        page: list[Blob] = []
        next_key = blobs[0].key if blobs else (micros(end), 0)
    elif index < len(blobs) and ctx.sim.fault(knobs.empty_page_rate):
        page = []
        next_key = blobs[index].key
    else:
        page = blobs[index:index + knobs.page_size]
        if index + knobs.page_size < len(blobs):
            next_key = blobs[index + knobs.page_size].key

    entries: list[dict[str, Any]] = []
    for blob in page:
        entry: dict[str, Any] = blob.listing_entry(ctx.root, ctx.tenant_in_url)
        if kind == "notifications":
            entry["notificationSent"] = timefmt.content_time(blob.content_created + timedelta(seconds=30))
            entry["notificationStatus"] = "success"
        entries.append(entry)
    headers = []
    if next_key is not None:
        headers.append(("NextPageUri", _next_page_uri(ctx, kind, content_type, start, end, next_key)))
    return json_response(200, entries, headers)


def _window(ctx: Context) -> tuple[datetime, datetime] | Response:
    """"Window rules": both or neither; end > start; ≤ 24 h; start ≥ now − 7 d (− tolerance); future end accepted."""
    raw_start = ctx.request.query.get("starttime")
    raw_end = ctx.request.query.get("endtime")
    if raw_start is None and raw_end is None:
        # "Listing windows": the reference page says "last 24 hours"; the troubleshooting page "since 00:00 UTC".
        if ctx.sim.knobs.default_window == "todayUtc":
            start = ctx.now.replace(hour=0, minute=0, second=0, microsecond=0)
        else:
            start = ctx.now - MAX_WINDOW
        return start, ctx.now
    try:
        if raw_start is None or raw_end is None:
            raise ValueError("only one of startTime/endTime")
        start, end = timefmt.parse_api_time(raw_start), timefmt.parse_api_time(raw_end)
    except ValueError:
        return af_error("AF20055", raw_start or "", raw_end or "")
    if end <= start or end - start > MAX_WINDOW or start < ctx.now - MAX_AGE - ctx.sim.knobs.window_start_tolerance:
        return af_error("AF20055", timefmt.page_time(start), timefmt.page_time(end))
    return start, end


def _window_token(start: datetime) -> str:
    # "Content and page identifiers": the middle part of nextPage is the window start as yyyyMMddHHmmss + 9 zeros.
    return timefmt.utc(start).strftime("%Y%m%d%H%M%S") + "0" * 9


def _parse_next_page(token: str, start: datetime) -> tuple[int, int] | None:
    match = _NEXT_PAGE.match(token)
    if not match or match.group(3) != _window_token(start):
        return None
    try:
        moment = timefmt.parse_id_stamp(match.group(1))
    except ValueError:
        return None
    return (micros(moment), int(match.group(2)))


def _next_page_uri(ctx: Context, kind: str, content_type: str, start: datetime, end: datetime, key: tuple[int, int]) -> str:
    """"Paging": NextPageUri keeps lower-case names, 7-digit times, and drops PublisherIdentifier."""
    moment = timefmt.EPOCH + timedelta(microseconds=key[0])
    token = f"{timefmt.id_stamp(moment, 0)[:17]}{key[1]:06d}${_window_token(start)}${ctx.sim.knobs.region}"
    return (f"{ctx.root}/api/v1.0/{ctx.tenant_in_url}/activity/feed/subscriptions/{kind}?contenttype={content_type}"
            f"&starttime={timefmt.page_time(start)}&endtime={timefmt.page_time(end)}&nextpage={token}")


# ---------------------------------------------------------------------------- content retrieval
def get_content(ctx: Context, content_id: str) -> Response:
    """"Content blobs": the blob's JSON array; AF20052 malformed, AF20050 unknown, AF20051 expired (HTTP 400)."""
    sim = ctx.sim
    blob = sim.blob(content_id)
    if blob is None and not _CONTENT_ID.match(content_id):
        return af_error("AF20052", content_id)
    throttled = _throttled(ctx)
    if throttled:
        return throttled
    if blob is None or blob.tenant_id != ctx.tenant.tenant_id:
        return af_error("AF20050", content_id, status=sim.knobs.af20050_status)
    if blob.content_type == "DLP.All" and READ_DLP_ROLE not in ctx.claims.roles:
        return _no_permission(sim, ctx.claims, READ_DLP_ROLE)
    with sim.lock:
        problem = _subscription_error(ctx.tenant.subscriptions.get(blob.content_type))
        listable = sim.listable(blob, ctx.now)
    if problem:
        return problem
    if not listable:  # created in a gap, or not yet available: it does not exist for the client
        return af_error("AF20050", content_id, status=sim.knobs.af20050_status)
    if ctx.now >= blob.content_expiration:
        return af_error("AF20051", content_id)
    return Response(200, blob.body)


def dlp_sensitive_types(ctx: Context, _: str) -> Response:
    """"DLP sensitive types": friendly names of sensitive types; Accept-Language must name one language."""
    language = ctx.request.header("accept-language").strip()
    if language:
        if "," in language:
            return af_error("AF20053")
        if not re.fullmatch(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*(;q=[0-9.]+)?", language):
            return af_error("AF20054")
    return _throttled(ctx) or json_response(200, DLP_SENSITIVE_TYPES)


_HANDLERS = {
    "subscription_start": start,
    "subscription_stop": stop,
    "subscription_list": list_subscriptions,
    "content_list": list_content,
    "notifications_list": list_notifications,
    "content_get": get_content,
    "dlp_sensitive_types": dlp_sensitive_types,
}
