"""The one fake clock of the tests: our Clock seam (`.now()`) and the simulator's (a callable)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta


class FakeClock:
    """Moves only when a test says so; shared by the collector and the simulator in one test."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    __call__ = now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now
