"""`make bench-quick`: every benchmark still runs end to end (tiny data), and leaves the docs alone."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from devtools.azurite import REPO_ROOT

PERFORMANCE_MD = REPO_ROOT / "docs" / "performance.md"


@pytest.mark.slow
@pytest.mark.timeout(660)  # the subprocess's own 600 s, not pytest's default 300 s per test
def test_bench_quick_runs_every_benchmark_without_touching_the_docs() -> None:
    before = hashlib.sha256(PERFORMANCE_MD.read_bytes()).hexdigest()
    done = subprocess.run([sys.executable, "-m", "devtools.bench", "--quick"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pipeline" in done.stdout and "ceiling" in done.stdout  # the ingestion comparison ran
    assert "## Query API" in done.stdout and "| (e) page through" in done.stdout  # and the query benchmark
    assert hashlib.sha256(PERFORMANCE_MD.read_bytes()).hexdigest() == before
