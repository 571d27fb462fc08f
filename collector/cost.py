"""What AuditKeep costs a tenant per month and over its retention, from measured bytes and requests
per record and dated prices (pure; `python -m collector cost`).

Every input is in one of three blocks below, each with its date and source: MEASURED (what
`make bench` measured, docs/performance.md), ASSUMED (what nothing measured yet: volume per seat
and the Functions model), PRICES (docs/prices.md, East US, LRS, pay as you go, USD). Change a
block when its source changes; the arithmetic never holds a number of its own.

The model, month m of a deployment (t = m × 30.44 days of data collected):
- storage: every tier holds the data aged [a, b) days, so its stock is
  records/day × bytes/record × max(0, min(b, t, retention) − a); the hot index holds the newest
  `hot_days`, the cold tier every day (Cool for 30 days, then Cold: the cold container's
  lifecycle rule), the raw archive Hot → Cool (7 d) → Cold (90 d) → Archive (365 d) (infra defaults);
- transactions: index transactions and ledger/queue operations per record and blob as measured,
  one write per archive blob and one set-tier per transition the blob has reached by month m;
- Functions (Flex on demand): billed while an instance executes, so per timer run the listing
  plus the run's content blobs processed QUEUE_BATCH at a time, and the daily compaction at the
  measured rate; the monthly free grant is subtracted (assumed unused by anything else);
- Sentinel / Log Analytics for the same records: ingestion of the billed size, interactive
  retention after the free window up to 2 years, long-term retention after that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import ConfigError

DAYS_PER_MONTH = 30.44
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class Measured:
    """`make bench` on 2 cores against Azurite, synthetic records (simulator/synthetic.py)."""

    date: str = "2026-12-04"
    source: str = ("docs/performance.md, 'Ingestion (issue 2)' (devtools/bench.py), 'Ingest: the lean hot index' "
                   "(devtools/bench_ingest.py, index format 2 by tenant size) and 'Cold tier' "
                   "(devtools/bench_cold.py, 400,000-record day)")
    # Index format 2 at 10,000 seats (bench_ingest `by_tenant_size`): blocks, postings and id entries,
    # Table billed size. Smaller tenants have smaller blobs and pay more per record (346 B at 1,000
    # seats, 499 B at 50), which their volume makes negligible.
    index_bytes_per_record: float = 295.0
    archive_bytes_per_record: float = 194.0  # gzip JSON as stored
    cold_bytes_per_record: float = 230.9  # records + time + ids Parquet files
    raw_json_bytes_per_record: float = 1406.0  # the API's JSON, uncompressed
    index_transactions_per_1000: float = 31.5  # index format 2 (ids in their own table) at 10,000 seats (bench_ingest `by_tenant_size`)
    records_per_blob: float = 212_794 / 850  # 850 content blobs
    compaction_records_per_second: float = 8254.0


@dataclass(frozen=True)
class Assumed:
    """Not measured by this project (yet): each with where it comes from."""

    records_per_seat_per_day: float = 200.0  # docs/prices.md "Volume and Functions assumptions" (Octiga KB)
    ledger_operations_per_blob: float = 3.0  # collect.py: listing's known() + mark_queued, processing's mark done
    queue_operations_per_blob: float = 3.0  # send, receive, delete (no queue price in docs/prices.md)
    timer_runs_per_month: float = 8766.0  # COLLECT_SCHEDULE every 5 minutes (infra/main.bicep)
    timer_seconds: float = 5.0  # one listing run (docs/deploy.md "Cost estimate")
    seconds_per_blob: float = 2.0  # one content blob: fetch, archive, index (docs/deploy.md, docs/prices.md)
    queue_batch: int = 16  # blobs one instance runs at once (host.json extensions.queues.batchSize)
    instance_gb: float = 2.0  # Flex Consumption default instance memory (2,048 MB, docs/prices.md "Azure Functions")
    la_billed_fraction: float = 0.75  # Log Analytics bills ~25% less than the incoming size (docs/prices.md "Microsoft Sentinel and Log Analytics")


@dataclass(frozen=True)
class Prices:
    """USD, East US, LRS, pay as you go: Retail Prices API snapshots as compiled in docs/prices.md
    (2026-11-25; blob, table and Functions snapshots dated 2026-07-29, secondary sources)."""

    date: str = "2026-07-29 (compiled 2026-11-25)"
    source: str = ("docs/prices.md (Blob, Table, Functions, Sentinel); "
                   "https://prices.azure.com/api/retail/prices (re-check before relying on them)")
    table_gb_month: float = 0.045
    table_per_10k: float = 0.00036
    blob_gb_month: tuple[float, float, float, float] = (0.0208, 0.0152, 0.0036, 0.00099)  # Hot, Cool, Cold, Archive
    blob_write_per_10k: tuple[float, float, float, float] = (0.05, 0.10, 0.18, 0.10)  # write / set tier into
    blob_read_per_10k_hot: float = 0.004
    function_gb_s: float = 0.000026
    function_per_million: float = 0.40
    free_gb_s: float = 100_000.0
    free_executions: float = 250_000.0
    sentinel_per_gb: float = 4.30  # unconfirmed: sources disagree by region
    log_analytics_per_gb: float = 2.30
    interactive_gb_month: float = 0.10
    long_term_gb_month: float = 0.02
    sentinel_free_days: float = 90.0
    log_analytics_free_days: float = 31.0
    interactive_max_days: float = 730.0


MEASURED = Measured()
ASSUMED = Assumed()
PRICES = Prices()
HOT, COOL, COLD, ARCHIVE = range(4)
# Raw archive tiers by age in days (infra/modules/storage-data.bicep defaults); cold-tier files go
# to Cool at once and to Cold after 30 days, never to Archive (their reads are ranged).
ARCHIVE_TIERS = ((HOT, 0.0), (COOL, 10.0), (COLD, 90.0), (ARCHIVE, 365.0))
COLD_TIERS = ((COOL, 0.0), (COLD, 30.0))
DEFAULT_HOT_DAYS = 90  # HOT_INDEX_RETENTION_DAYS' default (collector/settings.py)
CONTENT_TYPES_PER_DAY = 5  # the five content types, each bundled on its own


@dataclass(frozen=True)
class Scenario:
    users: int
    hot_days: int | None = None  # None: DEFAULT_HOT_DAYS
    years: float = 7.0
    bundles: bool = True  # ARCHIVE_BUNDLES: closed days' raw blobs joined into bundles (collector/bundle.py)
    measured: Measured = MEASURED
    assumed: Assumed = ASSUMED
    prices: Prices = PRICES

    @property
    def days_hot(self) -> int:
        return DEFAULT_HOT_DAYS if self.hot_days is None else self.hot_days

    @property
    def records_per_day(self) -> float:
        return self.users * self.assumed.records_per_seat_per_day

    @property
    def retention_days(self) -> float:
        return self.years * DAYS_PER_YEAR

    @property
    def months(self) -> int:
        return max(1, math.ceil(self.years * 12))


LINES = ("hot index storage", "cold tier storage", "raw archive storage", "transactions", "Functions")


@dataclass(frozen=True)
class Estimate:
    scenario: Scenario
    steady: dict[str, float]  # line → $ per month at steady state (the last month of the retention)
    total: dict[str, float]  # line → $ over the retention, month by month
    sentinel_steady: float
    sentinel_total: float
    log_analytics_steady: float
    log_analytics_total: float
    functions_upper_bound: float  # $ per month with no credit for running blobs at once
    queue_operations: float  # per month, not priced
    notes: list[str] = field(default_factory=list)

    @property
    def steady_total(self) -> float:
        return sum(self.steady.values())

    @property
    def grand_total(self) -> float:
        return sum(self.total.values())


def _held(t: float, start: float, end: float) -> float:
    """Days of data aged [start, end) held after t days of collection."""
    return max(0.0, min(end, t) - start)


def _tiered(s: Scenario, t: float, bytes_per_record: float, tiers: tuple[tuple[int, float], ...]) -> float:
    cost = 0.0
    for position, (tier, start) in enumerate(tiers):
        end = tiers[position + 1][1] if position + 1 < len(tiers) else math.inf
        days = _held(t, start, min(end, s.retention_days))
        cost += s.records_per_day * days * bytes_per_record / 1e9 * s.prices.blob_gb_month[tier]
    return cost


def _functions(s: Scenario, upper_bound: bool = False) -> float:
    a, p = s.assumed, s.prices
    blobs = s.records_per_day * DAYS_PER_MONTH / s.measured.records_per_blob
    per_run = blobs / a.timer_runs_per_month
    if upper_bound:
        seconds = a.timer_runs_per_month * a.timer_seconds + blobs * a.seconds_per_blob
    else:
        seconds = a.timer_runs_per_month * (a.timer_seconds + math.ceil(per_run / a.queue_batch) * a.seconds_per_blob)
    seconds += s.records_per_day * DAYS_PER_MONTH / s.measured.compaction_records_per_second
    executions = a.timer_runs_per_month + blobs + DAYS_PER_MONTH  # + one compaction a day
    return (max(0.0, seconds * a.instance_gb - p.free_gb_s) * p.function_gb_s
            + max(0.0, executions - p.free_executions) / 1e6 * p.function_per_million)


def _bundles_per_day(s: Scenario) -> float:
    """Bundles a day (collector/bundle.py): per content type at least one, one per MAX_BUNDLE_BYTES."""
    from .bundle import MAX_BUNDLE_BYTES

    per_type = s.records_per_day * s.measured.archive_bytes_per_record / CONTENT_TYPES_PER_DAY
    return CONTENT_TYPES_PER_DAY * max(1, math.ceil(per_type / MAX_BUNDLE_BYTES))


def month_costs(s: Scenario, month: int) -> dict[str, float]:
    """$ of each line in month `month` (1-based) of the deployment."""
    m, a, p = s.measured, s.assumed, s.prices
    t = month * DAYS_PER_MONTH
    per_day = s.records_per_day
    records = per_day * DAYS_PER_MONTH
    blobs = records / m.records_per_blob
    hot = per_day * _held(t, 0.0, min(s.days_hot, s.retention_days)) * m.index_bytes_per_record / 1e9 * p.table_gb_month
    table_ops = records / 1000 * m.index_transactions_per_1000 + blobs * a.ledger_operations_per_blob
    blob_ops = blobs * p.blob_write_per_10k[HOT] + blobs * p.blob_read_per_10k_hot  # upload; compaction reads it once
    tiered = blobs  # the blobs lifecycle moves between tiers
    if s.bundles:  # the bundle pass reads each original once (Hot), writes a few bundles, deletes (free)
        tiered = _bundles_per_day(s) * DAYS_PER_MONTH
        blob_ops += blobs * p.blob_read_per_10k_hot + tiered * p.blob_write_per_10k[HOT]
    for tier, age in ARCHIVE_TIERS[1:]:
        if t > age and age < s.retention_days:
            blob_ops += tiered * p.blob_write_per_10k[tier]  # lifecycle: set tier is billed as a write
    return {
        "hot index storage": hot,
        "cold tier storage": _tiered(s, t, m.cold_bytes_per_record, COLD_TIERS),
        "raw archive storage": _tiered(s, t, m.archive_bytes_per_record, ARCHIVE_TIERS),
        "transactions": table_ops / 1e4 * p.table_per_10k + blob_ops / 1e4,
        "Functions": _functions(s),
    }


def _log_store(s: Scenario, t: float, ingest_price: float, free_days: float) -> float:
    """One month of Sentinel or Log Analytics after t days: ingestion, interactive and long-term retention."""
    p = s.prices
    gb_per_day = s.records_per_day * s.measured.raw_json_bytes_per_record * s.assumed.la_billed_fraction / 1e9
    interactive = _held(t, free_days, min(p.interactive_max_days, s.retention_days))
    long_term = _held(t, p.interactive_max_days, s.retention_days)
    return gb_per_day * (DAYS_PER_MONTH * ingest_price + interactive * p.interactive_gb_month
                         + long_term * p.long_term_gb_month)


def estimate(s: Scenario) -> Estimate:
    if s.users < 1 or s.years <= 0 or s.days_hot < 0:
        raise ConfigError([f"--users must be at least 1, --years above 0 and --hot-days not negative, got users "
                           f"{s.users}, years {s.years:g}, hot days {s.days_hot}"])
    months = [month_costs(s, month) for month in range(1, s.months + 1)]
    total = {line: sum(month[line] for month in months) for line in LINES}
    ts = [month * DAYS_PER_MONTH for month in range(1, s.months + 1)]
    p = s.prices
    sentinel = [_log_store(s, t, p.sentinel_per_gb, p.sentinel_free_days) for t in ts]
    analytics = [_log_store(s, t, p.log_analytics_per_gb, p.log_analytics_free_days) for t in ts]
    blobs = s.records_per_day * DAYS_PER_MONTH / s.measured.records_per_blob
    return Estimate(s, months[-1], total, sentinel[-1], sum(sentinel), analytics[-1], sum(analytics),
                    _functions(s, upper_bound=True), blobs * s.assumed.queue_operations_per_blob)


def _money(value: float) -> str:
    return f"${value:,.2f}" if value < 1000 else f"${value:,.0f}"


def render(e: Estimate) -> str:
    s, m, p = e.scenario, e.scenario.measured, e.scenario.prices
    records = s.records_per_day * DAYS_PER_MONTH
    width = max(len(line) for line in (*LINES, "Sentinel (PAYG, all billed)"))
    years = f"{s.years:g} year{'' if s.years == 1 else 's'}"
    out = [
        f"AuditKeep cost for {s.users:,} seats, hot index {s.days_hot} days, retention {years}",
        f"volume: {s.assumed.records_per_seat_per_day:g} records per seat per day = {records / 1e6:,.2f} M records "
        f"per month, {records / m.records_per_blob:,.0f} content blobs",
        "",
        f"{'':<{width}}  {'per month (steady)':>18}  {'total ' + years:>16}",
    ]
    for line in LINES:
        out.append(f"{line:<{width}}  {_money(e.steady[line]):>18}  {_money(e.total[line]):>16}")
    out.append(f"{'AuditKeep all-in':<{width}}  {_money(e.steady_total):>18}  {_money(e.grand_total):>16}")
    out.append("")
    out.append("same records elsewhere:")
    out.append(f"{'Sentinel (PAYG, all billed)':<{width}}  {_money(e.sentinel_steady):>18}  {_money(e.sentinel_total):>16}")
    out.append(f"{'Log Analytics only':<{width}}  {_money(e.log_analytics_steady):>18}  "
               f"{_money(e.log_analytics_total):>16}")
    out += [
        "",
        f"Functions with no credit for running blobs at once: {_money(e.functions_upper_bound)} per month; "
        f"queue operations {e.queue_operations:,.0f} per month are not priced (no price in the anchors).",
        f"measured ({m.date}): index {m.index_bytes_per_record:,.0f} B, cold tier {m.cold_bytes_per_record:,.1f} B, "
        f"raw archive {m.archive_bytes_per_record:,.0f} B per record, {m.index_transactions_per_1000:.1f} index "
        f"transactions per 1,000 records; {m.source}",
        f"prices ({p.date}): {p.source}",
    ]
    return "\n".join(out)
