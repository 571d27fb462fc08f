"""Client of the Office 365 Management Activity API (docs/api-behaviour.md), on `requests`.

Owns URLs, PublisherIdentifier, NextPageUri paging, error classification (one function), retries
within the caller's deadline, and host pinning: the bearer token goes to the configured API host
and nowhere else, whatever NextPageUri or contentUri say (wazuh PR #38688 fixed exactly that leak).
It does not decide which windows to ask for (windows.py does).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from .auth import TokenProvider
from .errors import (
    ContentUnavailableError,
    FatalApiError,
    InvalidWindowError,
    ManagementApiError,
    RetryAfterError,
    SubscriptionError,
    TransientApiError,
    UntrustedUrlError,
)
from .models import ContentRef, Window
from .settings import Settings
from .timeutil import Clock, SystemClock, as_utc, format_api_time

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
MAX_BACKOFF = 60.0  # the computed back-off; a server's Retry-After is honoured as given (within the deadline)
MAX_RETRY_AFTER = 3600.0  # a Retry-After without a caller's deadline to bound it
MIN_READ_TIMEOUT = 10.0  # a request started near the deadline still gets a fair chance to answer
MAX_PAGES = 10_000  # a listing that never ends is a server bug (coe-starter-kit #3390): stop, don't spin

# AF codes → what a client can do about them (docs/api-behaviour.md "Error codes"). The status
# comes first: 408, 429 and every 5xx are transient whatever the code (a front end's 503 AF50001
# is as passing as AF50000); the codes refine the 4xx answers.
_TRANSIENT = {"AF429", "AF50000", "AF50005", "AF50006"}
_SUBSCRIPTION = {"AF20022", "AF20023"}  # no subscription / disabled: start it, retry
_WINDOW = {"AF20030", "AF20055", "AF20031"}  # window refused (clock skew?) / bad nextPage: re-list
_UNAVAILABLE = {"AF20050", "AF20051"}  # content unknown / expired: skip the blob, count the loss
_TRANSIENT_STATUS = {408, 429}
# Transport failures worth another try: a refused or reset connection, a timeout, a body cut off
# mid-response (ChunkedEncodingError) or garbled (ContentDecodingError).
_TRANSPORT = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
              requests.exceptions.ContentDecodingError)


@dataclass(frozen=True)
class ContentPage:
    """One page of a content listing; `next_page` resumes the listing after it (None: the last page)."""

    refs: list[ContentRef]
    next_page: str | None


def classify_error(response: requests.Response) -> ManagementApiError:
    """The one place that turns an error response into an exception (status and AF code)."""
    status = response.status_code
    code: str | None = None
    message = response.reason or f"HTTP {status}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or "") or None
            message = str(error.get("message") or message)
        elif isinstance(body.get("Message"), str):  # 401: {"Message": "Authorization has been denied..."}
            message = body["Message"]
    text = f"HTTP {status}{' ' + code if code else ''}: {message}"
    if "DataServiceException" in message and "does not exist" in message:
        # Microsoft's FAQ: the answer while unified audit logging is off (or under 60 min on).
        text += " (unified audit logging is off or not yet active in the tenant: docs/tenant-setup.md section 1)"
    if status in _TRANSIENT_STATUS or status >= 500 or code in _TRANSIENT:
        return TransientApiError(text, status=status, code=code, retry_after=_retry_after(response))
    if code in _SUBSCRIPTION:
        return SubscriptionError(text, status=status, code=code)
    if code in _WINDOW:
        return InvalidWindowError(text, status=status, code=code)
    if code in _UNAVAILABLE:
        return ContentUnavailableError(text, status=status, code=code)
    # AF10001 (no ActivityFeed.Read), AF20001-3 (client bug), AF20010-13 (tenant), AF20020-21
    # (content type, webhook), AF20052 (bad content id), 401 after a refresh, other 4xx.
    return FatalApiError(text, status=status, code=code)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


class ManagementApiClient:
    """Subscriptions, content listing with paging, content fetch; retries transient errors."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenProvider,
        *,
        clock: Clock | None = None,
        session: requests.Session | None = None,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.clock = clock or SystemClock()
        self.session = session or requests.Session()
        self.backoff_base = backoff_base
        self.sleep = sleep
        self.root = f"{settings.api_url}/api/v1.0/{settings.tenant_id}/activity/feed"
        api = urlsplit(settings.api_url)
        self._origin = (api.scheme, (api.hostname or "").lower(), api.port or 443)
        self.server_offset = timedelta(0)  # server Date − our clock, from the last response

    # ------------------------------------------------------------ operations

    def list_subscriptions(self, deadline: float | None = None) -> list[dict[str, Any]]:
        _, body = self._request_json("GET", f"{self.root}/subscriptions/list", deadline=deadline)
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    def start_subscription(self, content_type: str, deadline: float | None = None) -> None:
        try:
            self._request("POST", f"{self.root}/subscriptions/start", params={"contentType": content_type},
                          deadline=deadline, json_body={})
        except FatalApiError as exc:
            # AF20024 "The subscription is already enabled. No property change." is success
            # (docs/api-behaviour.md "Starting a subscription").
            if exc.code != "AF20024":
                raise

    def list_content(self, content_type: str, window: Window, deadline: float | None = None) -> list[ContentRef]:
        """Every content blob of a window, following NextPageUri until the header is absent
        (docs/api-behaviour.md "Paging")."""
        refs = [ref for page in self.list_pages(content_type, window, deadline) for ref in page.refs]
        refs.sort(key=lambda ref: (ref.content_created, ref.content_id))  # documented order, enforced
        return refs

    def list_pages(self, content_type: str, window: Window, deadline: float | None = None,
                   next_page: str | None = None) -> Iterator[ContentPage]:
        """The window's listing page by page (docs/api-behaviour.md "Paging"), from its start or
        from `next_page` (a NextPageUri an earlier page gave): a caller can queue each page and
        save where it got to, so a window too big for one run still advances every run."""
        url = next_page or f"{self.root}/subscriptions/content"
        params: dict[str, str] | None = None if next_page else {
            "contentType": content_type,
            "startTime": format_api_time(window.start),
            "endTime": format_api_time(window.end),
        }
        for _ in range(MAX_PAGES):
            response, body = self._request_json("GET", url, params=params, deadline=deadline)
            if not isinstance(body, list):
                raise TransientApiError(f"content listing returned {type(body).__name__}, expected a list",
                                        status=response.status_code)
            refs = [ContentRef.from_listing(item) for item in body if isinstance(item, dict)]
            refs.sort(key=lambda ref: (ref.content_created, ref.content_id))  # documented order, enforced
            # The docs once said NextPageUrl; the service sends NextPageUri (MicrosoftDocs PR #7).
            # An empty page may still carry the header: keep going until it is absent.
            following = response.headers.get("NextPageUri") or response.headers.get("NextPageUrl") or None
            if following:
                self.check_url(following)  # refuse a foreign host before anyone saves or follows it
            yield ContentPage(refs, following)
            if not following:
                return
            url, params = following, None
        raise FatalApiError(f"content listing of {content_type} {window} did not end after {MAX_PAGES} pages")

    def fetch_content(self, content_uri: str, deadline: float | None = None) -> bytes:
        """The content blob's body: a JSON array of records (docs/api-behaviour.md "Content blobs").
        404 without a code = gone."""
        try:
            return self._request("GET", content_uri, deadline=deadline).content
        except FatalApiError as exc:
            if exc.status == 404 and exc.code is None:
                raise ContentUnavailableError(str(exc), status=404) from exc
            raise

    def server_now(self) -> datetime:
        return self.clock.now() + self.server_offset

    # ------------------------------------------------------------ transport

    def check_url(self, url: str) -> None:
        """Refuse any URL not on the configured API host: the bearer token must not leave it."""
        parts = urlsplit(url)
        origin = (parts.scheme, (parts.hostname or "").lower(), parts.port or 443)
        if origin != self._origin or not parts.path.lower().startswith(urlsplit(self.root).path.lower() + "/"):
            raise UntrustedUrlError(
                f"refusing to send the API token to {parts.scheme}://{parts.netloc}{parts.path}: "
                f"not under the configured API root {self.root}"
            )

    def _params_for(self, url: str, params: dict[str, str] | None) -> dict[str, str]:
        merged = dict(params or {})
        # PublisherIdentifier on every request, content GETs and NextPageUri included
        # (docs/api-behaviour.md "PublisherIdentifier"): the
        # server's NextPageUri drops it and lower-cases names, so compare names case-insensitively.
        present = {name.lower() for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
        if "publisheridentifier" not in present:
            merged["PublisherIdentifier"] = self.settings.publisher_id
        return merged

    def _request_json(self, method: str, url: str, *, params: dict[str, str] | None = None,
                      deadline: float | None = None) -> tuple[requests.Response, Any]:
        """A request whose 2xx body must be JSON; a body that is not (cut off, an HTML error page
        from a front end) is a transient failure and retried like one."""
        return self._send(method, url, params=params, deadline=deadline, parse_json=True)

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        deadline: float | None = None,
        json_body: Any = None,
    ) -> requests.Response:
        return self._send(method, url, params=params, deadline=deadline, json_body=json_body)[0]

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        deadline: float | None = None,
        json_body: Any = None,
        parse_json: bool = False,
    ) -> tuple[requests.Response, Any]:
        """The request with retries; with `parse_json`, its body parsed (once: the check that it is
        JSON is the parse), else None."""
        self.check_url(url)
        query = self._params_for(url, params)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self.tokens.token(force_refresh=refreshed and attempt == 2)}"}
            if json_body is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self.session.request(
                    method, url, params=query, headers=headers,
                    data=json.dumps(json_body) if json_body is not None else None,
                    timeout=(CONNECT_TIMEOUT, self._read_timeout(deadline)), allow_redirects=False,
                )
            except _TRANSPORT as exc:
                error: ManagementApiError = TransientApiError(f"{method} {_short(url)}: {exc.__class__.__name__}")
            else:
                self._note_server_time(response)
                if response.status_code < 300:
                    if not parse_json:
                        return response, None
                    parsed = _json_of(response)
                    if parsed is not _NOT_JSON:
                        return response, parsed
                    error = TransientApiError(f"{method} {_short(url)}: HTTP {response.status_code} with a body "
                                              "that is not JSON", status=response.status_code)
                elif response.status_code in (301, 302, 303, 307, 308):
                    error = FatalApiError(f"unexpected redirect {response.status_code} from {_short(url)}",
                                          status=response.status_code)
                elif response.status_code == 401 and not refreshed:
                    # The token was refused (expired, revoked): refresh once, then give up
                    # (docs/api-behaviour.md "Tokens").
                    refreshed = True
                    attempt = 1
                    log.info("api.token_refresh after 401 from %s", _short(url),
                             extra={"method": method, "endpoint": _short(url)})
                    continue
                else:
                    error = classify_error(response)
            if not isinstance(error, TransientApiError):
                raise error
            wait = self._backoff(attempt, error.retry_after)
            if deadline is not None and time.monotonic() + wait > deadline:
                if error.retry_after is not None:
                    # The server's own wait: honoured, never shortened, so stop here and resume next run.
                    raise RetryAfterError(f"{error} (Retry-After {error.retry_after:.0f} s is more than this run "
                                          "has left: resuming on the next run)", status=error.status,
                                          code=error.code, retry_after=error.retry_after) from error
                raise error
            log.warning("api.retry %s %s after %s (attempt %d, waiting %.1f s)", method, _short(url), error, attempt, wait,
                        extra={"method": method, "endpoint": _short(url), "status": error.status,
                               "errorCode": error.code, "attempt": attempt, "waitMs": int(wait * 1000)})
            self.sleep(wait)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)  # the deadline check in _request bounds it further
        # Exponential back-off with jitter (2.0, not 2: int ** int is typed Any, it may be a fraction).
        # The exponent is capped: many quick failures within a long deadline must not overflow a float.
        return min(MAX_BACKOFF, self.backoff_base * 2.0 ** min(attempt - 1, 32)) * (0.5 + random.random() / 2)

    def _read_timeout(self, deadline: float | None) -> float:
        if deadline is None:
            return self.settings.http_timeout_seconds
        left = deadline - time.monotonic()
        return min(self.settings.http_timeout_seconds, max(MIN_READ_TIMEOUT, left))

    def _note_server_time(self, response: requests.Response) -> None:
        date = response.headers.get("Date")
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        self.server_offset = as_utc(server) - self.clock.now()


_NOT_JSON = object()  # _json_of's answer for a body that is not JSON (None is JSON's null)


def _json_of(response: requests.Response) -> Any:
    """The body as JSON, or _NOT_JSON."""
    try:
        return response.json()
    except ValueError:  # requests' JSONDecodeError, and a body that is not UTF-8
        return _NOT_JSON


def _short(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"
