"""`collector serve`'s server on a background thread, for the tests that talk HTTP to it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from collector.serve import QueryApiServer


@contextlib.contextmanager
def running(server: QueryApiServer) -> Iterator[QueryApiServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
