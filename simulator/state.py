"""The simulated service's state: tenants, app registrations, subscriptions, content blobs, clock
(docs/api-behaviour.md "State and clock"; quoted headings below are sections of that page).

`Simulator` is the object tests hold. It is thread-safe (one re-entrant lock) because the HTTPS
server answers on many threads while the test or the live feed adds content.
"""

from __future__ import annotations

import bisect
import collections
import random
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from . import timefmt
from .content_types import CONTENT_TYPES
from .knobs import OPERATIONS, TRANSPORT_FAULTS, Injection, Knobs, Throttle
from .wire import Request, dumps

if TYPE_CHECKING:
    from .synthetic import GenerationStats

Clock = Callable[[], datetime]

# Fictitious defaults (also the CLI's): the tenant GUID of the reference's examples, a made-up app.
DEFAULT_TENANT_ID = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
DEFAULT_CLIENT_ID = "0b8e2c71-5a3d-4f6e-9c1b-2d4e6f8a0c13"
DEFAULT_CLIENT_SECRET = "auditkeep-simulator-dev-secret"
DEFAULT_TENANT_DOMAIN = "contoso.onmicrosoft.com"
DEFAULT_AUDIENCE = "https://manage.office.com"
READ_ROLE = "ActivityFeed.Read"
READ_DLP_ROLE = "ActivityFeed.ReadDlp"
# Resources the simulated Entra knows ("Clouds and hosts"; storage for managed-identity callers).
KNOWN_RESOURCES = frozenset({
    "https://manage.office.com", "https://manage-gcc.office.com", "https://manage.office365.us",
    "https://manage.protection.apps.mil", "https://storage.azure.com",
})
OFFICE_MANAGEMENT_APP_ID = "c5393580-f805-4401-95e8-94b7a6ef2fc2"  # "Permissions and tenant prerequisites": "Office 365 Management APIs"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def real_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Webhook:
    address: str
    auth_id: str | None = None
    expiration: str | None = None
    status: str = "enabled"

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "address": self.address, "authId": self.auth_id, "expiration": self.expiration}


@dataclass
class Subscription:
    """One content type's subscription. `stopped` intervals are gaps whose content is lost ("Stopping a subscription")."""

    content_type: str
    status: str = "enabled"  # enabled | disabled
    webhook: Webhook | None = None
    first_started_at: datetime | None = None  # None: enabled "since always" (Simulator(subscribed=True))
    last_started_at: datetime | None = None
    stopped: list[list[datetime | None]] = field(default_factory=list)  # [from, to or None while still off]
    disabled_by: str | None = None  # None: the client stopped it; else "a tenant admin" / "a service admin"
    last_start_request_at: datetime | None = None  # any start request, for the 15-minute rule ("Starting a subscription")

    def as_json(self) -> dict[str, Any]:
        return {"contentType": self.content_type, "status": self.status, "webhook": self.webhook.as_json() if self.webhook else None}

    def in_gap(self, created: datetime) -> bool:
        return any(start is not None and start <= created and (end is None or created < end) for start, end in self.stopped)


@dataclass
class Tenant:
    tenant_id: str
    domain: str
    licensed: bool = True  # False → AF20012 ("Error codes")
    audit_enabled: bool = True  # False → 400 "…DataServiceException: Tenant <id> does not exist." (no AF code)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


@dataclass
class App:
    """An app registration with its credentials and granted application permissions (roles)."""

    client_id: str
    tenant_id: str
    object_id: str
    roles: tuple[str, ...]
    secrets: list[str] = field(default_factory=list)
    # x5t (SHA-1) and x5t#S256 thumbprints (raw digest bytes) → the certificate's public key
    certificates_sha1: dict[bytes, PublicKeyTypes] = field(default_factory=dict)
    certificates_sha256: dict[bytes, PublicKeyTypes] = field(default_factory=dict)

    def add_certificate(self, certificate_pem: str | bytes) -> None:
        data = certificate_pem.encode("ascii") if isinstance(certificate_pem, str) else certificate_pem
        cert = x509.load_pem_x509_certificate(data)
        der = cert.public_bytes(serialization.Encoding.DER)
        self.certificates_sha1[_digest(hashes.SHA1(), der)] = cert.public_key()  # noqa: S303 - x5t is SHA-1
        self.certificates_sha256[_digest(hashes.SHA256(), der)] = cert.public_key()


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


@dataclass
class ManagedIdentity:
    """A system- or user-assigned identity served by the App Service identity endpoint."""

    client_id: str
    principal_id: str
    tenant_id: str
    roles: tuple[str, ...]
    system_assigned: bool


@dataclass(eq=False)
class Blob:
    """A content blob (the listing fields of "Content blobs"). The body is rendered once; serving it is a write."""

    tenant_id: str
    content_type: str
    content_id: str
    content_created: datetime
    content_expiration: datetime
    body: bytes
    record_count: int
    seq: int

    @property
    def key(self) -> tuple[int, int]:
        return (micros(self.content_created), self.seq)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records, decoded from the stored body (kept as bytes to hold 250k+ records cheaply)."""
        import json

        value: list[dict[str, Any]] = json.loads(self.body)
        return value

    def content_uri(self, base_url: str) -> str:
        return f"{base_url}/api/v1.0/{self.tenant_id}/activity/feed/audit/{self.content_id}"

    def listing_entry(self, base_url: str, tenant_in_url: str | None = None) -> dict[str, str]:
        tenant = tenant_in_url or self.tenant_id
        return {
            "contentType": self.content_type,
            "contentId": self.content_id,
            "contentUri": f"{base_url}/api/v1.0/{tenant}/activity/feed/audit/{self.content_id}",
            "contentCreated": timefmt.content_time(self.content_created),
            "contentExpiration": timefmt.content_time(self.content_expiration),
        }


def micros(value: datetime) -> int:
    delta = value - timefmt.EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class LoggedRequest:
    """One entry of `Simulator.requests` (query names lower-cased; header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    operation: str | None
    status: int
    at: datetime  # the simulator's clock when the request arrived

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None


class _Store:
    """Blobs of one (tenant, content type), sorted by (contentCreated, insertion order)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []
        self.blobs: list[Blob] = []

    def add(self, blob: Blob) -> None:
        key = blob.key
        index = bisect.bisect_right(self.keys, key)
        self.keys.insert(index, key)
        self.blobs.insert(index, blob)

    def between(self, start: datetime, end: datetime) -> tuple[int, int]:
        """Index range of blobs with start <= contentCreated < end ("Listing windows")."""
        return (bisect.bisect_left(self.keys, (micros(start), -1)), bisect.bisect_left(self.keys, (micros(end), -1)))


class Simulator:
    """State and behaviour of the simulated Office 365 Management Activity API and its Entra tenant."""

    def __init__(
        self,
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = DEFAULT_CLIENT_SECRET,
        *,
        clock: Clock | None = None,
        subscribed: bool | Iterable[str] = False,
        roles: Iterable[str] = (READ_ROLE,),
        certificate_pem: str | None = None,
        tenant_domain: str = DEFAULT_TENANT_DOMAIN,
        audience: str = DEFAULT_AUDIENCE,
        identity_header: str | None = None,
        **knobs: Any,
    ) -> None:
        self.lock = threading.RLock()
        self.knobs = Knobs()
        self.knobs.update(**knobs)
        self._clock: Clock = clock or real_clock
        self.tenant_id = tenant_id.lower()
        self.client_id = client_id.lower()
        self.client_secret = client_secret
        self.audience = audience.rstrip("/")
        self.accepted_audiences = frozenset({self.audience})
        self.identity_header = identity_header or secrets.token_hex(16)  # App Service's X-IDENTITY-HEADER value
        self.signing_key = secrets.token_bytes(32)
        self.token_generation = 0
        self.base_url = ""  # set by SimulatorServer.start(); used when a request has no Host
        self.tenants: dict[str, Tenant] = {}
        self.apps: dict[tuple[str, str], App] = {}
        self.identities: dict[str, ManagedIdentity] = {}  # client id (or "system") → identity
        self.injections: list[Injection] = []
        self.throttle = Throttle()
        self.errors: list[str] = []  # tracebacks of unexpected exceptions (tests assert it stays empty)
        self.issued_tokens = 0
        self._log: collections.deque[LoggedRequest] = collections.deque(maxlen=self.knobs.request_log_limit)
        self._stores: dict[tuple[str, str], _Store] = {}
        self._by_id: dict[str, Blob] = {}
        self._seq = 0
        self._id_rng = random.Random(0)  # content-id digits: deterministic for a given insertion order
        self.fault_rng = random.Random(self.knobs.fault_seed)

        self.add_tenant(self.tenant_id, domain=tenant_domain)
        self.add_app(self.client_id, secret=client_secret, certificate_pem=certificate_pem, roles=roles)
        if subscribed:
            types = CONTENT_TYPES if subscribed is True else tuple(subscribed)  # type: ignore[arg-type]
            for content_type in types:
                self._check_content_type(content_type)
                self.tenant().subscriptions[content_type] = Subscription(content_type)

    # ------------------------------------------------------------------ clock and knobs
    def now(self) -> datetime:
        """The service's clock: the injected clock plus `clock_skew` ("State and clock")."""
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the simulator clock must return an aware datetime")
        return value.astimezone(UTC) + self.knobs.clock_skew

    def set_clock(self, clock: Clock | None) -> None:
        self._clock = clock or real_clock

    def set(self, **knobs: Any) -> None:
        """Change knobs at run time, e.g. `sim.set(page_size=2, af50000_rate=0.1)`."""
        with self.lock:
            self.knobs.update(**knobs)
            if "fault_seed" in knobs:
                self.fault_rng = random.Random(self.knobs.fault_seed)
            if "request_log_limit" in knobs:
                self._log = collections.deque(self._log, maxlen=self.knobs.request_log_limit)

    # ------------------------------------------------------------------ tenants and identities
    def add_tenant(self, tenant_id: str, domain: str | None = None, *, licensed: bool = True, audit_enabled: bool = True) -> Tenant:
        tenant = Tenant(tenant_id.lower(), (domain or f"tenant-{tenant_id[:8]}.onmicrosoft.com").lower(), licensed, audit_enabled)
        with self.lock:
            self.tenants[tenant.tenant_id] = tenant
        return tenant

    def tenant(self, tenant_id: str | None = None) -> Tenant:
        return self.tenants[(tenant_id or self.tenant_id).lower()]

    def resolve_tenant(self, name: str) -> Tenant | None:
        """Entra accepts the tenant GUID or a verified domain in the authority path ("Tokens")."""
        name = name.lower()
        if name in self.tenants:
            return self.tenants[name]
        return next((t for t in self.tenants.values() if t.domain == name), None)

    def add_app(self, client_id: str, secret: str | None = None, certificate_pem: str | bytes | None = None,
                roles: Iterable[str] = (READ_ROLE,), tenant_id: str | None = None) -> App:
        """Register an app (client credentials) in a tenant with the given application permissions."""
        app = App(client_id.lower(), (tenant_id or self.tenant_id).lower(), str(uuid.uuid4()), tuple(roles))
        if secret:
            app.secrets.append(secret)
        if certificate_pem:
            app.add_certificate(certificate_pem)
        with self.lock:
            self.apps[(app.tenant_id, app.client_id)] = app
        return app

    def app(self, client_id: str | None = None, tenant_id: str | None = None) -> App:
        return self.apps[((tenant_id or self.tenant_id).lower(), (client_id or self.client_id).lower())]

    def add_managed_identity(self, client_id: str | None = None, roles: Iterable[str] = (READ_ROLE,),
                             tenant_id: str | None = None) -> ManagedIdentity:
        """A user-assigned identity (client_id given) or the app's system-assigned identity (None)."""
        identity = ManagedIdentity(
            client_id=(client_id or str(uuid.uuid4())).lower(),
            principal_id=str(uuid.uuid4()),
            tenant_id=(tenant_id or self.tenant_id).lower(),
            roles=tuple(roles),
            system_assigned=client_id is None,
        )
        with self.lock:
            self.identities["system" if client_id is None else identity.client_id] = identity
        return identity

    def revoke_tokens(self) -> None:
        """Every token issued so far gets 401 from now on (tests "401 → one token refresh")."""
        with self.lock:
            self.token_generation += 1

    # ------------------------------------------------------------------ subscriptions
    def subscription(self, content_type: str, tenant_id: str | None = None) -> Subscription | None:
        return self.tenant(tenant_id).subscriptions.get(content_type)

    def start_subscription(self, content_type: str, tenant_id: str | None = None, webhook: Webhook | None = None) -> Subscription:
        """Enable a subscription as a successful `subscriptions/start` would (closing any gap)."""
        self._check_content_type(content_type)
        now = self.now()
        with self.lock:
            tenant = self.tenant(tenant_id)
            sub = tenant.subscriptions.get(content_type)
            if sub is None:
                sub = tenant.subscriptions[content_type] = Subscription(content_type, first_started_at=now)
            elif sub.status != "enabled":
                for interval in sub.stopped:
                    if interval[1] is None:
                        interval[1] = now
                sub.status = "enabled"
                sub.disabled_by = None
            sub.last_started_at = now
            if webhook is not None:
                sub.webhook = webhook
            return sub

    def stop_subscription(self, content_type: str, tenant_id: str | None = None, by: str | None = None) -> Subscription:
        """Disable a subscription; content created until the next start is never listable ("Stopping a subscription")."""
        now = self.now()
        with self.lock:
            tenant = self.tenant(tenant_id)
            sub = tenant.subscriptions.get(content_type)
            if sub is None:
                raise KeyError(f"no subscription for {content_type}")
            if sub.status == "enabled":
                sub.status = "disabled"
                sub.stopped.append([now, None])
            sub.disabled_by = by
            return sub

    def disable_subscription(self, content_type: str | None = None, by: str = "a tenant admin", tenant_id: str | None = None) -> None:
        """Fault: an admin disables one (or every) enabled subscription → AF20023 until restarted ("Error codes")."""
        with self.lock:
            tenant = self.tenant(tenant_id)
            for ct, sub in tenant.subscriptions.items():
                if content_type in (None, ct) and sub.status == "enabled":
                    self.stop_subscription(ct, tenant.tenant_id, by=by)

    # ------------------------------------------------------------------ content
    def add_blob(self, content_type: str, content_created: datetime, records: list[dict[str, Any]], content_id: str | None = None,
                 expiration: datetime | None = None, *, tenant_id: str | None = None, t1: datetime | None = None) -> Blob:
        """Add a content blob. contentExpiration defaults to T1 + `expiration_days` ("Content lifetime"), where T1 (the
        blob's first timestamp) defaults to its earliest record CreationTime, at most one day before creation."""
        for record in records:
            if not isinstance(record, dict):
                raise TypeError(f"records must be dicts, got {type(record).__name__}")
        created = timefmt.to_millis(timefmt.utc(content_created))
        if t1 is None:
            t1 = _earliest_creation(records, created)
        return self.add_rendered_blob(content_type, created, dumps(records), len(records), content_id=content_id,
                                      expiration=expiration, tenant_id=tenant_id, t1=t1)

    def add_rendered_blob(self, content_type: str, content_created: datetime, body: bytes, record_count: int, *,
                          content_id: str | None = None, expiration: datetime | None = None, tenant_id: str | None = None,
                          t1: datetime | None = None) -> Blob:
        """Fast path of add_blob for callers that already hold the JSON array body (the synthetic generator)."""
        self._check_content_type(content_type)
        created = timefmt.to_millis(timefmt.utc(content_created))
        t1 = timefmt.to_millis(timefmt.utc(t1)) if t1 is not None else created
        if expiration is None:
            expiration = t1 + timedelta(days=self.knobs.expiration_days)
        tenant = (tenant_id or self.tenant_id).lower()
        with self.lock:
            if tenant not in self.tenants:
                raise KeyError(f"unknown tenant {tenant}; add_tenant() it first")
            if content_id is None:
                content_id = self._new_content_id(content_type, t1, created)
            elif content_id in self._by_id:
                raise ValueError(f"content id {content_id!r} already exists")
            if not content_id or "/" in content_id:
                raise ValueError(f"content id {content_id!r} cannot be used in a URL path")
            self._seq += 1
            blob = Blob(tenant, content_type, content_id, created, timefmt.to_millis(timefmt.utc(expiration)), body, record_count, self._seq)
            self._stores.setdefault((tenant, content_type), _Store()).add(blob)
            self._by_id[content_id] = blob
        return blob

    def _new_content_id(self, content_type: str, t1: datetime, created: datetime) -> str:
        # "Content and page identifiers": {T1}${T2}$audit_{lowercasetype}$Audit_{Type}${region}; T2's first 17 digits = contentCreated.
        snake = content_type.replace(".", "_")
        while True:
            content_id = (f"{timefmt.id_stamp(t1, self._id_rng.randrange(1_000_000))}$"
                          f"{timefmt.id_stamp(created, self._id_rng.randrange(1_000_000))}$"
                          f"{snake.lower()}${snake}${self.knobs.region}")
            if content_id not in self._by_id:
                return content_id

    def generate(self, start: datetime, end: datetime, records_per_hour: float = 500.0, content_types: Iterable[str] | None = None,
                 seed: int = 1, *, tenant_id: str | None = None, **realism: Any) -> GenerationStats:
        """Fill the tenant with synthetic content whose events happen in [start, end) (see synthetic.py)."""
        from . import synthetic

        return synthetic.generate(self, start, end, records_per_hour=records_per_hour, content_types=content_types,
                                  seed=seed, tenant_id=tenant_id, **realism)

    def blob(self, content_id: str) -> Blob | None:
        return self._by_id.get(content_id)

    def blobs(self, content_type: str | None = None, tenant_id: str | None = None) -> list[Blob]:
        """All blobs (listable or not), ordered by contentCreated within each content type."""
        tenant = (tenant_id or self.tenant_id).lower()
        with self.lock:
            return [b for (t, ct), store in sorted(self._stores.items()) if t == tenant and content_type in (None, ct) for b in store.blobs]

    def set_expiration(self, content_id: str, expiration: datetime) -> None:
        with self.lock:
            self._by_id[content_id].content_expiration = timefmt.to_millis(timefmt.utc(expiration))

    def listable(self, blob: Blob, now: datetime | None = None) -> bool:
        """"State and clock": contentCreated <= now, subscription enabled, not inside a stopped interval."""
        now = now or self.now()
        if blob.content_created > now:
            return False
        sub = self.tenants[blob.tenant_id].subscriptions.get(blob.content_type)
        if sub is None or sub.status != "enabled":
            return False
        delay = self.knobs.first_content_delay_after_start
        if delay and sub.last_started_at is not None and now < sub.last_started_at + delay:
            return False  # "Starting a subscription", "Latency": first content after a start takes a while to appear
        if not self.knobs.content_before_first_start and sub.first_started_at is not None and blob.content_created < sub.first_started_at:
            return False
        return not sub.in_gap(blob.content_created)

    def retrievable(self, blob: Blob, now: datetime | None = None) -> bool:
        now = now or self.now()
        return self.listable(blob, now) and now < blob.content_expiration

    def window(self, tenant_id: str, content_type: str, start: datetime, end: datetime) -> list[Blob]:
        """Listable blobs with start <= contentCreated < end, ascending ("Listing windows")."""
        now = self.now()
        with self.lock:
            store = self._stores.get((tenant_id, content_type))
            if store is None:
                return []
            lo, hi = store.between(start, end)
            return [b for b in store.blobs[lo:hi] if self.listable(b, now)]

    # ------------------------------------------------------------------ faults and the request log
    def inject(self, operation: str, status: int | None = None, code: str | None = None, message: str | None = None, *,
               times: int | None = 1, headers: Mapping[str, str] | None = None, body: bytes | str | dict[str, Any] | list[Any] | None = None,
               delay: float = 0.0, fault: str | None = None, when: Callable[[Request], bool] | None = None) -> Injection:
        """Script a fault: the next `times` requests of `operation` ("content_list", "content_get",
        "subscription_start", … or "*" for any API operation) get it instead of the normal answer.

        `code` alone gives the AF envelope with the usual status (AF429 → throttle_status, AF50000 → 500,
        others 400); `status=401` alone gives the 401 Bearer challenge; `body` overrides the body;
        `delay` makes the server wait before answering (client timeouts); `fault` (one of
        knobs.TRANSPORT_FAULTS) breaks the answer on the wire: a connection reset or a cut body.
        """
        if operation not in OPERATIONS and operation != "*":
            raise ValueError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)} or '*'")
        if fault is not None and fault not in TRANSPORT_FAULTS:
            raise ValueError(f"unknown transport fault {fault!r}; one of {', '.join(TRANSPORT_FAULTS)}")
        if status is None and code is None and body is None and not delay and fault is None:
            raise ValueError("inject() needs a status, a code, a body, a delay or a fault")
        raw: bytes | None
        if body is None or isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        else:
            raw = dumps(body)
        injection = Injection(operation, status, code, message, dict(headers or {}), raw, delay, fault, times, when)
        with self.lock:
            self.injections.append(injection)
        return injection

    def clear_injections(self) -> None:
        with self.lock:
            self.injections.clear()

    def take_injection(self, operation: str, request: Request) -> Injection | None:
        with self.lock:
            for injection in self.injections:
                if injection.matches(operation, request):
                    injection.hits += 1
                    return injection
        return None

    def log_request(self, entry: LoggedRequest) -> None:
        self._log.append(entry)

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of the request log, oldest first."""
        return list(self._log)

    def clear_requests(self) -> None:
        self._log.clear()

    def reset_throttle(self) -> None:
        self.throttle.reset()

    def record_error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def fault(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.fault_rng.random() < rate

    @staticmethod
    def _check_content_type(content_type: str) -> None:
        if content_type not in CONTENT_TYPES:
            raise ValueError(f"unknown content type {content_type!r}; one of {', '.join(CONTENT_TYPES)}")


def _earliest_creation(records: list[dict[str, Any]], created: datetime) -> datetime:
    earliest = created
    for record in records:
        value = record.get("CreationTime")
        if isinstance(value, str):
            try:
                moment = timefmt.parse_api_time(value)
            except ValueError:
                continue
            earliest = min(earliest, moment)
    return max(earliest, created - timedelta(days=1))
