"""The ingest cost of the detection rules: records/s of a content blob's processing CPU path (parse,
normalize, the rules) with and without the rules, over a synthetic day (simulator/synthetic.py)
plus every attack story. Stores are in memory, so the figure is the engine's own cost; storage
writes happen only for matches (rare in normal traffic). Writes the `alerts` section of
docs/performance.md unless --quick.

    python -m devtools.bench_alerts [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.alerts.engine import AlertEngine, WindowRow
from collector.alerts.rules import load_rules
from collector.collect import content_items, parse_records
from collector.models import ContentRef
from simulator import stories
from simulator.synthetic import generate_blobs

from .sections import write_section

TENANT = "5f1c2a3b-0000-4000-8000-00000000beef"


class _Memory:
    def __init__(self) -> None:
        self.alerts: set[str] = set()
        self.rows: dict[tuple[str, str, datetime], dict[str, WindowRow]] = {}
        self.seen: dict[tuple[str, str], str] = {}

    def insert(self, alert: Any) -> bool:
        new = alert.id not in self.alerts
        self.alerts.add(alert.id)
        return new

    def queued(self, alert: Any) -> bool:
        return True

    def mark_queued(self, alert: Any) -> None:
        pass

    def send(self, alert: Any) -> None:
        pass

    def add(self, rule: str, key: str, start: datetime, rows: Any) -> None:
        self.rows.setdefault((rule, key, start), {}).update({row.record: row for row in rows})

    def rows_of(self, rule: str, key: str, start: datetime, limit: int) -> list[WindowRow]:
        return list(self.rows.get((rule, key, start), {}).values())[:limit]

    def sighting(self, rule: str, key: str, when: datetime, record: str, history: timedelta) -> str | None:
        return None if (rule, key) in self.seen else self.seen.setdefault((rule, key), record)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    hours = 2 if args.quick else 24
    _, specs = generate_blobs(TENANT, start, start + timedelta(hours=hours), 2000 if not args.quick else 500)
    blobs = [(s.content_type, s.content_created, s.body) for s in specs]
    for index, name in enumerate(stories.STORIES):
        body = json.dumps(stories.records(name, start + timedelta(minutes=5 * index), TENANT)).encode()
        blobs.append((stories.STORIES[name].content_type, start, body))
    memory = _Memory()
    memory.rows_of = memory.rows_of  # the WindowStore's rows()
    engine = AlertEngine(load_rules(), alerts=memory, outbox=memory, seen=memory, tenant_id=TENANT,
                         windows=type("W", (), {"add": memory.add, "rows": memory.rows_of})())  # type: ignore[arg-type]
    results = {}
    for label, with_rules in (("without rules", False), ("with rules", True), ("without rules (again)", False)):
        began, count = time.perf_counter(), 0
        for content_type, created, body in blobs:
            ref = ContentRef(content_type, "x", "https://x", created, created + timedelta(days=7))
            records = parse_records(body, ref)
            items = content_items(records, content_type, created, "blob")
            if with_rules:
                engine.observe(records, items, ref)
            count += len(items)
        results[label] = count / (time.perf_counter() - began)
    base = (results["without rules"] + results["without rules (again)"]) / 2
    slower = 1 - results["with rules"] / base
    text = (f"Detection rules on ingest (devtools/bench_alerts.py, {count:,} records: {hours} h of the synthetic tenant "
            f"and every attack story; {len(engine.rules)} rules; {engine.stats.alerts} alerts): parse + normalize "
            f"{base:,.0f} records/s without the rules, {results['with rules']:,.0f} with them: the rules' CPU costs "
            f"{slower:.1%} of the processing path (goal: at most 10 %). Storage adds a write only per match.")
    print(text)
    if not args.quick:
        write_section("alerts", text)


if __name__ == "__main__":
    main()
