"""Command line: `python -m collector collect | serve | replay-poison | prune-index | compact | expire | bundle | reindex | cost`.

Configuration or authentication failures end with one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .errors import AuthError, ConfigError, FatalApiError, StorageSettingsError

if TYPE_CHECKING:
    from .bootstrap import Services
    from .reindex import Progress

EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_API = 4
EXIT_PARTIAL = 1


def _progress(quiet: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if not quiet:
            print(f"[{datetime.now(UTC):%H:%M:%S}] {line}", file=sys.stderr, flush=True)
    return say


def run_cycle(services: Services, *, workers: int, quiet: bool, visibility_timeout: int = 300) -> bool:
    """One full cycle in-process: list and queue, then drain the queue with the queue function's code.
    `visibility_timeout`: how long a message taken by a worker stays hidden from the others (and,
    should this process die, how long until its messages can be taken again)."""
    from .drain import drain

    say = _progress(quiet)
    services.ensure_storage()
    report = services.listing.run(progress=say)
    for t in report.types:
        lost = f", content LOST {t.lost}" if t.lost else ""
        err = f", ERROR {t.error}" if t.error else ""
        say(f"{t.content_type}: {t.windows_done}/{t.windows} windows, {t.listed} listed, {t.queued} queued, "
            f"{t.already_known} already known, {t.expired} expired{lost}{err}")
    result = drain(services.queue, services.processor, workers=workers, visibility_timeout=visibility_timeout,
                   progress=say)
    # What the Function App's check_alert_health and deliver_alert functions do (collector/alerts/).
    raised, delivered = services.alerts.check(), services.alerts.deliver_queued()
    if raised or delivered:
        say(f"alerts: {raised} health alert(s) raised, {delivered} alert(s) delivered")
    say(f"cycle done: {result.processed} blobs, {result.records:,} records, {result.entities:,} index entities, "
        f"{result.failed_attempts} failed attempts, {result.poisoned} poisoned, outcomes { {str(k): v for k, v in result.outcomes.items()} }")
    return report.ok and result.poisoned == 0


def cmd_collect(args: argparse.Namespace) -> int:
    from .bootstrap import Services
    from .settings import Settings

    services = Services(Settings.from_env())
    services.api  # noqa: B018 - build it now: a missing credential fails at once (exit 2), before any storage request
    services.ensure_storage()  # bad storage settings: one configuration error line (exit 2), not a traceback
    if not args.interval:
        return 0 if run_cycle(services, workers=args.workers, quiet=args.quiet,
                              visibility_timeout=args.visibility_timeout) else EXIT_PARTIAL
    while True:  # --interval: only a configuration, authentication or fatal API error ends the loop
        try:
            run_cycle(services, workers=args.workers, quiet=args.quiet, visibility_timeout=args.visibility_timeout)
        except StorageSettingsError as exc:  # it worked at start: an outage or a rotated key; say so, try again
            print(f"collect: cycle failed: {exc}", file=sys.stderr)
        except (ConfigError, AuthError, FatalApiError):
            raise
        except Exception as exc:  # noqa: BLE001 - transient trouble (API, storage, network): next cycle retries
            print(f"collect: cycle failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        time.sleep(args.interval)


def cmd_serve(args: argparse.Namespace) -> int:
    from .bootstrap import Services
    from .serve import serve
    from .settings import Settings

    services = Services(Settings.from_env())
    services.ensure_storage()  # bad storage settings fail here, not as a 500 on every request
    serve(services, host=args.host, port=args.port)
    return 0


def cmd_replay_poison(args: argparse.Namespace) -> int:
    from .bootstrap import Services
    from .settings import Settings

    services = Services(Settings.from_env())
    moved = services.queue.replay_poison(limit=args.limit)
    print(f"moved {moved} message(s) from {services.queue.poison_name} back to {services.queue.name}")
    return 0


def cmd_prune_index(args: argparse.Namespace) -> int:
    from .bootstrap import Services
    from .settings import Settings

    before = args.before
    is_month = len(before) == 7 and before[4] == "-" and before.replace("-", "").isdigit()
    is_day = len(before) == 10 and before[4] == before[7] == "-" and before.replace("-", "").isdigit()
    if is_day:
        try:
            datetime.strptime(before, "%Y-%m-%d")
        except ValueError:
            is_day = False
    if not (is_month or is_day):
        raise ConfigError([f"--before must be a month (YYYY-MM) or a day (YYYY-MM-DD), got {before!r}"])
    cutoff = before.replace("-", "")
    services = Services(Settings.from_env())
    if is_month:
        months = [m for m in services.index.months() if m < cutoff]
        for month in months:
            if args.dry_run:
                print(f"would drop index month {month}")
            else:
                print(f"dropped {', '.join(services.index.drop_month(month))}")
        if not months:
            print(f"no index months before {before}")
        return 0
    hot, _, _ = services.tiers
    days = [d for d in hot.days() if d < cutoff]
    for day in days:
        if args.dry_run:
            print(f"would drop index day {day}")
        else:
            print(f"dropped {', '.join(services.index.drop_day(day))}")
    if not days:
        print(f"no index days before {before}")
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    from .bootstrap import Services
    from .settings import Settings

    services = Services(Settings.from_env())
    report = services.expiry.run(dry_run=args.dry_run, progress=_progress(args.quiet))
    for line in report.lines():
        print(line)
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bootstrap import Services
    from .bundle import parse_day
    from .settings import Settings

    since = parse_day(args.since, "--since") if args.since else None
    through = parse_day(args.through, "--through") if args.through else None
    services = Services(Settings.from_env())
    report = services.bundler.run(since=since, through=through, progress=_progress(args.quiet))
    if report.skipped:
        print(f"nothing bundled: {report.skipped}")
        return 0
    print(f"bundled {report.bundled:,} content blob(s) of {len(report.days)} day(s) and content type(s); "
          f"{sum(d.deleted for d in report.days):,} original(s) deleted, {sum(d.kept for d in report.days):,} kept")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from .bootstrap import Services
    from .settings import Settings

    through = None
    if args.through is not None:
        try:
            through = datetime.strptime(args.through, "%Y-%m-%d").date()
        except ValueError:
            raise ConfigError([f"--through must be a day as YYYY-MM-DD, got {args.through!r}"]) from None
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ConfigError([f"--max-seconds must be a positive number of seconds, got {args.max_seconds:g}"])
    services = Services(Settings.from_env())
    services.cold_store.ensure_container()
    report = services.compactor.run(through=through, progress=_progress(args.quiet), max_seconds=args.max_seconds)
    changed = [d for d in report.days if d.action not in ("unchanged", "partial")]
    unchanged = sum(d.action == "unchanged" for d in report.days)
    print(f"compacted {len(changed)} day(s), {report.records:,} record(s) written; {unchanged} day(s) unchanged")
    if report.left:
        partial = [d for d in report.days if d.action == "partial"]
        where = f" ({partial[0].parts_done} of {partial[0].parts} parts of {partial[0].day} done)" if partial else ""
        print(f"stopped by --max-seconds: {len(report.left)} day(s) left from {report.left[0]}{where}; run again to continue")
    return 0


# ------------------------------------------------------------------ reindex, cost (collector/reindex.py, cost.py)


def _moment(text: str, option: str) -> datetime:
    from .timeutil import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise ConfigError([f"{option} must be a day (YYYY-MM-DD) or a UTC time (YYYY-MM-DDTHH:MM:SSZ), got {text!r}"]) from None


def _progress_bar(quiet: bool) -> Callable[[Progress], None]:
    """The reindex progress bar on stderr: redrawn in place on a terminal, a line per tenth otherwise."""
    from .reindex import bar

    tty = sys.stderr.isatty()
    shown = [-1]

    def draw(progress: Progress) -> None:
        if quiet:
            return
        steps = progress.blobs + progress.days
        tenth = (10 * (progress.blobs_done + progress.days_done)) // steps if steps else 10
        if tty:
            print(f"\r{bar(progress)}", end="", file=sys.stderr, flush=True)
        elif tenth != shown[0]:
            shown[0] = tenth
            print(bar(progress), file=sys.stderr, flush=True)
    return draw


def cmd_reindex(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from .bootstrap import Services
    from .reindex import ReindexRequest
    from .settings import Settings

    request = ReindexRequest(_moment(args.start, "--start"), _moment(args.end, "--end"), args.target,
                             timedelta(days=args.late_days))
    services = Services(Settings.from_env())
    if args.enqueue:
        services.reindex_queue.ensure()
        services.reindex_queue.send(request)
        print(f"queued reindex {request.run_id} on {services.reindex_queue.name}")
        return 0
    if request.target != "hot":
        services.cold_store.ensure_container()
    report = services.reindexer.run(request, progress=_progress_bar(args.quiet), restart=args.restart)
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    resumed = " (continued an interrupted run)" if report.resumed else ""
    print(f"reindexed {report.blobs_read:,} of {report.blobs:,} blob(s), {report.records:,} record(s), "
          f"{report.entities:,} index entities{resumed}")
    for day, action in report.days:
        print(f"cold {day}: {action}")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    from .cost import Scenario, estimate, render

    print(render(estimate(Scenario(users=args.users, hot_days=args.hot_days, years=args.years))))
    return 0


def _add_reindex_and_cost(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reindex = sub.add_parser("reindex", help="rebuild the index (hot and/or cold) of a time range from the raw archive")
    reindex.add_argument("--start", required=True, help="first moment (YYYY-MM-DD or UTC time), inclusive")
    reindex.add_argument("--end", required=True, help="end of the range (YYYY-MM-DD or UTC time), exclusive")
    reindex.add_argument("--target", choices=("hot", "cold", "both"), default="hot",
                         help="hot: the Table index; cold: the cold tier's files, from the hot index; both (default hot)")
    reindex.add_argument("--late-days", type=float, default=7.0,
                         help="also read blobs created this many days after --end: late content (default 7)")
    reindex.add_argument("--restart", action="store_true", help="start over instead of continuing an interrupted run")
    reindex.add_argument("--enqueue", action="store_true", help="send the request to the reindex queue (Azure runs it)")
    reindex.add_argument("--quiet", action="store_true", help="no progress bar")
    reindex.set_defaults(func=cmd_reindex)

    cost = sub.add_parser("cost", help="monthly and total cost from the measured bytes and requests per record")
    cost.add_argument("--users", type=int, required=True, help="seats (licensed users) of the tenant")
    cost.add_argument("--hot-days", type=int, default=None, help="days kept in the hot (Table) index (default: the model's)")
    cost.add_argument("--years", type=float, default=7.0, help="retention in years (default 7)")
    cost.set_defaults(func=cmd_cost)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m collector", description="AuditKeep collector")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    collect = sub.add_parser("collect", help="run one full cycle in-process: list, queue, drain the queue")
    collect.add_argument("--workers", type=int, default=4, help="queue messages processed in parallel (default 4)")
    collect.add_argument("--interval", type=float, default=0, help="repeat every N seconds (default: once)")
    collect.add_argument("--quiet", action="store_true", help="no progress lines")
    collect.add_argument("--visibility-timeout", type=int, default=300, metavar="SECONDS",
                         help="a message being processed stays hidden this long; after a crash its messages "
                              "wait this long before another run takes them (default 300)")
    collect.set_defaults(func=cmd_collect)

    serve = sub.add_parser("serve", help="serve the query API locally (no keys)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7071, help="port (default 7071)")
    serve.set_defaults(func=cmd_serve)

    replay = sub.add_parser("replay-poison", help="move poison messages back to the work queue")
    replay.add_argument("--limit", type=int, default=1000)
    replay.set_defaults(func=cmd_replay_poison)

    prune = sub.add_parser("prune-index", help="drop whole index months or days (the raw archive and cold tier are untouched)")
    prune.add_argument("--before", required=True,
                       help="drop months before this one (YYYY-MM) or days before this one (YYYY-MM-DD)")
    prune.add_argument("--dry-run", action="store_true")
    prune.set_defaults(func=cmd_prune_index)

    expire = sub.add_parser("expire", help="delete what retention says is due in each tier (docs/retention.md)")
    expire.add_argument("--dry-run", action="store_true", help="report what is due, delete nothing")
    expire.add_argument("--quiet", action="store_true", help="no progress lines")
    expire.set_defaults(func=cmd_expire)

    compact = sub.add_parser("compact", help="write closed index days to the cold tier (Parquet, docs/cold-tier.md)")
    compact.add_argument("--through", help="also compact days up to and including this one (YYYY-MM-DD), closed or not")
    compact.add_argument("--max-seconds", type=float, help="stop between parts of a large day after this long "
                         "(default: run to the end); the next run continues")
    compact.add_argument("--quiet", action="store_true", help="no progress lines")
    compact.set_defaults(func=cmd_compact)

    bundle = sub.add_parser("bundle", help="join closed days' raw content blobs into a few bundles (docs/archive-bundles.md)")
    bundle.add_argument("--since", help="first day (YYYY-MM-DD); default a week before the last closed day")
    bundle.add_argument("--through", help="last day (YYYY-MM-DD), closed or not; default the last closed day")
    bundle.add_argument("--quiet", action="store_true", help="no progress lines")
    bundle.set_defaults(func=cmd_bundle)
    _add_reindex_and_cost(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        # The simulator is development tooling and not deployed with the collector (issue 9).
        print("auditkeep: the simulator is its own package now: run `python -m simulator` "
              f"{' '.join(argv[1:])}".rstrip(), file=sys.stderr)
        return EXIT_CONFIG
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"auditkeep: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AuthError as exc:
        print(f"auditkeep: authentication failed: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except FatalApiError as exc:
        print(f"auditkeep: the Management Activity API refused the request: {exc}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        return 130
