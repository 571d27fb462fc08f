"""The alert services of one Services (bootstrap.py's `alerts`), each built on first use.

It gets the clients it needs from bootstrap, never `Services` itself, so wiring only points down."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import cached_property
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient, TextBase64EncodePolicy

from ..errors import ConfigError
from ..settings import Settings
from ..tables import TableClients
from ..timeutil import Clock
from .deliver import Deliverer, WebhookConfig
from .engine import AlertEngine
from .rules import Rule, load_rules
from .silence import SilenceCheck
from .store import AlertQueue, AlertTable, SeenTable, WindowTable

log = logging.getLogger(__name__)


class AlertServices:
    def __init__(self, settings: Settings, *, tables: TableClients, queue_service: QueueServiceClient,
                 blob_service: BlobServiceClient, health_report: Callable[[], dict[str, Any]], clock: Clock) -> None:
        self.settings = settings
        self.tables = tables
        self.queue_service = queue_service
        self.blob_service = blob_service
        self.health_report = health_report
        self.clock = clock

    @cached_property
    def rules(self) -> list[Rule]:
        """The built-in rules with the user's (ALERT_RULES_JSON, else the ALERT_RULES_BLOB blob). User
        rules that cannot be read or are invalid are logged (alerts.rules_invalid) and the built-in
        rules run instead: ingest never stops over them (ALERT_RULES_JSON is checked at startup)."""
        s = self.settings
        user = s.alert_rules_json or None
        try:
            if user is None and s.alert_rules_blob:
                container, _, name = s.alert_rules_blob.partition("/")
                blob = self.blob_service.get_blob_client(container, name)
                user = blob.download_blob().readall().decode("utf-8")
            return load_rules(user)
        except (ConfigError, AzureError, UnicodeDecodeError) as exc:
            log.error("alerts.rules_invalid %s; the built-in rules run instead", exc,
                      extra={"rulesBlob": s.alert_rules_blob, "errorType": type(exc).__name__})
            return load_rules()

    @cached_property
    def table(self) -> AlertTable:
        return AlertTable(self.tables, self.settings.table_prefix)

    @cached_property
    def windows(self) -> WindowTable:
        return WindowTable(self.tables, self.settings.table_prefix)

    @cached_property
    def queue(self) -> AlertQueue:
        queue = AlertQueue(self.queue_service, self.settings.alert_queue)
        queue.ensure()
        return queue

    @cached_property
    def engine(self) -> AlertEngine:
        s = self.settings
        return AlertEngine(self.rules, alerts=self.table, outbox=self.queue, windows=self.windows,
                           seen=SeenTable(self.tables, s.table_prefix), tenant_id=s.tenant_id)

    @property
    def sink(self) -> AlertEngine | None:
        """What ContentProcessor calls after indexing; None when ALERTS_ENABLED=false."""
        return self.engine if self.settings.alerts_enabled else None

    @cached_property
    def silence(self) -> SilenceCheck:
        return SilenceCheck(self.rules, self.health_report, self.engine.raise_alert, clock=self.clock)

    @cached_property
    def deliverer(self) -> Deliverer:
        s = self.settings
        webhook = (WebhookConfig(s.alert_webhook_url.reveal(), s.alert_webhook_format,
                                 s.alert_webhook_secret.reveal() if s.alert_webhook_secret else "")
                   if s.alert_webhook_url else None)
        output = None
        if s.alert_output_queue:
            output = self.queue_service.get_queue_client(s.alert_output_queue,
                                                                  message_encode_policy=TextBase64EncodePolicy())
            with contextlib.suppress(AzureError):  # exists (or made by the template); a real failure shows at send
                output.create_queue()
        return Deliverer(self.table, webhook=webhook, output_queue=output, retry=self.queue, clock=self.clock)

    def deliver_queued(self) -> int:
        """Deliver what the alert queue holds, in-process (the deliver_alert function's work)."""
        return self.queue.drain(self.deliverer.deliver_message) if self.settings.alerts_enabled else 0

    def check(self) -> int:
        """The timer's work: health rules, then old window tables dropped. The alerts raised."""
        found = self.silence.run() if self.settings.alerts_enabled else []
        self.windows.prune(self.clock.now())
        return len(found)
