"""The ingest cost of the detection rules: the CPU of a content blob's processing path (parse,
normalize, the rules) with and without the rules, over a synthetic day (simulator/synthetic.py)
plus every attack story. Stores are in memory, so the figure is the engine's own cost (with the
in-memory stand-ins' small share); the Table requests its window, first-seen and alert store calls
would send in production are counted (WindowTable's transactions per partition and 100 rows and
queries per 14 windows), beside the windows met (what the former layout, a write and a read per
window, sent). Writes the `alerts` section of docs/performance.md unless
--quick.

The two paths take turns (`--rounds` pairs, each round a fresh engine over the same blobs) and are
timed in process CPU time, so drift and other load on a shared machine weigh on both alike; the
figure is the median of the rounds' ratios, with the best round of each path beside it.

    python -m devtools.bench_alerts [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.alerts.engine import AlertEngine, Seen, WindowRow, apply_sightings
from collector.alerts.rules import load_rules
from collector.alerts.store import WINDOWS_PER_QUERY
from collector.collect import content_items, parse_records
from collector.models import ContentRef
from simulator import stories
from simulator.synthetic import generate_blobs

from .sections import write_section

TENANT = "5f1c2a3b-0000-4000-8000-00000000beef"
Blob = tuple[str, datetime, bytes]


class _Memory:
    """The engine's stores in memory (AlertStore, AlertOutbox, WindowStore, SeenStore), counting the
    Table requests the real stores would send (first-seen: a call is a get and at most one write)."""

    def __init__(self) -> None:
        self.alerts: set[str] = set()
        self.windows: dict[tuple[str, datetime], dict[str, WindowRow]] = {}
        self.seen: dict[tuple[str, str], Seen] = {}
        self.calls = {"window writes": 0, "window reads": 0, "first-seen": 0, "alert inserts": 0}
        self.windows_met = 0  # (blob, rule, key, window): the former layout's write and read each

    def insert(self, alert: Any) -> bool:
        self.calls["alert inserts"] += 1
        new = alert.id not in self.alerts
        self.alerts.add(alert.id)
        return new

    def queued(self, alert: Any) -> bool:
        return True

    def mark_queued(self, alert: Any) -> None:
        pass

    def send(self, alert: Any) -> None:
        pass

    def add(self, start: datetime, rows: Mapping[str, Sequence[WindowRow]]) -> None:
        # As WindowTable sends them: one transaction per 100 rows of a partition (the engine calls
        # this once per partition of a blob).
        self.calls["window writes"] += -(-sum(len(r) for r in rows.values()) // 100)
        self.windows_met += len(rows)
        for window, window_rows in rows.items():
            self.windows.setdefault((window, start), {}).update({row.record: row for row in window_rows})

    def rows(self, start: datetime, windows: Sequence[str], limit: int) -> dict[str, list[WindowRow]]:
        self.calls["window reads"] += -(-len(windows) // WINDOWS_PER_QUERY)  # one query per 14 windows of a partition
        return {window: list(self.windows.get((window, start), {}).values())[:limit] for window in windows}

    def sightings(self, rule: str, key: str, seen: Sequence[tuple[datetime, str]],
                  history: timedelta) -> tuple[list[str], Seen | None, int]:
        self.calls["first-seen"] += 1
        state, due, used = apply_sightings(self.seen.get((rule, key)), seen, history)
        if state is not None:
            self.seen[(rule, key)] = state
        return due, state, used


def workload(hours: int, per_hour: int) -> list[Blob]:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    _, specs = generate_blobs(TENANT, start, start + timedelta(hours=hours), per_hour)
    blobs = [(s.content_type, s.content_created, s.body) for s in specs]
    for index, name in enumerate(stories.STORIES):
        body = json.dumps(stories.records(name, start + timedelta(minutes=5 * index), TENANT)).encode()
        blobs.append((stories.STORIES[name].content_type, start, body))
    return blobs


def engine_over(memory: _Memory) -> AlertEngine:
    return AlertEngine(load_rules(), alerts=memory, outbox=memory, windows=memory, seen=memory, tenant_id=TENANT)


def run(blobs: list[Blob], engine: AlertEngine | None) -> tuple[float, int]:
    """CPU seconds of the processing path over `blobs` (with the rules when `engine`), and records."""
    began, count = time.process_time(), 0
    for content_type, created, body in blobs:
        ref = ContentRef(content_type, "x", "https://x", created, created + timedelta(days=7))
        records = parse_records(body, ref)
        items = content_items(records, content_type, created, "blob")
        if engine is not None:
            engine.observe(records, items, ref)
        count += len(items)
    return time.process_time() - began, count


def measure(blobs: list[Blob], rounds: int) -> dict[str, Any]:
    without: list[float] = []
    with_rules: list[float] = []
    memory, engine, count = _Memory(), None, 0
    for _ in range(rounds):
        seconds, count = run(blobs, None)
        without.append(seconds)
        memory = _Memory()
        engine = engine_over(memory)
        seconds, _ = run(blobs, engine)
        with_rules.append(seconds)
    assert engine is not None
    slower = statistics.median(1 - base / full for base, full in zip(without, with_rules, strict=True))
    return {"records": count, "rules": len(engine.rules), "alerts": engine.stats.alerts, "errors": engine.stats.errors,
            "matched": engine.stats.matched, "calls": memory.calls, "windows": memory.windows_met, "without": count / min(without),
            "with": count / min(with_rules), "slower": slower}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=0, help="pairs of runs (default 7, 3 with --quick)")
    args = parser.parse_args(argv)
    if args.rounds < 0:
        parser.error(f"--rounds must be a positive number of pairs, got {args.rounds}")
    hours = 2 if args.quick else 24
    rounds = args.rounds or (3 if args.quick else 7)
    logging.getLogger("collector.alerts").setLevel(logging.ERROR)  # alerts.raised per alert and round
    result = measure(workload(hours, 500 if args.quick else 2000), rounds)
    calls = ", ".join(f"{value:,} {name}" for name, value in result["calls"].items())
    text = (f"Detection rules on ingest (devtools/bench_alerts.py, {result['records']:,} records: {hours} h of the "
            f"synthetic tenant and every attack story; {result['rules']} rules; {result['alerts']} alerts; "
            f"{result['matched']:,} rule matches): parse + normalize {result['without']:,.0f} records/s of CPU "
            f"without the rules, {result['with']:,.0f} with them (best of {rounds} interleaved rounds each): the "
            f"rules' CPU costs {result['slower']:.1%} of the processing path (median of the rounds; goal: at most "
            f"10 %). Store calls per pass (each a Table request in production): {calls}.\n\n"
            f"Window storage per pass: {result['windows']:,} windows met (blob, rule, key, window), written in "
            f"{result['calls']['window writes']:,} transactions (per partition, the hour of the windows' starts, and "
            f"100 rows) and read back in {result['calls']['window reads']:,} queries (per partition and 14 windows); "
            f"the first layout (a partition per rule, key and window) sent a write and a read per window met: "
            f"{result['windows']:,} of each, and the second (a partition per window start) 3,534 writes and 3,702 "
            f"reads on this workload.")
    print(text)
    if result["errors"]:
        raise SystemExit(f"{result['errors']} rule failures: the figure would not be the rules' cost")
    if not args.quick:
        write_section("alerts", text)


if __name__ == "__main__":
    main()
