"""collector/cost.py: the arithmetic against a case worked by hand, and `python -m collector cost`."""

from __future__ import annotations

import pytest

from collector import cli
from collector.cost import Scenario, estimate
from collector.errors import ConfigError

# 10,000 seats × 200 records = 2,000,000 records a day; 60.88 M a month (30.44 days).
PER_DAY = 2_000_000
BLOBS = PER_DAY * 30.44 / (212_794 / 850)  # 243,184 content blobs a month (250.3 records each)


def test_steady_month_of_a_10000_seat_tenant_worked_by_hand() -> None:
    e = estimate(Scenario(users=10_000, hot_days=31, years=7))
    gb = PER_DAY / 1e9
    assert e.steady["hot index storage"] == pytest.approx(gb * 31 * 295 * 0.045, rel=1e-9)  # $0.82
    # 7 years = 2,556.75 days: 30 in Cool, the rest in Cold
    assert e.steady["cold tier storage"] == pytest.approx(gb * 230.9 * (30 * 0.0152 + 2526.75 * 0.0036), rel=1e-9)
    # Hot 10 d, Cool 80 d, Cold 275 d, Archive 2,191.75 d
    assert e.steady["raw archive storage"] == pytest.approx(
        gb * 194 * (10 * 0.0208 + 80 * 0.0152 + 275 * 0.0036 + 2191.75 * 0.00099), rel=1e-9)  # $1.78
    table = (PER_DAY * 30.44 / 1000 * 31.5 + BLOBS * 3) / 1e4 * 0.00036
    # Bundles (the default): each original is written, read by compaction and by the bundle pass;
    # 5 bundles a day (77.6 MB per content type, under 128 MiB) are written and take three set-tiers.
    bundles = 5 * 30.44
    blob = BLOBS * (0.05 + 0.004 + 0.004) / 1e4 + bundles * (0.05 + 0.10 + 0.18 + 0.10) / 1e4
    assert e.steady["transactions"] == pytest.approx(table + blob, rel=1e-9)  # $1.51
    unbundled = estimate(Scenario(users=10_000, hot_days=31, years=7, bundles=False))
    assert unbundled.steady["transactions"] == pytest.approx(
        table + BLOBS * (0.05 + 0.004 + 0.10 + 0.18 + 0.10) / 1e4, rel=1e-9)  # $10.64: every content blob tiered
    # per 5-minute run: 5 s listing + ceil(27.7 blobs / 16) × 2 s; the compaction at 8,254 records/s
    seconds = 8766 * (5 + 2 * 2) + PER_DAY * 30.44 / 8254
    executions = 8766 + BLOBS + 30.44
    assert e.steady["Functions"] == pytest.approx(
        (seconds * 2 - 100_000) * 0.000026 + (executions - 250_000) / 1e6 * 0.40, rel=1e-9)  # $1.89
    assert e.steady_total == pytest.approx(10.41, abs=0.01)  # the goal: at most $25 a month
    assert unbundled.steady_total == pytest.approx(19.54, abs=0.01)
    # Sentinel: 1,406 B × 0.75 billed = 2.109 GB a day; 90 days free, interactive to 730, long-term to 2,556.75
    billed = gb * 1406 * 0.75
    assert e.sentinel_steady == pytest.approx(billed * (30.44 * 4.30 + 640 * 0.10 + 1826.75 * 0.02), rel=1e-9)
    assert e.log_analytics_steady == pytest.approx(billed * (30.44 * 2.30 + 699 * 0.10 + 1826.75 * 0.02), rel=1e-9)


def test_totals_add_the_months_as_the_stores_fill() -> None:
    e = estimate(Scenario(users=10_000, hot_days=31, years=1))
    # month 1 holds 30.44 days of index, months 2 to 12 the full 31
    assert e.total["hot index storage"] == pytest.approx(PER_DAY / 1e9 * 295 * 0.045 * (30.44 + 11 * 31), rel=1e-9)
    # the flows are the same every month once the lifecycle reached its last tier; before that fewer set-tiers
    assert e.total["Functions"] == pytest.approx(12 * e.steady["Functions"], rel=1e-9)
    assert e.total["transactions"] < 12 * e.steady["transactions"]
    assert e.grand_total == pytest.approx(sum(e.total.values()))


def test_cost_scales_with_seats_and_hot_days() -> None:
    small, large = estimate(Scenario(users=1_000, hot_days=31)), estimate(Scenario(users=100_000, hot_days=31))
    assert large.steady["hot index storage"] == pytest.approx(100 * small.steady["hot index storage"])
    assert estimate(Scenario(users=1_000, hot_days=62)).steady["hot index storage"] == pytest.approx(
        2 * small.steady["hot index storage"])
    with pytest.raises(ConfigError, match="users"):
        estimate(Scenario(users=0))


def test_cli_prints_the_table_with_its_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost", "--users", "10000"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0].strip(): line.split() for line in out.splitlines() if "  " in line}
    assert lines["hot index storage"][-2:] == ["$2.39", "$198.36"]  # the default 90 hot days
    assert lines["AuditKeep all-in"][-2:] == ["$11.98", "$784.24"]
    assert lines["Sentinel (PAYG, all billed)"][-2:] == ["$488.08", "$35,127"]
    assert "10,000 seats, hot index 90 days, retention 7 years" in out
    assert "measured (2026-12-04)" in out and "docs/prices.md" in out

    assert cli.main(["cost", "--users", "10000", "--hot-days", "365", "--years", "1"]) == 0
    assert "hot index 365 days, retention 1 year" in capsys.readouterr().out
    assert cli.main(["cost", "--users", "0"]) == cli.EXIT_CONFIG
