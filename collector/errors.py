"""Every exception AuditKeep raises on purpose.

    CollectorError
    ├── ConfigError                 settings are missing or invalid; lists every problem at once
    │   └── StorageSettingsError    storage refused the configured credentials or cannot be reached
    ├── AuthError                   the token endpoint (msal) refused us; fatal for the run
    ├── UntrustedUrlError           the API handed us a URL on another host: the bearer token stays home
    ├── ManagementApiError          the Management Activity API answered with an error (.status, .code)
    │   ├── TransientApiError       408, 429, 5xx (any code), AF429, transport errors, bad JSON: retried
    │   │   └── RetryAfterError     the server's Retry-After is longer than the run has left
    │   ├── SubscriptionError       AF20022 (none) / AF20023 (disabled): start the subscription, retry
    │   ├── InvalidWindowError      AF20030 / AF20055: the window was refused (clock skew?)
    │   ├── ContentUnavailableError AF20050 (unknown) / AF20051 (expired): skip the blob and count it
    │   └── FatalApiError           AF10001, AF20001-3, AF20010-13, AF20020-21, AF20052, 401 after refresh
    ├── MessageFormatError          a queue message that is not a content reference (poison at once)
    ├── IndexFormatError            an index entity this version cannot read (another layout version)
    ├── ColdFormatError             a cold-tier manifest or file this version cannot read
    ├── BundleFormatError           a raw archive bundle index this version cannot read
    ├── CompactionError             a compacted day does not match the hot index (nothing is committed)
    └── QueryError                  bad input to the query API (HTTP 400); .parameter names the culprit
        └── NotFoundError           no such record (HTTP 404)

Classification of API responses happens in one place: management_api.classify_error.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base class of every error AuditKeep raises deliberately."""


class ConfigError(CollectorError):
    """One or more settings are missing or invalid.

    ``problems`` lists each problem as a sentence naming the setting and what was expected.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = f"configuration error: {self.problems[0]}"
        else:
            text = f"{len(self.problems)} configuration errors: " + "; ".join(self.problems)
        super().__init__(text)


class StorageSettingsError(ConfigError):
    """The storage account named by the settings refused them or could not be reached (bootstrap.py
    `storage_settings_error`). At start-up that is a configuration error; in a running
    `collect --interval` it may be an outage, so the loop reports it and tries again."""


class BundleFormatError(CollectorError):
    """A raw archive bundle index (`_bundle.json`, collector/bundle.py) this version cannot read."""


class AuthError(CollectorError):
    """The identity platform refused to issue a token (bad secret, unknown app, no consent...)."""


class UntrustedUrlError(CollectorError):
    """A URL from the API (NextPageUri, contentUri) points at a host other than the configured API host."""


class ManagementApiError(CollectorError):
    """An error response from the Office 365 Management Activity API."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class TransientApiError(ManagementApiError):
    """Throttling (AF429), internal errors (AF50000...), 5xx, 408 or a network timeout: retry later."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class RetryAfterError(TransientApiError):
    """The server asked (Retry-After) to wait longer than the caller's deadline allows: stop for now,
    resume on the next run (the listing records this in the state's lastError)."""


class SubscriptionError(ManagementApiError):
    """AF20022 (no subscription for the content type) or AF20023 (subscription disabled)."""


class InvalidWindowError(ManagementApiError):
    """AF20030 / AF20055: start/end outside the 24 h / 7 day rules as the server's clock sees them."""


class ContentUnavailableError(ManagementApiError):
    """AF20050 (content does not exist) or AF20051 (content expired): the blob can never be fetched."""


class FatalApiError(ManagementApiError):
    """An error that retrying cannot fix: permissions, tenant, content type or a client bug."""


class MessageFormatError(CollectorError):
    """A queue message that is not a content reference: no retry can make it readable."""


class IndexFormatError(CollectorError):
    """An index entity is not in the payload format this version writes and reads (collector/index.py)."""


class ColdFormatError(CollectorError):
    """A cold-tier manifest or Parquet file is not in the format this version writes (collector/cold/layout.py)."""


class CompactionError(CollectorError):
    """Compaction found a day it cannot write faithfully (a record missing from its archive blob, or
    files that disagree with the hot index); the day's manifest is not written, a rerun retries."""


class QueryError(CollectorError):
    """Invalid input to the query API; ``parameter`` names it and the message says what was expected."""

    status = 400

    def __init__(self, message: str, *, parameter: str | None = None, code: str = "BadRequest") -> None:
        self.parameter = parameter
        self.code = code
        super().__init__(message)


class NotFoundError(QueryError):
    """The requested record does not exist."""

    status = 404

    def __init__(self, message: str) -> None:
        super().__init__(message, code="NotFound")


def shown(text: str, limit: int = 60) -> str:
    """User input quoted for an error message (QueryError, NotFoundError): bounded, printable,
    always valid UTF-8."""
    clipped = text if len(text) <= limit else text[:limit] + "…"
    return repr(clipped.encode("utf-8", "backslashreplace").decode("utf-8"))
