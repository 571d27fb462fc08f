"""Live mode: keep adding fresh content so a running collector finds new blobs every cycle."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from .state import Simulator
from .synthetic import Generator, Realism

log = logging.getLogger("simulator")

# Live content should show up within a collector cycle or two, so latency is short (still non-zero,
# so blobs keep appearing after the events that fill them, as in docs/api-behaviour.md "Latency").
LIVE_DEFAULTS: dict[str, Any] = {
    "latency_median_minutes": 1.0, "latency_sigma": 0.6, "latency_tail_rate": 0.01, "latency_tail_hours": 1.0,
    "blob_interval_minutes": 1.0, "late_blobs_per_day": 0.0,
}


class LiveFeed:
    """Every `interval_seconds`, generate the events since the last tick and add their blobs."""

    def __init__(self, sim: Simulator, records_per_hour: float = 500.0, seed: int = 2, interval_seconds: float = 5.0,
                 tenant_id: str | None = None, content_types: Any = None, **realism: Any) -> None:
        self.sim = sim
        self.records_per_hour = records_per_hour
        self.interval = interval_seconds
        tenant = sim.tenant(tenant_id)
        self.tenant_id = tenant.tenant_id
        self.generator = Generator(tenant.tenant_id, tenant.domain, seed, Realism.from_kwargs({**LIVE_DEFAULTS, **realism}), content_types)
        self.last = sim.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Add the blobs of events since the previous tick; return how many blobs were added."""
        now = self.sim.now()
        if now <= self.last:
            return 0
        added = 0
        for spec in self.generator.blobs(self.last, now, self.records_per_hour):
            self.sim.add_rendered_blob(spec.content_type, spec.content_created, spec.body, spec.record_count,
                                       expiration=spec.expiration, tenant_id=self.tenant_id, t1=spec.t1)
            added += 1
        self.last = now
        return added

    def start(self) -> LiveFeed:
        self._thread = threading.Thread(target=self._run, name="simulator-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                added = self.tick()
            except Exception:  # keep feeding; the failure is logged and visible in sim.errors
                log.exception("live feed tick failed")
                self.sim.record_error(traceback.format_exc())
                continue
            if added:
                log.debug("live feed added %d blobs", added)
