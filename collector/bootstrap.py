"""The one place that builds credentials, SDK clients and services from Settings.

One `Services` per process (the Functions worker reuses it across invocations, so msal's token
cache and the HTTP connection pools live as long as the worker). Everything is built on first use,
so a process gets only what it touches: the query API never builds the Management Activity API
client, and so never needs its credentials; `api` checks them (ConfigError) when first built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from .archive import RawArchive
from .errors import StorageSettingsError
from .index import AuditIndex
from .settings import Settings
from .tables import TableClients
from .timeutil import Clock, SystemClock
from .transport import storage_transport

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from .alerts.wiring import AlertServices
    from .auth import TokenProvider
    from .bundle import Bundler
    from .cold.compaction import Compactor
    from .cold.store import ColdBlobStore
    from .cold.view import ColdView
    from .collect import ContentProcessor, ListingService
    from .health import HealthReporter
    from .ledger import Ledger
    from .management_api import ManagementApiClient
    from .query.service import QueryService
    from .query.tiers import TieredView
    from .queue import ContentQueue
    from .reindex import Reindexer, ReindexQueue
    from .retention import Expiry
    from .retention_stores import ArchiveDays, ColdDays, HotDays
    from .state import StateStore

# Storage SDK retries: the default first back-off is 15 s, too long inside a Function run. (Any: the
# SDKs take these as **kwargs, and mypy checks a dict[str, int] against every typed keyword too.)
_STORAGE_RETRY: dict[str, Any] = {"retry_total": 4, "initial_backoff": 1, "increment_base": 2}

_StorageClient = TypeVar("_StorageClient", BlobServiceClient, TableServiceClient, QueueServiceClient)


def _storage_credential(settings: Settings) -> TokenCredential:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.managed_identity_client_id:
        return ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
    # A developer against real Azure: their az login. EnvironmentCredential is excluded so that an
    # app secret in the environment never authenticates storage calls by accident.
    return DefaultAzureCredential(exclude_environment_credential=True)


class Services:
    """Clients and services built from one Settings; attributes are created on first use.

    `clock` is the only source of "now" for every service built here. `api`, when given, is used
    instead of building a client from the settings (tests: a client with a short retry back-off).
    `query_timer` is the query service's monotonic clock for its per-page seconds (tests that
    compare answers byte for byte stop it, so that a loaded machine cannot end a page early).
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None, api: ManagementApiClient | None = None,
                 query_timer: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.query_timer = query_timer
        if api is not None:
            self.api = api  # fills the cached property: it is never built from the settings

    @cached_property
    def _credential(self) -> TokenCredential:
        return _storage_credential(self.settings)

    def _storage_client(self, client_class: type[_StorageClient], service: str) -> _StorageClient:
        """A storage SDK client: the managed identity in Azure, a connection string locally."""
        s = self.settings
        options = {**_STORAGE_RETRY, "transport": storage_transport()}  # transport.py: the environment read once
        if s.uses_managed_identity_storage:
            return client_class(s.storage_endpoint(service), credential=self._credential, **options)
        try:
            return client_class.from_connection_string(s.storage_connection_string.reveal(), **options)
        except ValueError as exc:  # the SDK's "Connection string is either blank or malformed."
            raise StorageSettingsError([
                f"AUDIT_STORAGE_CONNECTION_STRING is not a storage connection string ({exc}); expected "
                "DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net, "
                "or UseDevelopmentStorage=true for Azurite"]) from None

    @cached_property
    def blob_service(self) -> BlobServiceClient:
        return self._storage_client(BlobServiceClient, "blob")

    @cached_property
    def table_service(self) -> TableServiceClient:
        return self._storage_client(TableServiceClient, "table")

    @cached_property
    def tables(self) -> TableClients:
        """Table clients for index, ledger and state (never `table_service.get_table_client`: see tables.py)."""
        return TableClients(self.table_service, **_STORAGE_RETRY)

    @cached_property
    def queue_service(self) -> QueueServiceClient:
        return self._storage_client(QueueServiceClient, "queue")

    @cached_property
    def index(self) -> AuditIndex:
        return AuditIndex(self.tables, self.settings.table_prefix, self.settings.tenant_id)

    @cached_property
    def archive(self) -> RawArchive:
        return RawArchive(self.blob_service, self.settings.archive_container)

    @cached_property
    def state(self) -> StateStore:
        from .state import StateStore

        return StateStore(self.tables, self.settings.table_prefix, self.settings.tenant_id)

    @cached_property
    def ledger(self) -> Ledger:
        from .ledger import Ledger

        return Ledger(self.tables, self.settings.table_prefix)

    @cached_property
    def queue(self) -> ContentQueue:
        from .queue import ContentQueue

        return ContentQueue(self.queue_service, self.settings.queue_name)

    @cached_property
    def token_provider(self) -> TokenProvider:
        """Tokens for the Management Activity API; ConfigError when the credentials are incomplete."""
        from .auth import build_token_provider

        return build_token_provider(self.settings)

    @cached_property
    def api(self) -> ManagementApiClient:
        from .management_api import ManagementApiClient

        return ManagementApiClient(self.settings, self.token_provider, clock=self.clock)

    @cached_property
    def listing(self) -> ListingService:
        from .collect import ListingService

        return ListingService(self.settings, self.api, self.queue, self.ledger, self.state, clock=self.clock)

    @cached_property
    def processor(self) -> ContentProcessor:
        from .collect import ContentProcessor

        return ContentProcessor(self.settings, self.api, self.archive, self.index, self.ledger, clock=self.clock,
                                alerts=self.alerts.sink)

    @cached_property
    def alerts(self) -> AlertServices:
        """Detection rules, the alerts table and queue, delivery, the silence check (collector/alerts/)."""
        from .alerts.wiring import AlertServices

        return AlertServices(self.settings, tables=self.tables, queue_service=self.queue_service,
                             blob_service=self.blob_service, health_report=lambda: self.health.report(), clock=self.clock)

    @cached_property
    def query(self) -> QueryService:
        from .query.service import QueryService

        s = self.settings
        return QueryService(self.query_view, max_range_days=s.query_max_range_days, max_export_rows=s.query_max_export_rows,
                            clock=self.clock, timer=self.query_timer)

    @cached_property
    def health(self) -> HealthReporter:
        from .health import HealthReporter, Thresholds
        from .retention import oldest_days

        s = self.settings
        thresholds = Thresholds(lag=timedelta(minutes=s.health_lag_minutes),
                                max_wait=timedelta(minutes=s.health_max_wait_minutes),
                                max_lag=timedelta(hours=s.health_max_lag_hours))
        return HealthReporter(content_types=s.content_types, state=self.state, ledger=self.ledger,
                              queue=self.queue, clock=self.clock, thresholds=thresholds,
                              oldest_days=lambda: oldest_days(*self.tiers))

    @cached_property
    def cold_store(self) -> ColdBlobStore:
        """The cold tier's container (AUDIT_COLD_CONTAINER); imported on first use: pyarrow is large."""
        from .cold.store import ColdBlobStore

        return ColdBlobStore(self.blob_service, self.settings.cold_container)

    @cached_property
    def cold_view(self) -> ColdView:
        """The cold tier as queries read it (compacted days, cached manifests and footers)."""
        from .cold.view import ColdView

        return ColdView(self.cold_store, self.settings.tenant_id)

    @cached_property
    def query_view(self) -> TieredView:
        """What queries read: each day from the hot index if it holds it, else from the cold tier."""
        from .query.tiers import TieredView

        return TieredView(self.index, self.cold_view)

    @cached_property
    def compactor(self) -> Compactor:
        from .cold.compaction import Compactor
        from .cold.hot import HotIdView

        s = self.settings
        return Compactor(HotIdView(self.tables, s.table_prefix), self.archive, self.cold_store, tenant_id=s.tenant_id,
                         clock=self.clock)

    @cached_property
    def reindexer(self) -> Reindexer:
        from .reindex import CheckpointTable, Reindexer

        s = self.settings
        return Reindexer(self.archive, self.index, CheckpointTable(self.tables, s.table_prefix),
                         cold=lambda: self.compactor, clock=self.clock)

    @cached_property
    def reindex_queue(self) -> ReindexQueue:
        from .reindex import ReindexQueue

        return ReindexQueue(self.queue_service, self.settings.reindex_queue)

    @cached_property
    def tiers(self) -> tuple[HotDays, ColdDays, ArchiveDays]:
        """The hot index, cold tier and raw archive as retention sees them (days held, deleting a day)."""
        from .retention_stores import ArchiveDays, ColdDays, HotDays

        return HotDays(self.index), ColdDays(self.cold_store), ArchiveDays(self.archive.container)

    @cached_property
    def bundler(self) -> Bundler:
        from .bundle import Bundler

        return Bundler(self.archive, self.settings.content_types, clock=self.clock)

    @cached_property
    def expiry(self) -> Expiry:
        from .retention import Expiry, Policy

        return Expiry(Policy.from_settings(self.settings), *self.tiers, clock=self.clock)

    def ensure_storage(self) -> None:
        """Create the container, queues and state table if missing (the Bicep template creates them in
        Azure). The first storage requests of a run: bad storage settings fail here, as one
        StorageSettingsError line naming the setting, not as an SDK traceback."""
        for service, ensure in (("blob", self.archive.ensure_container), ("queue", self.queue.ensure),
                                ("table", self.state.ensure)):
            try:
                ensure()
            except (AzureError, OSError) as exc:
                problem = storage_settings_error(exc, self.settings, service)
                if problem is None:
                    raise
                raise problem from None


def storage_settings_error(exc: Exception, settings: Settings, service: str) -> StorageSettingsError | None:
    """The configuration error a storage failure means, or None when it is not one (pure).

    403 AuthenticationFailed: the account key is wrong (connection string) or the token was refused;
    403 AuthorizationPermissionMismatch / AuthorizationFailure: the identity lacks its data role;
    a transport error (refused, DNS, TLS): no such account or endpoint, or Azurite is not running.
    """
    if settings.uses_managed_identity_storage:
        where = f"{settings.storage_endpoint(service)} (AUDIT_STORAGE_ACCOUNT_NAME, AUDIT_STORAGE_ENDPOINT_SUFFIX)"
        identity = f"the managed identity {settings.managed_identity_client_id or '(system-assigned)'} (AZURE_CLIENT_ID)"
    else:
        where = f"the {service} endpoint of AUDIT_STORAGE_CONNECTION_STRING"
        identity = "the AccountKey of AUDIT_STORAGE_CONNECTION_STRING"
    first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
    if isinstance(exc, HttpResponseError) and exc.status_code == 403:
        raw_code = getattr(exc, "error_code", None)  # the storage SDKs set it (Tables: an enum)
        code = str(getattr(raw_code, "value", raw_code) or "Forbidden")
        if not settings.uses_managed_identity_storage:
            return StorageSettingsError([f"storage at {where} refused {identity} (403 {code}): copy the key again "
                                         "(storage account > Access keys) or use AUDIT_STORAGE_ACCOUNT_NAME"])
        if code in ("AuthorizationPermissionMismatch", "AuthorizationFailure"):
            return StorageSettingsError([
                f"storage at {where} refused {identity} (403 {code}): grant it the Storage Blob, Queue and "
                "Table Data Contributor roles (infra/modules/role-assignments.bicep)"])
        return StorageSettingsError([f"storage at {where} refused {identity} (403 {code})"])
    if isinstance(exc, ClientAuthenticationError):  # azure-identity's CredentialUnavailableError too
        return StorageSettingsError([f"no usable credential for storage at {where}: {first_line}"])
    if isinstance(exc, (ServiceRequestError, OSError)):
        hint = "" if settings.uses_managed_identity_storage else " (locally: is Azurite running? `make run` starts it)"
        return StorageSettingsError([f"storage at {where} cannot be reached{hint}: {first_line}"])
    return None


_lock = threading.Lock()
_services: Services | None = None


def services() -> Services:
    """The process-wide Services, built from the environment on first use (the same for every
    function of the app: what each needs is checked when it first uses it)."""
    global _services
    with _lock:
        if _services is None:
            _services = Services(Settings.from_env())
        return _services


def set_services(value: Services | None) -> None:
    """Test hook: make `services()` return `value` (None rebuilds from the environment next time)."""
    global _services
    with _lock:
        _services = value
