"""The query benchmark's pure helpers (the benchmark itself is a development tool, not a test)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from devtools import bench_query as bench


def test_update_performance_md_replaces_only_its_section(tmp_path):
    path = tmp_path / "performance.md"
    bench.update_performance_md("## Query API\nfirst\n", path)
    assert path.read_text() == f"# Performance\n\n{bench.START_MARK}\n## Query API\nfirst\n{bench.END_MARK}\n"
    others = "# Performance\n\n<!-- bench:ingest:start -->\ningest numbers\n<!-- bench:ingest:end -->\n"
    path.write_text(others)
    bench.update_performance_md("one\n", path)
    bench.update_performance_md("two\n", path)
    text = path.read_text()
    assert text.startswith(others) and text.count(bench.START_MARK) == 1 and "two\n" in text and "one" not in text
    path.write_text(f"intro\n{bench.START_MARK}\nold\n{bench.END_MARK}\noutro\n")
    bench.update_performance_md("new\n", path)
    assert path.read_text() == f"intro\n{bench.START_MARK}\nnew\n{bench.END_MARK}\noutro\n"


@pytest.mark.parametrize("values, fraction, expected", [
    ([1.0], 0.95, 1.0), (list(range(1, 21)), 0.95, 19), (list(range(1, 21)), 0.5, 10), ([3, 1, 2], 0.5, 2),
])
def test_percentile_is_nearest_rank(values, fraction, expected):
    assert bench.percentile([float(v) for v in values], fraction) == expected


def test_synthetic_data_is_deterministic_skewed_and_in_range():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items = list(bench.synthetic_items(5000, start, 3))
    again = list(bench.synthetic_items(5000, start, 3))
    assert items == again and len(items) == 5000
    assert all(start <= item.when < datetime(2026, 1, 4, tzinfo=UTC) for item in items)
    users = [item.entry.user for item in items]
    top = max(set(users), key=users.count)
    assert users.count(top) > 5000 / 100 and len(set(users)) > 500  # Zipf: a few heavy users, a long tail
    assert len({item.entry.operation for item in items}) > 60
    assert sum(bench.hourly_counts(1000, 48, random.Random(1))) == 1000


def test_dataset_and_fingerprint_are_the_same_in_another_process():
    # str hashes are salted per process: anything the marker or the data depends on must not use hash().
    import subprocess
    import sys

    code = ("import random; from datetime import datetime, UTC; from devtools import bench_query as b; "
            "e = b.synthetic_entry(random.Random(3), b.Universe.build(), datetime(2026, 1, 1, tzinfo=UTC)); "
            "print(b.layout_fingerprint(), e.clientIp, e.object, e.userAgent)")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=bench.REPO_ROOT).stdout
               for seed in ("1", "2")}
    assert len(outputs) == 1 and outputs.pop().split()[0] == bench.layout_fingerprint()


def test_the_meter_tells_queries_from_point_reads_and_the_section_shows_them():
    class Transport:  # the seam the meter wraps: collector.tables' shared transport has this one method
        def send(self, request, **kwargs):
            return request.url

    class Request:
        def __init__(self, url):
            self.url = url

    transport = Transport()
    meter = bench._Meter(transport)
    base = "http://127.0.0.1:1/devstoreaccount1/"
    for url in (base + "benchk20260101()?$filter=x", base + "bencht20260101(PartitionKey='03',RowKey='9')",
                base + "bencht20260101(PartitionKey='04',RowKey='8')", base + "Tables"):
        assert transport.send(Request(url)) == url
    queries, points, _, _ = meter.snapshot()
    assert (queries, points) == (1, 2)
    scenario = bench.Scenario("(a) one user", 0.3, [0.2, 0.4], [100, 64], [(3, 40, 0.03, 0.2), (5, 99, 0.05, 0.5)],
                              [False, True])
    dataset = bench.Dataset(500_000, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    text = bench.render([scenario], dataset, (1.5, 2.5))
    assert "| (a) | 4 | 70 | 10.0 | 5.0 | 1 of 2 |" in text and "load average 1.5 at the start and 2.5" in text
