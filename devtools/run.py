"""`make run`: Azurite + (the simulator, or your tenant) + a collector loop + the query API on :7071.

Without M365_TENANT_ID in the environment it starts the Management Activity API simulator with a
7-day synthetic tenant that keeps producing fresh content. With a real tenant's settings it collects
from that tenant (docs/tenant-setup.md). Storage is a local Azurite unless
AUDIT_STORAGE_CONNECTION_STRING / AUDIT_STORAGE_ACCOUNT_NAME say otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.errors import AuthError, CollectorError, ConfigError

from . import azurite, simulator_process

RUN_DIR = azurite.REPO_ROOT / ".run"


def say(line: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {line}", file=sys.stderr, flush=True)


def start_simulator(state_dir: Path, days: int, records_per_hour: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    return simulator_process.start_simulator(state_dir, [
        "--days", str(days), "--records-per-hour", str(records_per_hour), "--live",
        # hourly blobs: realistic sizes, and a first backfill of minutes rather than hours on Azurite
        "--realism", "blob_interval_minutes=60", "--stories"])


def collector_loop(services, interval: float, first_done: threading.Event) -> None:  # type: ignore[no-untyped-def]
    from collector.cli import run_cycle

    while True:
        try:
            run_cycle(services, workers=4, quiet=False)
        except (ConfigError, AuthError) as exc:
            say(f"collector stopped: {exc}")
            first_done.set()
            return
        except CollectorError as exc:
            say(f"cycle failed (will retry): {exc}")
        first_done.set()
        time.sleep(interval)


def examples(services, port: int) -> list[str]:  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{port}"
    now = datetime.now(UTC)
    sample = next(iter(services.index.scan("t", now - timedelta(days=8), now + timedelta(hours=1))), None)
    lines = [f"curl '{base}/api/audit?top=5'"]
    if sample is not None:
        entry = sample.entry
        start = (now - timedelta(days=7)).strftime("%Y-%m-%d")
        lines += [
            f"curl '{base}/api/audit?user={entry.user}&start={start}&top=20'",
            f"curl '{base}/api/audit?operation={entry.operation}&format=csv' > {entry.operation}.csv",
            f"curl '{base}/api/audit/{entry.id}'",
        ]
    lines += [f"curl '{base}/api/audit?q=download&format=ndjson'", f"curl '{base}/api/health'",
              f"open {base}/api/openapi.json  (OpenAPI document)"]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between collector cycles")
    parser.add_argument("--days", type=int, default=7, help="simulated history")
    parser.add_argument("--records-per-hour", type=int, default=200, help="simulated tenant activity")
    args = parser.parse_args(argv)

    from collector.bootstrap import Services
    from collector.serve import make_server
    from collector.settings import Settings

    # `kill` (SIGTERM) cleans up like Ctrl-C: Azurite and the simulator are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    real_tenant = bool(os.environ.get("M365_TENANT_ID"))
    own_storage = bool(os.environ.get("AUDIT_STORAGE_CONNECTION_STRING") or os.environ.get("AUDIT_STORAGE_ACCOUNT_NAME"))
    RUN_DIR.mkdir(exist_ok=True)
    storage = None
    simulator = None
    server = None
    try:
        if not own_storage:
            # A real tenant's data is kept between runs; the simulator's tenant is new each time.
            location = RUN_DIR / ("azurite" if real_tenant else "azurite-simulated")
            if not real_tenant:
                shutil.rmtree(location, ignore_errors=True)
            storage = azurite.start(location=location, log_path=RUN_DIR / "azurite.log")
            os.environ["AUDIT_STORAGE_CONNECTION_STRING"] = storage.connection_string
            say(f"Azurite is storing data in {location}")
        if real_tenant:
            say(f"collecting from tenant {os.environ['M365_TENANT_ID']} (M365_TENANT_ID is set)")
        else:
            say(f"starting the Management Activity API simulator ({args.days} days of a synthetic tenant)...")
            simulator, sim_env = start_simulator(RUN_DIR / "simulator", args.days, args.records_per_hour)
            os.environ.update(sim_env)
            say(f"simulator on {sim_env.get('M365_API_URL')} (no tenant settings found; see docs/tenant-setup.md)")
        try:
            settings = Settings.from_env()
            settings.api_credentials()  # collection needs them: say so now, before serving
        except ConfigError as exc:
            print(f"make run: {exc}", file=sys.stderr)
            return 2
        query_services = Services(Settings.from_env())
        try:
            server = make_server(query_services, "127.0.0.1", args.port)
        except OSError as exc:  # say so now, not after the backfill
            print(f"make run: cannot serve on 127.0.0.1:{args.port} ({exc.strerror or exc}); "
                  f"choose another port: make run PORT=7072", file=sys.stderr)
            return 2
        # The query API answers from the start: while the backfill runs, results grow.
        threading.Thread(target=server.serve_forever, name="query-api", daemon=True).start()
        say(f"query API on {server.url}/api/audit (answering already; the backfill fills it)")
        services = Services(settings)
        first = threading.Event()
        threading.Thread(target=collector_loop, args=(services, args.interval, first), daemon=True).start()
        say("first collection cycle running (a 7-day backfill takes a few minutes)...")
        first.wait()
        tries = "\n  ".join(examples(query_services, args.port))
        print(f"\nAuditKeep query API on {server.url} — try:\n  {tries}\n", file=sys.stderr, flush=True)
        print(f"collecting every {args.interval:.0f} s; Ctrl-C to stop\n", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if simulator is not None:
            simulator.terminate()
            simulator.wait(timeout=10)
        if storage is not None:
            storage.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
