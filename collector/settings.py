"""Settings: every environment variable AuditKeep reads, its default, and its validation.

The same names are the Function App's app settings (infra/ sets them) and the CLI's environment.
`Settings.from_env` reads every setting, checks the format of each one that is set, and reports
every problem at once in one ConfigError. What only collection needs (the API credentials) is
required by `Settings.api_credentials()`, which the token provider calls when it is first built: the
query API runs without them. Secrets never appear in `repr()`, logs or error messages.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import ConfigError

CONTENT_TYPES = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
DEFAULT_CONTENT_TYPES = CONTENT_TYPES[:4]

AuthMode = Literal["secret", "certificate", "managed_identity"]
AUTH_MODES: tuple[AuthMode, ...] = ("secret", "certificate", "managed_identity")


@dataclass(frozen=True)
class Cloud:
    """Hosts of one Microsoft 365 cloud (Microsoft's "Office 365 Management Activity API reference",
    "Activity API operations": the root URL per plan): the scope always follows the API host."""

    name: str
    api_url: str
    login_url: str

    @property
    def scope(self) -> str:
        return f"{self.api_url}/.default"


CLOUDS = {
    "commercial": Cloud("commercial", "https://manage.office.com", "https://login.microsoftonline.com"),
    "gcc": Cloud("gcc", "https://manage-gcc.office.com", "https://login.microsoftonline.com"),
    "gcchigh": Cloud("gcchigh", "https://manage.office365.us", "https://login.microsoftonline.us"),
    "dod": Cloud("dod", "https://manage.protection.apps.mil", "https://login.microsoftonline.us"),
}

DEV_STORAGE = "UseDevelopmentStorage=true"


class Secret:
    """A string that never shows itself in repr/str (so settings can be logged safely)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ClientSecret:
    """M365_AUTH=secret: the app registration's client secret."""

    client_id: str
    secret: Secret


@dataclass(frozen=True)
class ClientCertificate:
    """M365_AUTH=certificate: PEM text holding the private key and the certificate."""

    client_id: str
    pem: Secret


@dataclass(frozen=True)
class ManagedIdentity:
    """M365_AUTH=managed_identity: a user-assigned identity's client id, or "" for the system-assigned one."""

    client_id: str


ApiCredential = ClientSecret | ClientCertificate | ManagedIdentity

_GUID_EXAMPLE = "a GUID such as 00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class RetentionDays:
    """How long each tier keeps a day, in days (docs/retention.md). hot and archive: 0 = forever;
    cold: 0 = no cold tier; immutability: the archive's WORM period (0 = none)."""

    hot: int
    cold: int
    archive: int
    immutability: int = 0


# RETENTION_PRESET: each fills the retention settings that are not set explicitly. Sources and
# reasoning in docs/retention.md ("Presets"); infra/main.bicep holds the same table (tests/infra checks it).
RETENTION_PRESETS: dict[str, RetentionDays] = {
    "default": RetentionDays(hot=90, cold=2557, archive=2557),  # 7 years (SOX-style), 90 days searchable
    "pci": RetentionDays(hot=92, cold=366, archive=366),  # PCI DSS v4.0 10.5.1: 12 months, last 3 at hand
    "scuba": RetentionDays(hot=92, cold=366, archive=366),  # CISA SCuBA MS.SECURITYSUITE.5.2v1: 3 m searchable, 12 m
    "hipaa": RetentionDays(hot=90, cold=2192, archive=2192),  # 45 CFR 164.316(b)(2)(i): 6 years
    "sox": RetentionDays(hot=90, cold=2557, archive=2557),  # 17 CFR 210.2-06: 7 years
    "sec": RetentionDays(hot=90, cold=2192, archive=2192, immutability=2192),  # 17 CFR 240.17a-4: 6 y, WORM
    "gdpr-12m": RetentionDays(hot=90, cold=365, archive=365),  # GDPR 5(1)(e), CNIL 2021-122: delete after 12 m
}
MAX_RETENTION_DAYS = 36_500  # a century: the Bicep parameters' bound too


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build with `Settings.from_env(os.environ)`."""

    # --- Management Activity API (needed by `collect`; not by `serve`) ---
    tenant_id: str = ""  # M365_TENANT_ID: tenant GUID
    client_id: str = ""  # M365_CLIENT_ID: app registration (or user-assigned identity) client id
    auth: AuthMode = "managed_identity"  # M365_AUTH: secret | certificate | managed_identity (inferred)
    client_secret: Secret | None = None  # M365_CLIENT_SECRET
    client_certificate: Secret | None = None  # M365_CLIENT_CERTIFICATE(_PATH): PEM key + certificate
    cloud: Cloud = CLOUDS["commercial"]  # M365_CLOUD
    api_url: str = CLOUDS["commercial"].api_url  # M365_API_URL: API root override
    login_url: str = CLOUDS["commercial"].login_url  # M365_LOGIN_URL: authority host override
    publisher_id: str = ""  # M365_PUBLISHER_ID: default the tenant id
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES  # M365_CONTENT_TYPES
    http_timeout_seconds: float = 60.0  # M365_HTTP_TIMEOUT_SECONDS: read timeout of one API call

    # --- Collection ---
    initial_lookback_hours: float = 168.0  # COLLECT_INITIAL_LOOKBACK_HOURS: first run's backfill (API max 7 d)
    overlap_minutes: float = 120.0  # COLLECT_OVERLAP_MINUTES: re-listed each run to catch late content
    max_runtime_seconds: float = 240.0  # COLLECT_MAX_RUNTIME_SECONDS: one timer run's deadline
    max_dequeue_count: int = 5  # AUDIT_MAX_DEQUEUE_COUNT: attempts before a message goes to poison

    # --- Storage ---
    storage_connection_string: Secret = field(default_factory=lambda: Secret(DEV_STORAGE))
    storage_account_name: str = ""  # AUDIT_STORAGE_ACCOUNT_NAME: managed identity mode (Azure)
    storage_endpoint_suffix: str = "core.windows.net"  # AUDIT_STORAGE_ENDPOINT_SUFFIX
    managed_identity_client_id: str = ""  # AZURE_CLIENT_ID: user-assigned identity for storage
    archive_container: str = "audit-archive"  # AUDIT_ARCHIVE_CONTAINER
    archive_bundles: bool = True  # ARCHIVE_BUNDLES: join closed days' raw blobs into bundles (docs/archive-bundles.md)
    cold_container: str = "audit-cold"  # AUDIT_COLD_CONTAINER: the cold tier's Parquet files (docs/cold-tier.md)
    # COMPACT_MAX_SECONDS: the compaction timer stops between parts of a large day after this (0 = no limit),
    # well inside host.json's functionTimeout (30 min), leaving time for bundling and expiry
    compact_max_seconds: int = 1200
    queue_name: str = "audit-content"  # AUDIT_QUEUE_NAME (poison queue: <name>-poison)
    table_prefix: str = "audit"  # AUDIT_TABLE_PREFIX: index/state table names start with it
    reindex_queue: str = "audit-reindex"  # AUDIT_REINDEX_QUEUE: reindex requests (collector/reindex.py)

    # --- Query API ---
    query_max_range_days: int = 0  # QUERY_MAX_RANGE_DAYS: cap without a user/operation filter; 0 = none (the budget bounds pages)
    query_max_export_rows: int = 1_000_000  # QUERY_MAX_EXPORT_ROWS: CSV/NDJSON stream cap

    # --- Retention (docs/retention.md): RETENTION_PRESET fills what is not set explicitly ---
    retention_preset: str = "default"  # RETENTION_PRESET: one of RETENTION_PRESETS
    hot_index_retention_days: int = 90  # HOT_INDEX_RETENTION_DAYS: index day tables; 0 = forever
    cold_retention_days: int = 2557  # COLD_RETENTION_DAYS: cold-tier day files; 0 = no cold tier
    archive_retention_days: int = 2557  # ARCHIVE_RETENTION_DAYS: raw archive blobs; 0 = forever
    archive_immutability_days: int = 0  # ARCHIVE_IMMUTABILITY_DAYS: the archive's WORM period (infra sets the policy)
    allow_custom_hosts: bool = False  # M365_ALLOW_CUSTOM_HOSTS: API/login hosts outside the cloud's (simulator)

    # --- Health (GET /api/health) ---
    health_lag_minutes: float = 30.0  # HEALTH_LAG_MINUTES: checkpoint older than this → "lagging"
    health_max_wait_minutes: float = 60.0  # HEALTH_MAX_WAIT_MINUTES: content queued longer → "failing"
    health_max_lag_hours: float = 24.0  # HEALTH_MAX_LAG_HOURS: checkpoint older than this → "failing"

    # --- Alerts (docs/alerts.md) ---
    alerts_enabled: bool = True  # ALERTS_ENABLED: run the detection rules on ingest
    alert_rules_json: str = ""  # ALERT_RULES_JSON: user rules (JSON) applied over the built-in ones
    alert_rules_blob: str = ""  # ALERT_RULES_BLOB: the same as a blob, "container/path.json" in the storage account
    alert_queue: str = "audit-alerts"  # AUDIT_ALERT_QUEUE: alert deliveries (and its -poison queue)
    alert_webhook_url: Secret | None = None  # ALERT_WEBHOOK_URL: https:// endpoint (http:// only on loopback); a secret
    alert_webhook_format: str = "json"  # ALERT_WEBHOOK_FORMAT: json | teams | slack
    alert_webhook_secret: Secret | None = None  # ALERT_WEBHOOK_SECRET: HMAC-SHA256 key of X-AuditKeep-Signature
    alert_output_queue: str = ""  # ALERT_OUTPUT_QUEUE: a queue that receives each alert's JSON

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"

    @property
    def uses_managed_identity_storage(self) -> bool:
        return bool(self.storage_account_name)

    def storage_endpoint(self, service: str) -> str:
        """https://{account}.{service}.{suffix} for managed-identity mode."""
        return f"https://{self.storage_account_name}.{service}.{self.storage_endpoint_suffix}"

    @property
    def scope(self) -> str:
        return self.cloud.scope

    def api_credentials(self) -> tuple[str, ApiCredential]:
        """(tenant id, credential) for the Management Activity API; ConfigError listing what is
        missing. The one check of what collection needs beyond from_env's format checks."""
        problems: list[str] = []
        if not self.tenant_id:
            problems.append(f"M365_TENANT_ID is required ({_GUID_EXAMPLE})")
        credential: ApiCredential | None = None
        if self.auth in ("secret", "certificate") and not self.client_id:
            problems.append(f"M365_CLIENT_ID is required ({_GUID_EXAMPLE})")
        if self.auth == "secret":
            if not self.client_secret:
                problems.append("M365_AUTH=secret needs M365_CLIENT_SECRET")
            else:
                credential = ClientSecret(self.client_id, self.client_secret)
        elif self.auth == "certificate":
            if self.client_certificate is None:
                problems.append("M365_AUTH=certificate needs M365_CLIENT_CERTIFICATE_PATH or M365_CLIENT_CERTIFICATE "
                                "(PEM key + certificate)")
            else:
                credential = ClientCertificate(self.client_id, self.client_certificate)
        else:
            credential = ManagedIdentity(self.client_id or self.managed_identity_client_id)
        if problems or credential is None:
            raise ConfigError(problems)
        return self.tenant_id, credential

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raise ConfigError listing every problem."""
        env = dict(os.environ if environ is None else environ)
        return _Reader(env).build()


def shown_url(url: str) -> str:
    """A webhook URL for an error message: scheme and host only (Teams and Slack URLs embed their secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/..." if parts.path or parts.query else url


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_TABLE_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,40}$")


class _Reader:
    """Collects problems while reading, so that one error lists them all."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, default: str = "") -> str:
        return self.env.get(name, "").strip() or default

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.get(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number between {low:g} and {high:g}, got {raw!r}")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
            return default
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get(name)
        if not raw:
            return default
        if not re.fullmatch(r"[0-9]+", raw) or not low <= int(raw) <= high:
            self.problems.append(f"{name} must be a whole number between {low} and {high}, got {raw!r}")
            return default
        return int(raw)

    def guid(self, name: str, value: str) -> str:
        """The canonical (lower-case) GUID of a setting that is set; "" when it is not."""
        if not value:
            return ""
        if not _GUID.match(value):
            self.problems.append(f"{name} must be a GUID, got {value!r}")
            return value
        return str(uuid.UUID(value))

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.get(name).lower()
        if not raw:
            return default
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no"):
            return False
        self.problems.append(f"{name} must be true or false, got {raw!r}")
        return default

    def cloud_host(self, name: str, url: str, cloud: Cloud, allow_custom: bool, attribute: str) -> None:
        """Refuse an API or login host outside the clouds' own unless M365_ALLOW_CUSTOM_HOSTS: the
        token's scope stays the cloud's, so another host would be sent a token meant for Microsoft."""
        host = (urlsplit(url).hostname or "").lower()
        if allow_custom or not host or host == urlsplit(getattr(cloud, attribute)).hostname:
            return
        other = next((c.name for c in CLOUDS.values() if urlsplit(getattr(c, attribute)).hostname == host), None)
        if other is not None:
            self.problems.append(f"{name} host {host!r} belongs to the {other!r} cloud but M365_CLOUD is "
                                 f"{cloud.name!r}: set M365_CLOUD={other} (and drop {name})")
        else:
            self.problems.append(f"{name} host {host!r} is not a Microsoft {cloud.name} host (expected "
                                 f"{urlsplit(getattr(cloud, attribute)).hostname}); set M365_ALLOW_CUSTOM_HOSTS=true "
                                 "only for a simulator or test endpoint")

    def https_url(self, name: str, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            self.problems.append(f"{name} must be an https:// URL, got {value!r}")
        elif parts.path.strip("/") or parts.query:
            self.problems.append(f"{name} must be a root URL without path or query (e.g. https://host:9443), got {value!r}")
        return value.rstrip("/")

    def build(self) -> Settings:
        cloud_name = self.get("M365_CLOUD", "commercial").lower()
        cloud = CLOUDS.get(cloud_name)
        if cloud is None:
            self.problems.append(f"M365_CLOUD must be one of {', '.join(CLOUDS)}, got {cloud_name!r}")
            cloud = CLOUDS["commercial"]

        tenant_id = self.guid("M365_TENANT_ID", self.get("M365_TENANT_ID"))
        auth, client_id, secret, certificate = self.credentials()
        publisher_id = self.guid("M365_PUBLISHER_ID", self.get("M365_PUBLISHER_ID")) or tenant_id

        content_types = self.content_types()
        api_url = self.https_url("M365_API_URL", self.get("M365_API_URL", cloud.api_url))
        login_url = self.https_url("M365_LOGIN_URL", self.get("M365_LOGIN_URL", cloud.login_url))
        allow_custom_hosts = self.boolean("M365_ALLOW_CUSTOM_HOSTS", False)
        self.cloud_host("M365_API_URL", api_url, cloud, allow_custom_hosts, "api_url")
        self.cloud_host("M365_LOGIN_URL", login_url, cloud, allow_custom_hosts, "login_url")

        conn = self.get("AUDIT_STORAGE_CONNECTION_STRING", DEV_STORAGE)
        account = self.get("AUDIT_STORAGE_ACCOUNT_NAME")
        if account and not re.fullmatch(r"[a-z0-9]{3,24}", account):
            self.problems.append(f"AUDIT_STORAGE_ACCOUNT_NAME must be 3-24 lower-case letters and digits, got {account!r}")
        if not account and "=" not in conn:
            self.problems.append(
                "AUDIT_STORAGE_CONNECTION_STRING must be a storage connection string "
                "(e.g. UseDevelopmentStorage=true), or set AUDIT_STORAGE_ACCOUNT_NAME to use the managed identity"
            )
        container = self.get("AUDIT_ARCHIVE_CONTAINER", "audit-archive")
        if not _CONTAINER.match(container):
            self.problems.append(f"AUDIT_ARCHIVE_CONTAINER must be a valid container name (3-63 of a-z, 0-9, -), got {container!r}")
        cold_container = self.get("AUDIT_COLD_CONTAINER", "audit-cold")
        if not _CONTAINER.match(cold_container):
            self.problems.append(f"AUDIT_COLD_CONTAINER must be a valid container name (3-63 of a-z, 0-9, -), got {cold_container!r}")
        elif cold_container == container:
            self.problems.append("AUDIT_COLD_CONTAINER must differ from AUDIT_ARCHIVE_CONTAINER: their lifecycle rules "
                                 f"differ (the cold tier never goes to the Archive tier), got {cold_container!r} for both")
        queue = self.get("AUDIT_QUEUE_NAME", "audit-content")
        if not _CONTAINER.match(queue) or len(queue) > 56:
            self.problems.append(f"AUDIT_QUEUE_NAME must be a valid queue name of at most 56 characters (a-z, 0-9, -), got {queue!r}")
        reindex_queue = self.get("AUDIT_REINDEX_QUEUE", "audit-reindex")
        if not _CONTAINER.match(reindex_queue) or reindex_queue == queue:
            self.problems.append("AUDIT_REINDEX_QUEUE must be a valid queue name (a-z, 0-9, -) other than "
                                 f"AUDIT_QUEUE_NAME, got {reindex_queue!r}")
        prefix = self.get("AUDIT_TABLE_PREFIX", "audit")
        if not _TABLE_PREFIX.match(prefix):
            self.problems.append(f"AUDIT_TABLE_PREFIX must start with a letter and hold only letters and digits (at most 41), got {prefix!r}")

        settings = Settings(
            tenant_id=tenant_id,
            client_id=client_id,
            auth=auth,
            client_secret=secret,
            client_certificate=certificate,
            cloud=cloud,
            api_url=api_url,
            login_url=login_url,
            publisher_id=publisher_id,
            content_types=content_types,
            http_timeout_seconds=self.number("M365_HTTP_TIMEOUT_SECONDS", 60.0, 1, 600),
            initial_lookback_hours=self.number("COLLECT_INITIAL_LOOKBACK_HOURS", 168.0, 0, 168),
            overlap_minutes=self.number("COLLECT_OVERLAP_MINUTES", 120.0, 0, 24 * 60),
            max_runtime_seconds=self.number("COLLECT_MAX_RUNTIME_SECONDS", 240.0, 10, 24 * 3600),
            max_dequeue_count=self.integer("AUDIT_MAX_DEQUEUE_COUNT", 5, 1, 100),
            storage_connection_string=Secret(conn),
            storage_account_name=account,
            storage_endpoint_suffix=self.get("AUDIT_STORAGE_ENDPOINT_SUFFIX", "core.windows.net"),
            managed_identity_client_id=self.get("AZURE_CLIENT_ID"),
            archive_container=container,
            archive_bundles=self.boolean("ARCHIVE_BUNDLES", True),
            cold_container=cold_container,
            compact_max_seconds=self.integer("COMPACT_MAX_SECONDS", 1200, 0, 24 * 3600),
            queue_name=queue,
            table_prefix=prefix,
            reindex_queue=reindex_queue,
            query_max_range_days=self.integer("QUERY_MAX_RANGE_DAYS", 0, 0, 36_500),
            query_max_export_rows=self.integer("QUERY_MAX_EXPORT_ROWS", 1_000_000, 1, 100_000_000),
            **self.retention(),
            allow_custom_hosts=allow_custom_hosts,
            health_lag_minutes=self.number("HEALTH_LAG_MINUTES", 30.0, 1, 7 * 24 * 60),
            health_max_wait_minutes=self.number("HEALTH_MAX_WAIT_MINUTES", 60.0, 1, 7 * 24 * 60),
            health_max_lag_hours=self.number("HEALTH_MAX_LAG_HOURS", 24.0, 1, 167),
            **self.alerts(queue, reindex_queue),
        )
        if self.problems:
            raise ConfigError(self.problems)
        return settings

    def retention(self) -> dict[str, Any]:
        """The retention fields: the preset's days, each overridden by its setting when set, then
        checked together (the tiers depend on each other: docs/retention.md "Rules")."""
        name = self.get("RETENTION_PRESET", "default").lower()
        preset = RETENTION_PRESETS.get(name)
        if preset is None:
            self.problems.append(f"RETENTION_PRESET must be one of {', '.join(RETENTION_PRESETS)}, got {name!r}")
            name, preset = "default", RETENTION_PRESETS["default"]
        hot = self.integer("HOT_INDEX_RETENTION_DAYS", preset.hot, 0, MAX_RETENTION_DAYS)
        cold = self.integer("COLD_RETENTION_DAYS", preset.cold, 0, MAX_RETENTION_DAYS)
        archive = self.integer("ARCHIVE_RETENTION_DAYS", preset.archive, 0, MAX_RETENTION_DAYS)
        worm = self.integer("ARCHIVE_IMMUTABILITY_DAYS", preset.immutability, 0, MAX_RETENTION_DAYS)
        if cold and not hot:
            self.problems.append(f"COLD_RETENTION_DAYS ({cold}) needs a finite HOT_INDEX_RETENTION_DAYS (got 0 = forever): "
                                 "a cold day deleted while its hot day remains would be compacted again; "
                                 "set COLD_RETENTION_DAYS=0 (no cold tier) or a hot retention of at most it")
        elif cold and cold < hot:
            self.problems.append(f"COLD_RETENTION_DAYS ({cold}) must be at least HOT_INDEX_RETENTION_DAYS ({hot}): "
                                 "a hot day is dropped only once the cold tier holds it, and must be gone before its cold copy")
        if archive and (not hot or archive < hot):
            self.problems.append(f"ARCHIVE_RETENTION_DAYS ({archive}) must be at least HOT_INDEX_RETENTION_DAYS "
                                 f"({hot or 'forever'}): the index points at archive blobs (raw records, compaction)")
        if archive and worm > archive:
            self.problems.append(f"ARCHIVE_IMMUTABILITY_DAYS ({worm}) must not exceed ARCHIVE_RETENTION_DAYS ({archive}): "
                                 "a WORM-protected blob cannot be deleted when its retention ends")
        return {"retention_preset": name, "hot_index_retention_days": hot, "cold_retention_days": cold,
                "archive_retention_days": archive, "archive_immutability_days": worm}

    def alerts(self, work_queue: str, reindex_queue: str) -> dict[str, Any]:
        """The alert settings (docs/alerts.md); ALERT_RULES_JSON is checked rule by rule here."""
        queue = self.get("AUDIT_ALERT_QUEUE", "audit-alerts")
        if not _CONTAINER.match(queue) or len(queue) > 56 or queue in (work_queue, reindex_queue):
            self.problems.append("AUDIT_ALERT_QUEUE must be a valid queue name of at most 56 characters (a-z, 0-9, -) "
                                 f"other than AUDIT_QUEUE_NAME and AUDIT_REINDEX_QUEUE, got {queue!r}")
        output = self.get("ALERT_OUTPUT_QUEUE")
        if output and (not _CONTAINER.match(output) or output in (work_queue, reindex_queue, queue)):
            self.problems.append("ALERT_OUTPUT_QUEUE must be a valid queue name (a-z, 0-9, -) other than the collector's "
                                 f"own queues, got {output!r}")
        rules_json = self.env.get("ALERT_RULES_JSON", "").strip()
        if rules_json:
            from .alerts.rules import load_rules  # the rules module is pure; imported only when rules are given

            try:
                load_rules(rules_json)
            except ConfigError as exc:
                self.problems.extend(f"ALERT_RULES_JSON: {problem}" for problem in exc.problems)
        blob = self.get("ALERT_RULES_BLOB")
        if blob and not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]/\S+", blob):
            self.problems.append(f"ALERT_RULES_BLOB must be container/path (e.g. audit-config/rules.json), got {blob!r}")
        url = self.get("ALERT_WEBHOOK_URL")
        if url:
            parts = urlsplit(url)
            loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if not parts.hostname or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not loopback):
                self.problems.append(f"ALERT_WEBHOOK_URL must be an https:// URL (http:// only on loopback), got {shown_url(url)!r}")
        fmt = self.get("ALERT_WEBHOOK_FORMAT", "json").lower()
        if fmt not in ("json", "teams", "slack"):
            self.problems.append(f"ALERT_WEBHOOK_FORMAT must be one of json, teams, slack, got {fmt!r}")
        secret = self.get("ALERT_WEBHOOK_SECRET")
        return {"alerts_enabled": self.boolean("ALERTS_ENABLED", True), "alert_rules_json": rules_json,
                "alert_rules_blob": blob, "alert_queue": queue,
                "alert_webhook_url": Secret(url) if url else None, "alert_webhook_format": fmt,
                "alert_webhook_secret": Secret(secret) if secret else None, "alert_output_queue": output}

    def content_types(self) -> tuple[str, ...]:
        raw = self.get("M365_CONTENT_TYPES")
        if not raw:
            return DEFAULT_CONTENT_TYPES
        known = {ct.lower(): ct for ct in CONTENT_TYPES}
        result: list[str] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            canonical = known.get(item.lower())
            if canonical is None:
                self.problems.append(f"M365_CONTENT_TYPES has unknown content type {item!r}; expected some of {', '.join(CONTENT_TYPES)}")
            elif canonical not in result:
                result.append(canonical)
        if not result and not any(p.startswith("M365_CONTENT_TYPES") for p in self.problems):
            self.problems.append("M365_CONTENT_TYPES must name at least one content type")
        return tuple(result) or DEFAULT_CONTENT_TYPES

    def credentials(self) -> tuple[AuthMode, str, Secret | None, Secret | None]:
        """The auth mode (given or inferred), client id, secret and certificate, format-checked;
        whether the chosen mode has what it needs is Settings.api_credentials' question."""
        mode_raw = self.get("M365_AUTH").lower()
        secret_raw = self.get("M365_CLIENT_SECRET")
        cert_path = self.get("M365_CLIENT_CERTIFICATE_PATH")
        cert_text = self.env.get("M365_CLIENT_CERTIFICATE", "").strip()
        client_id = self.guid("M365_CLIENT_ID", self.get("M365_CLIENT_ID"))

        certificate: Secret | None = None
        if cert_path and cert_text:
            self.problems.append("set only one of M365_CLIENT_CERTIFICATE_PATH and M365_CLIENT_CERTIFICATE")
        elif cert_path:
            try:
                with open(cert_path, encoding="utf-8") as handle:
                    certificate = Secret(handle.read())
            except OSError as exc:
                self.problems.append(f"M365_CLIENT_CERTIFICATE_PATH cannot be read ({exc.strerror}): {cert_path!r}")
        elif cert_text:
            certificate = Secret(cert_text.replace("\\n", "\n"))
        if certificate is not None and certificate.reveal() and "PRIVATE KEY-----" not in certificate.reveal():
            self.problems.append("the M365 client certificate must be PEM text holding the private key and the certificate")
        if certificate is not None and certificate.reveal() and "BEGIN CERTIFICATE-----" not in certificate.reveal():
            self.problems.append("the M365 client certificate PEM holds no certificate (-----BEGIN CERTIFICATE-----)")
        secret = Secret(secret_raw) if secret_raw else None

        modes: dict[str, AuthMode] = {m: m for m in AUTH_MODES}
        mode: AuthMode = "managed_identity"  # when a problem below is reported, from_env raises anyway
        if mode_raw:
            if mode_raw not in modes:
                self.problems.append(f"M365_AUTH must be one of {', '.join(AUTH_MODES)}, got {mode_raw!r}")
            else:
                mode = modes[mode_raw]
        elif secret and certificate:
            self.problems.append("both M365_CLIENT_SECRET and a certificate are set: choose one with M365_AUTH")
        elif certificate:
            mode = "certificate"
        elif secret:
            mode = "secret"
        return mode, client_id, secret, certificate


# Every environment variable Settings.from_env reads (the infra contract test checks the template against it).
ENVIRONMENT_VARIABLES = (
    "M365_TENANT_ID", "M365_CLIENT_ID", "M365_AUTH", "M365_CLIENT_SECRET", "M365_CLIENT_CERTIFICATE_PATH",
    "M365_CLIENT_CERTIFICATE", "M365_CLOUD", "M365_API_URL", "M365_LOGIN_URL", "M365_PUBLISHER_ID",
    "M365_CONTENT_TYPES", "M365_HTTP_TIMEOUT_SECONDS",
    "AUDIT_REINDEX_QUEUE",
    "COLLECT_INITIAL_LOOKBACK_HOURS", "COLLECT_OVERLAP_MINUTES", "COLLECT_MAX_RUNTIME_SECONDS",
    "AUDIT_MAX_DEQUEUE_COUNT", "AUDIT_STORAGE_CONNECTION_STRING", "AUDIT_STORAGE_ACCOUNT_NAME",
    "AUDIT_STORAGE_ENDPOINT_SUFFIX", "AZURE_CLIENT_ID", "AUDIT_ARCHIVE_CONTAINER", "AUDIT_QUEUE_NAME",
    "AUDIT_TABLE_PREFIX", "AUDIT_COLD_CONTAINER", "COMPACT_MAX_SECONDS", "QUERY_MAX_RANGE_DAYS", "QUERY_MAX_EXPORT_ROWS",
    "M365_ALLOW_CUSTOM_HOSTS", "ARCHIVE_BUNDLES", "HEALTH_LAG_MINUTES", "HEALTH_MAX_WAIT_MINUTES", "HEALTH_MAX_LAG_HOURS",
    "RETENTION_PRESET", "HOT_INDEX_RETENTION_DAYS", "COLD_RETENTION_DAYS", "ARCHIVE_RETENTION_DAYS",
    "ARCHIVE_IMMUTABILITY_DAYS",
    "ALERTS_ENABLED", "ALERT_RULES_JSON", "ALERT_RULES_BLOB", "AUDIT_ALERT_QUEUE", "ALERT_WEBHOOK_URL",
    "ALERT_WEBHOOK_FORMAT", "ALERT_WEBHOOK_SECRET", "ALERT_OUTPUT_QUEUE",
)
# Read by function_app.py's bindings rather than by Settings: the timer schedule (%COLLECT_SCHEDULE%)
# and the queue trigger's identity-based connection `AUDIT_STORAGE` (AUDIT_STORAGE__queueServiceUri,
# AUDIT_STORAGE__credential, AUDIT_STORAGE__clientId in Azure; a connection string locally).
# COMPACT_SCHEDULE is the cold-tier compaction timer's (%COMPACT_SCHEDULE%).
BINDING_SETTINGS = ("COLLECT_SCHEDULE", "AUDIT_STORAGE", "COMPACT_SCHEDULE")
QUEUE_CONNECTION = "AUDIT_STORAGE"
# What a deployment to Azure must set (the rest have sensible defaults).
AZURE_REQUIRED_SETTINGS = (
    "M365_TENANT_ID", "M365_AUTH", "M365_CLOUD", "M365_CONTENT_TYPES", "AUDIT_STORAGE_ACCOUNT_NAME",
    "AUDIT_STORAGE_ENDPOINT_SUFFIX", "AZURE_CLIENT_ID", "AUDIT_ARCHIVE_CONTAINER", "AUDIT_QUEUE_NAME",
    "AUDIT_TABLE_PREFIX", "COLLECT_SCHEDULE", "AUDIT_COLD_CONTAINER", "COMPACT_SCHEDULE",
)
