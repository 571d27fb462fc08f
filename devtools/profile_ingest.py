"""Where ingest's time goes (issue 11): one backfill through the deployed pipeline, timed by phase.

    python -m devtools.profile_ingest [--days 2] [--records-per-hour 240] [--workers 4] [--rules]
                                      [--cprofile .bench/ingest.pstats] [--compare ROUNDS]

Runs the simulator's backfill through `collector.collect` (listing → queue → ContentProcessor,
drained by `collector.drain`) on a fresh in-memory Azurite, detection rules off unless `--rules`,
and reports:

- per phase (fetch, parse, normalize, archive gzip, archive upload, index encode, index write,
  ledger, queue, rules): calls, wall seconds summed over the threads, and CPU seconds of the
  calling thread (`time.thread_time`), per 1,000 records; wall summed over threads against the
  run's wall × workers shows where the workers wait;
- per storage service: requests, their wall time summed, and the order of the requests of one
  blob (the first blob processed);
- with `--cprofile`: one cProfile per thread, merged, the top functions by own time.

`--compare ROUNDS` measures the levers instead: the VARIANTS (the queue traffic as it was, as it
is, with twice the workers) one after the other on fresh Azurites, ROUNDS rounds, each variant's
records/s as a ratio to the old one's in the same round.

A development tool, not a test: it wraps the stores' methods from outside (nothing in collector/ is
changed for it) and prints; docs/performance.md quotes what it found.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import gzip
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from . import azurite
from .bench_ingest import CONTENT_TYPES, table_role
from .benchkit import BENCH_DIR, start_simulator


class Phases:
    """Wall and thread-CPU seconds per phase; nested phases are charged to the innermost one only."""

    def __init__(self) -> None:
        self.wall: collections.Counter[str] = collections.Counter()
        self.cpu: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._local = threading.local()

    def wrap(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack: list[list[float]] = self._local.__dict__.setdefault("stack", [])
            frame = [0.0, 0.0]  # wall and cpu of nested phases, subtracted from this one
            stack.append(frame)
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                stack.pop()
                if stack:
                    stack[-1][0] += wall
                    stack[-1][1] += cpu
                with self._lock:
                    self.wall[phase] += wall - frame[0]
                    self.cpu[phase] += cpu - frame[1]
                    self.calls[phase] += 1
        return timed

    def patch(self, owner: Any, attribute: str, phase: str) -> None:
        setattr(owner, attribute, self.wrap(phase, getattr(owner, attribute)))


class Requests:
    """Every HTTP request of this process by service, timed, and the first blob's request order."""

    def __init__(self) -> None:
        self.ports: dict[int, str] = {}
        self.count: collections.Counter[str] = collections.Counter()
        self.wall: collections.Counter[str] = collections.Counter()
        self.trace: dict[int, list[str]] = {}  # thread id → its requests, while tracing
        self._lock = threading.Lock()
        self._original = requests.Session.send

    def install(self) -> None:
        original, me = self._original, self

        def send(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            url = urlsplit(request.url or "")
            kind = me.ports.get(url.port or 443, "api")
            if kind == "table":
                kind = f"table:{table_role(url.path, request.body)}"
            started = time.perf_counter()
            try:
                return original(session, request, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with me._lock:
                    me.count[kind] += 1
                    me.wall[kind] += elapsed
                    trace = me.trace.get(threading.get_ident())
                    if trace is not None:
                        trace.append(f"{kind} {request.method} {url.path[:60]} {1000 * elapsed:.1f} ms")

        requests.Session.send = send  # type: ignore[method-assign]  # the profile's own counting seam

    def uninstall(self) -> None:
        requests.Session.send = self._original  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> None:
    from collector import archive as archive_module
    from collector import collect, drain, index
    from collector.bootstrap import Services
    from collector.settings import Settings

    BENCH_DIR.mkdir(exist_ok=True)
    simulator, env = start_simulator(BENCH_DIR / "simulator-profile", args.records_per_hour, args.days, args.seed)
    os.environ.update({k: v for k, v in env.items() if k == "REQUESTS_CA_BUNDLE"})
    phases, http = Phases(), Requests()
    profiles: list[cProfile.Profile] = []
    local = threading.local()
    try:
        storage = azurite.start(in_memory=True, log_path=BENCH_DIR / "azurite-profile.log")
        try:
            for kind in ("blob", "queue", "table"):
                http.ports[getattr(storage, f"{kind}_port")] = kind
            services = Services(Settings.from_env({
                **env, "AUDIT_STORAGE_CONNECTION_STRING": storage.connection_string, "AUDIT_TABLE_PREFIX": "bench",
                "M365_CONTENT_TYPES": ",".join(CONTENT_TYPES), "COLLECT_MAX_RUNTIME_SECONDS": "7200",
                "ALERTS_ENABLED": str(args.rules).lower()}))
            services.ensure_storage()
            processor, queue, ledger = services.processor, services.queue, services.ledger
            # The phases, patched from outside (module functions where the processor calls them).
            phases.patch(processor.api, "fetch_content", "fetch")
            phases.patch(collect, "parse_records", "parse")
            phases.patch(collect, "normalize_record", "normalize")
            archive_module.gzip = _GzipShim(phases)  # type: ignore[assignment]  # time gzip.compress inside put
            phases.patch(processor.archive, "put", "archive upload")
            phases.patch(index, "plan_batches", "index encode")
            phases.patch(processor.index, "_submit", "index write")
            phases.patch(processor.index, "ensure_table", "index write")
            for method in ("status", "mark", "known", "mark_queued"):
                phases.patch(ledger, method, "ledger")
            for method in ("send", "receive", "delete", "depth"):
                phases.patch(queue, method, "queue")
            if processor.alerts is not None:
                phases.patch(processor.alerts, "observe", "rules")
            traced = [False]
            process = processor.process

            def profiling(function: Callable[..., Any]) -> Callable[..., Any]:
                """`function` under this thread's own cProfile (the index writes on threads of their own too)."""
                def run(*a: Any, **k: Any) -> Any:
                    if not args.cprofile or getattr(local, "on", False):
                        return function(*a, **k)
                    if not hasattr(local, "profile"):
                        local.profile = cProfile.Profile()
                        profiles.append(local.profile)
                    local.on = True
                    local.profile.enable()
                    try:
                        return function(*a, **k)
                    finally:
                        local.profile.disable()
                        local.on = False
                return run

            def traced_process(body: bytes | str, dequeue_count: int = 1) -> Any:
                first = not traced[0]
                if first:
                    traced[0] = True
                    http.trace[threading.get_ident()] = []
                try:
                    return process(body, dequeue_count)
                finally:
                    if first:
                        http.trace["first"] = http.trace.pop(threading.get_ident())  # type: ignore[index]

            processor.process = profiling(traced_process)  # type: ignore[method-assign]
            processor.index._submit = profiling(processor.index._submit)  # type: ignore[method-assign]
            helpers = {"azurite": storage.process.pid, "simulator": simulator.pid}
            helper_cpu = {name: _cpu_of(pid) for name, pid in helpers.items()}
            http.install()
            main_profile = cProfile.Profile()
            if args.cprofile:
                profiles.append(main_profile)
                main_profile.enable()
            started, cpu = time.perf_counter(), time.process_time()
            listing = services.listing.run()
            listed_at = time.perf_counter()
            report = drain.drain(queue, processor, workers=args.workers)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
            main_profile.disable()
            http.uninstall()
            helper_cpu = {name: _cpu_of(pid) - helper_cpu[name] for name, pid in helpers.items()}
        finally:
            storage.stop()
    finally:
        simulator.terminate()
        simulator.wait(timeout=20)
    records = report.records
    print(f"{records:,} records in {report.processed} blobs ({listing.queued} queued); wall {seconds:.1f} s "
          f"(listing {listed_at - started:.1f} s), {records / seconds:,.0f} rec/s; process CPU {cpu_seconds:.1f} s = "
          f"{1000 * cpu_seconds / records:.3f} s per 1,000 records; {args.workers} workers; load {_load()}")
    print("helper processes' CPU: " + ", ".join(f"{name} {cpu:.1f} s = {1000 * cpu / records:.3f} s per 1,000 records"
                                                 for name, cpu in helper_cpu.items()))
    print(f"\n{'phase':<16}{'calls':>8}{'wall s':>9}{'wall/1k':>9}{'cpu s':>8}{'cpu/1k':>8}  (wall summed over threads)")
    for phase in sorted(phases.wall, key=lambda p: -phases.wall[p]):
        print(f"{phase:<16}{phases.calls[phase]:>8}{phases.wall[phase]:>9.1f}{1000 * phases.wall[phase] / records:>9.2f}"
              f"{phases.cpu[phase]:>8.1f}{1000 * phases.cpu[phase] / records:>8.3f}")
    print(f"{'(sum)':<16}{'':>8}{sum(phases.wall.values()):>9.1f}{'':>9}{sum(phases.cpu.values()):>8.1f}")
    print(f"\n{'service':<16}{'requests':>9}{'per 1k rec':>11}{'per blob':>9}{'wall s':>8}{'ms each':>8}")
    for kind in sorted(http.count):
        print(f"{kind:<16}{http.count[kind]:>9}{1000 * http.count[kind] / records:>11.1f}"
              f"{http.count[kind] / max(report.processed, 1):>9.2f}{http.wall[kind]:>8.1f}"
              f"{1000 * http.wall[kind] / http.count[kind]:>8.1f}")
    print("\nthe first blob's requests, in order:")
    for line in http.trace.get("first", []):  # type: ignore[call-overload]
        print("  " + line)
    if args.cprofile:
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(args.cprofile)
        print(f"\ncProfile (all threads, {len(profiles)} profiles) → {args.cprofile}; top by own time:")
        stats.sort_stats("tottime").print_stats(args.top)


VARIANTS = {
    # what the levers of issue 11 changed in the queue traffic, each undone on its own
    "before": {"new_batch_threshold": "ask", "send_threads": 1},  # a receive after every message, sends one by one
    "after": {},  # as deployed
    "workers 8": {"workers": 8},  # as deployed, twice the drain's threads
}


def compare(args: argparse.Namespace) -> None:
    """`--compare N`: the variants one after the other on fresh Azurites against one simulator, N
    rounds, rules off; per variant the median of wall, listing, CPU and requests, and its ratio
    to "before" per round (the rounds see the machine's load alike)."""
    from collector import drain, queue
    from collector.bootstrap import Services
    from collector.settings import Settings

    BENCH_DIR.mkdir(exist_ok=True)
    simulator, env = start_simulator(BENCH_DIR / "simulator-profile", args.records_per_hour, args.days, args.seed)
    os.environ.update({k: v for k, v in env.items() if k == "REQUESTS_CA_BUNDLE"})
    http = Requests()
    rows: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
    default_threads = queue.SEND_THREADS
    try:
        http.install()
        for number in range(args.compare):
            for variant, change in VARIANTS.items():
                workers = int(change.get("workers", args.workers))
                threshold = 2 * workers - 1 if change.get("new_batch_threshold") == "ask" else None
                queue.SEND_THREADS = int(change.get("send_threads", default_threads))
                storage = azurite.start(in_memory=True, log_path=BENCH_DIR / "azurite-profile.log")
                try:
                    http.ports = {getattr(storage, f"{kind}_port"): kind for kind in ("blob", "queue", "table")}
                    services = Services(Settings.from_env({
                        **env, "AUDIT_STORAGE_CONNECTION_STRING": storage.connection_string,
                        "AUDIT_TABLE_PREFIX": "bench", "M365_CONTENT_TYPES": ",".join(CONTENT_TYPES),
                        "COLLECT_MAX_RUNTIME_SECONDS": "7200", "ALERTS_ENABLED": "false"}))
                    services.ensure_storage()
                    http.count.clear()
                    load, azurite_cpu = _load().split()[0], _cpu_of(storage.process.pid)
                    started, cpu = time.perf_counter(), time.process_time()
                    services.listing.run()
                    listed = time.perf_counter()
                    report = drain.drain(services.queue, services.processor, workers=workers,
                                         new_batch_threshold=threshold)
                    ended = time.perf_counter()
                    row = {"records": report.records, "seconds": ended - started, "listing": listed - started,
                           "cpu": time.process_time() - cpu, "azurite": _cpu_of(storage.process.pid) - azurite_cpu,
                           **{f"req {kind}": float(count) for kind, count in http.count.items()}}
                    if report.poisoned or report.failed_attempts:
                        raise RuntimeError(f"pipeline errors: {report}")
                finally:
                    storage.stop()
                rows[variant].append(row)
                print(f"round {number + 1} {variant}: {row['records']:,} records {row['seconds']:.1f} s "
                      f"({row['records'] / row['seconds']:,.0f}/s), listing {row['listing']:.1f} s, "
                      f"CPU {row['cpu']:.1f} s, Azurite {row['azurite']:.1f} s, load {load} → {_load().split()[0]}",
                      file=sys.stderr, flush=True)
    finally:
        queue.SEND_THREADS = default_threads
        http.uninstall()
        simulator.terminate()
        simulator.wait(timeout=20)
    base = rows["before"]
    kinds = sorted({key for runs in rows.values() for run in runs for key in run if key.startswith("req ")})
    print(f"\n{'variant':<11}{'rec/s':>7}{'ratio':>7}{'listing s':>10}{'CPU s/1k':>9}{'Azurite/1k':>11}  "
          "requests per 1,000 records")
    for variant, runs in rows.items():
        rate = _median([r["records"] / r["seconds"] for r in runs])
        ratio = _median([r["records"] / r["seconds"] / (b["records"] / b["seconds"]) for r, b in zip(runs, base, strict=True)])
        requests_per_k = ", ".join(f"{kind[4:]} {_median([1000 * r.get(kind, 0) / r['records'] for r in runs]):.1f}"
                                   for kind in kinds)
        print(f"{variant:<11}{rate:>7.0f}{ratio:>7.2f}{_median([r['listing'] for r in runs]):>10.1f}"
              f"{_median([1000 * r['cpu'] / r['records'] for r in runs]):>9.2f}"
              f"{_median([1000 * r['azurite'] / r['records'] for r in runs]):>11.2f}  {requests_per_k}")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class _GzipShim:
    """collector.archive's `gzip`, with `compress` timed as its own phase."""

    def __init__(self, phases: Phases) -> None:
        self.compress = phases.wrap("archive gzip", gzip.compress)
        self.decompress = gzip.decompress


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (and its waited-for children), from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.profile_ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records-per-hour", type=int, default=240)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rules", action="store_true", help="detection rules on (default off)")
    parser.add_argument("--cprofile", default="", help="write the merged cProfile of every thread here")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--compare", type=int, default=0, metavar="ROUNDS",
                        help="instead of profiling: the levers' variants (VARIANTS) in ROUNDS interleaved rounds")
    args = parser.parse_args(argv)
    if args.compare:
        compare(args)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
