"""Fault-injection and realism knobs (docs/api-behaviour.md "Fault and realism knobs"), scripted one-shot faults, and the throttle.

Knobs are plain attributes of `Knobs`; `Simulator(**knobs)`, `sim.set(**knobs)` and the CLI's
`--knob NAME=VALUE` all go through `Knobs.update`, which rejects unknown names and converts text.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .wire import Request

DEFAULT_WINDOWS = ("last24h", "todayUtc")


@dataclass
class Knobs:
    # --- listing ("Paging", "Window rules") ---
    page_size: int = 100  # blobs per listing page (real size undocumented; 100–200 is a plausible guess)
    emit_empty_page_with_next: bool = False  # first page of every listing is [] with a NextPageUri
    empty_page_rate: float = 0.0  # any page is replaced by [] + NextPageUri (same position) with this probability
    default_window: str = "last24h"  # no start/end given: "last24h" (reference page) or "todayUtc" (troubleshooting page)
    window_start_tolerance: timedelta = timedelta(0)  # extra age allowed beyond 7 d (real ≈ 1 h, "Listing windows")
    advertised_base_url: str | None = None  # root used in contentUri/NextPageUri (default: the request's Host)
    # --- content ("Content blobs", "Content lifetime") ---
    expiration_days: float = 7.0  # add_blob's default contentExpiration = T1 + this (14 seen too)
    af20050_status: int = 400  # unknown content: 400 or 404 (unconfirmed)
    # --- errors and throttling ("Error codes", "Throttling") ---
    af10001_status: int = 403  # missing permission: 401 or 403 (unconfirmed)
    af50000_rate: float = 0.0  # random AF50000 (HTTP 500) after authentication
    http_503_rate: float = 0.0  # random bare 503 before anything else (a front end failing)
    # --- transport (a connection that breaks; the answer is computed, then mangled on the wire) ---
    reset_rate: float = 0.0  # random TCP reset instead of any API answer (nothing is sent)
    cut_body_rate: float = 0.0  # random API answer cut off: Content-Length says more than arrives, then the connection closes
    throttle_limit_per_min: int | None = 2000  # requests per PublisherIdentifier per window; None = off
    throttle_window_seconds: float = 60.0  # wall-clock window of the throttle (shorten it in tests)
    throttle_status: int = 403  # HTTP status of AF429 (Microsoft's docs show 403; 429 plausible)
    throttle_retry_after: int | None = None  # seconds in a Retry-After header on AF429 (unconfirmed)
    # --- subscriptions ("Starting a subscription", "Stopping a subscription", "Latency") ---
    start_throttle_minutes: float = 0.0  # "Starting a subscription": real rule is 15; 0 = not enforced
    start_throttle_code: str = "AF429"  # code returned when the start rule is broken (real one unconfirmed)
    first_content_delay_after_start: timedelta = timedelta(0)  # nothing listable for this long after a start (real ≤ 12 h)
    content_before_first_start: bool = True  # content older than the first start is listable (handy for backfill demos)
    validate_webhooks: bool = False  # POST the validation request of "Webhooks" to webhook addresses
    # --- identity ("Tokens") ---
    token_lifetime_seconds: int = 3599
    # --- clock ("State and clock") ---
    clock_skew: timedelta = timedelta(0)  # the service's clock = clock() + skew (shows in Date and in validation)
    # --- bookkeeping ---
    request_log_limit: int = 100_000  # sim.requests keeps at most this many entries
    fault_seed: int | None = None  # seed of the random faults (af50000_rate, http_503_rate, empty_page_rate, reset_rate, cut_body_rate)
    region: str = "na0017"  # region token in content ids and nextPage tokens ("Content and page identifiers")

    def update(self, **values: Any) -> None:
        """Set knobs by name; text values (from the CLI) are converted to the knob's type."""
        known = {f.name: f for f in dataclasses.fields(self)}
        for name, value in values.items():
            if name not in known:
                raise TypeError(f"unknown simulator knob {name!r}; known: {', '.join(sorted(known))}")
            setattr(self, name, _convert(name, getattr(self, name), value))
        self.validate()

    def validate(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        if self.default_window not in DEFAULT_WINDOWS:
            raise ValueError(f"default_window must be one of {DEFAULT_WINDOWS}")
        for name in ("empty_page_rate", "af50000_rate", "http_503_rate", "reset_rate", "cut_body_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.throttle_limit_per_min is not None and self.throttle_limit_per_min < 1:
            raise ValueError("throttle_limit_per_min must be at least 1 (or None to turn throttling off)")


def _convert(name: str, current: Any, value: Any) -> Any:
    """Coerce `value` to the type the knob already has (timedeltas accept seconds)."""
    if not isinstance(value, str):
        if isinstance(current, timedelta) and isinstance(value, int | float):
            return timedelta(seconds=value)
        return value
    text = value.strip()
    if text.lower() in ("none", "null", "") and name in _OPTIONAL:
        return None
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"knob {name} expects true/false, got {value!r}")
    if isinstance(current, timedelta):
        return timedelta(seconds=float(text))
    if isinstance(current, int) or name in ("throttle_limit_per_min", "throttle_retry_after", "fault_seed"):
        return int(text)
    if isinstance(current, float):
        return float(text)
    return text


_OPTIONAL = {"throttle_limit_per_min", "throttle_retry_after", "fault_seed", "advertised_base_url"}


OPERATIONS = (
    "openid_configuration", "token", "msi_token",
    "subscription_start", "subscription_stop", "subscription_list",
    "content_list", "content_get", "notifications_list", "dlp_sensitive_types",
)
API_OPERATIONS = OPERATIONS[3:]

# How an answer can break on the wire (Simulator.inject(fault=...), the reset_rate/cut_body_rate knobs):
# "reset": the connection is reset before anything is sent; "reset_after_headers": status and headers
# arrive, then a reset; "cut": Content-Length is the full body, half of it arrives, then the
# connection closes; "cut_chunked": the same with Transfer-Encoding: chunked (no last chunk).
TRANSPORT_FAULTS = ("reset", "reset_after_headers", "cut", "cut_chunked")


@dataclass
class Injection:
    """A scripted fault: the next `times` requests of `operation` get this answer (see Simulator.inject)."""

    operation: str
    status: int | None = None
    code: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    fault: str | None = None  # one of TRANSPORT_FAULTS: the (normal or scripted) answer breaks on the wire
    times: int | None = 1  # None: until removed
    when: Callable[[Request], bool] | None = None
    hits: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.times is None else max(self.times - self.hits, 0)

    def matches(self, operation: str, request: Request) -> bool:
        if self.remaining == 0:
            return False
        if self.operation not in (operation, "*") or (self.operation == "*" and operation not in API_OPERATIONS):
            return False
        return self.when is None or bool(self.when(request))


class Throttle:
    """Sliding-window request counter per key ("Throttling"; key = PublisherIdentifier, lower-cased, or the shared pool).

    Wall-clock based on purpose: throttling is about real request rate, and a frozen test clock must
    not freeze the window. Rejected requests are not counted, so a client that backs off recovers.
    """

    def __init__(self) -> None:
        self._hits: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, limit: int | None, window: float) -> bool:
        if limit is None:
            return True
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, collections.deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
