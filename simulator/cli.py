"""`python -m simulator …`: run the simulator over HTTPS for `make run`, benchmarks and manual tests.

On start it prints the client environment as KEY=value lines on stdout (and writes them to
`{state-dir}/env`), then serves until SIGINT/SIGTERM. Progress goes to stderr.
`start_background([...])` does the same in-process and returns (server, env) without blocking.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from .ca import make_client_certificate
from .content_types import CONTENT_TYPES
from .live import LiveFeed
from .server import SimulatorServer
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, READ_DLP_ROLE, READ_ROLE, Simulator
from .synthetic import Realism

log = logging.getLogger("simulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Serve a simulated Office 365 Management Activity API (and Entra token endpoints) over HTTPS on loopback.",
    )
    net = parser.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1")
    net.add_argument("--port", type=int, default=9443, help="0 picks a free port (default 9443)")
    net.add_argument("--state-dir", default=".run/simulator", help="CA/certificate files and the env file go here")
    net.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    who = parser.add_argument_group("tenant and app")
    who.add_argument("--tenant-id", default=DEFAULT_TENANT_ID)
    who.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    who.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    who.add_argument("--auth", default="secret", choices=("secret", "certificate", "managed_identity"),
                     help="credential the printed environment uses (certificate: a key+cert PEM is written to the state dir)")
    who.add_argument("--roles", default=f"{READ_ROLE},{READ_DLP_ROLE}", help="comma-separated app roles in issued tokens")
    who.add_argument("--subscribed", action=argparse.BooleanOptionalAction, default=False,
                     help="start with every content type subscribed (default: none, like a new tenant)")

    data = parser.add_argument_group("synthetic content")
    data.add_argument("--days", type=float, default=7.0, help="history to generate, ending now (0: none)")
    data.add_argument("--records-per-hour", type=float, default=500.0)
    data.add_argument("--users", type=int, default=200)
    data.add_argument("--seed", type=int, default=1)
    data.add_argument("--content-types", default=",".join(CONTENT_TYPES))
    data.add_argument("--live", action="store_true", help="keep adding fresh blobs with recent events")
    data.add_argument("--stories", action="store_true",
                      help="also publish every attack story of simulator/stories.py in the last hours (alerts)")
    data.add_argument("--live-interval", type=float, default=5.0, help="seconds between live additions")
    data.add_argument("--realism", action="append", default=[], metavar="NAME=VALUE",
                      help="synthetic-tenant knob, e.g. duplicate_across_blobs_rate=0.05 (repeatable)")

    faults = parser.add_argument_group("faults (docs/api-behaviour.md, \"Fault and realism knobs\")")
    faults.add_argument("--page-size", type=int, default=100)
    faults.add_argument("--empty-pages", action="store_true", help="first page of every listing is [] with a NextPageUri")
    faults.add_argument("--af50000-rate", type=float, default=0.0)
    faults.add_argument("--http-503-rate", type=float, default=0.0)
    faults.add_argument("--throttle-per-minute", type=int, default=2000, help="AF429 above this per PublisherIdentifier (0: off)")
    faults.add_argument("--no-throttle", dest="throttle_per_minute", action="store_const", const=0,
                        help="turn AF429 throttling off (benchmarks)")
    faults.add_argument("--throttle-status", type=int, default=403)
    faults.add_argument("--retry-after", type=int, default=None, help="seconds in a Retry-After header on AF429")
    faults.add_argument("--token-lifetime", type=int, default=3599, help="access-token lifetime in seconds")
    faults.add_argument("--first-content-delay", type=float, default=0.0, help="seconds before content shows after a start")
    faults.add_argument("--clock-skew", type=float, default=0.0, help="seconds the service clock is ahead (negative: behind)")
    faults.add_argument("--admin-disable-after", type=float, default=None,
                        help="seconds after start at which a tenant admin disables every subscription (AF20023)")
    faults.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="any Simulator knob, e.g. default_window=todayUtc (repeatable)")
    return parser


def _pairs(items: Sequence[str], option: str) -> dict[str, str]:
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"{option} expects NAME=VALUE, got {item!r}")
        result[name.strip()] = value.strip()
    return result


def _realism_values(raw: dict[str, str]) -> dict[str, Any]:
    """Convert --realism text to the type of each Realism/Quirks field's default."""
    defaults = {f.name: getattr(Realism(), f.name) for f in dataclasses.fields(Realism)}
    defaults.update({f.name: f.default for f in dataclasses.fields(Realism().quirks)})
    values: dict[str, Any] = {}
    for name, text in raw.items():
        if name not in defaults:
            raise SystemExit(f"--realism: unknown knob {name!r}; known: {', '.join(sorted(defaults))}")
        current = defaults[name]
        if isinstance(current, bool):
            values[name] = text.lower() in ("1", "true", "yes", "on")
        elif isinstance(current, int):
            values[name] = int(text)
        elif isinstance(current, float):
            values[name] = float(text)
        elif isinstance(current, tuple):
            values[name] = tuple(float(part) for part in text.split(","))
        else:
            raise SystemExit(f"--realism: {name} cannot be set from the command line")
    return values


def build_simulator(args: argparse.Namespace) -> Simulator:
    knobs: dict[str, Any] = {
        "page_size": args.page_size,
        "emit_empty_page_with_next": args.empty_pages,
        "af50000_rate": args.af50000_rate,
        "http_503_rate": args.http_503_rate,
        "throttle_limit_per_min": args.throttle_per_minute or None,
        "throttle_status": args.throttle_status,
        "throttle_retry_after": args.retry_after,
        "token_lifetime_seconds": args.token_lifetime,
        "first_content_delay_after_start": timedelta(seconds=args.first_content_delay),
        "clock_skew": timedelta(seconds=args.clock_skew),
    }
    sim = Simulator(args.tenant_id, args.client_id, args.client_secret, subscribed=args.subscribed,
                    roles=[r.strip() for r in args.roles.split(",") if r.strip()], **knobs)
    sim.set(**_pairs(args.knob, "--knob"))
    return sim


def start_background(args: Sequence[str] | argparse.Namespace | None = None) -> tuple[SimulatorServer, dict[str, str]]:
    """Generate the tenant, start HTTPS (and the live feed) on background threads, write `{state-dir}/env`.

    `args` are CLI arguments (e.g. ["--port", "0", "--days", "1"]) or a parsed Namespace.
    Stop everything with `server.stop()`.
    """
    if not isinstance(args, argparse.Namespace):
        args = build_parser().parse_args(list(args or []))
    content_types = [ct.strip() for ct in args.content_types.split(",") if ct.strip()]
    realism = _realism_values(_pairs(args.realism, "--realism"))
    sim = build_simulator(args)
    if args.days > 0 and args.records_per_hour > 0:
        now = sim.now()
        stats = sim.generate(now - timedelta(days=args.days), now, records_per_hour=args.records_per_hour,
                             content_types=content_types, seed=args.seed, users=args.users, **realism)
        log.info("generated %d records in %d blobs over %g days (%.1f s)", stats.records, stats.blobs, args.days, stats.seconds)
    if args.stories:
        from . import stories

        published = stories.publish_all(sim, sim.now() - timedelta(hours=30))  # 25 stories, 65 min apart
        log.info("published %d attack stories (simulator/stories.py)", len(published))

    server = SimulatorServer(sim, args.host, args.port, args.state_dir).start()
    env = server.env()
    env["M365_AUTH"] = args.auth
    state_dir = Path(args.state_dir)
    if args.auth == "certificate":
        certificate = make_client_certificate()
        sim.app().add_certificate(certificate.certificate_pem)
        path = state_dir / "client-certificate.pem"
        path.write_text(certificate.combined_pem, encoding="ascii")
        os.chmod(path, 0o600)
        env.pop("M365_CLIENT_SECRET", None)
        env["M365_CLIENT_CERTIFICATE_PATH"] = str(path.resolve())
    elif args.auth == "managed_identity":
        identity = sim.add_managed_identity(args.client_id, roles=sim.app().roles)
        env.pop("M365_CLIENT_SECRET", None)
        env["M365_CLIENT_ID"] = identity.client_id
        env["IDENTITY_ENDPOINT"] = server.managed_identity_endpoint  # msal's App Service protocol
        env["IDENTITY_HEADER"] = sim.identity_header
    env["REQUESTS_CA_BUNDLE"] = str(Path(env["REQUESTS_CA_BUNDLE"]).resolve())
    write_env_file(state_dir / "env", env)

    if args.live:
        feed = LiveFeed(sim, args.records_per_hour, seed=args.seed + 1, interval_seconds=args.live_interval,
                        content_types=content_types, users=args.users).start()
        server.on_stop.append(feed.stop)
    if args.admin_disable_after is not None:
        timer = threading.Timer(args.admin_disable_after, sim.disable_subscription)
        timer.daemon = True
        timer.start()
        server.on_stop.append(timer.cancel)
    return server, env


def write_env_file(path: Path, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{key}={value}\n" for key, value in env.items()), encoding="utf-8")
    os.chmod(tmp, 0o600)  # it holds the (development) client secret
    os.replace(tmp, path)  # readers waiting for the file never see half of it


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, args.log_level), format="simulator: %(message)s")
    try:
        server, env = start_background(args)
    except (OSError, ValueError, TypeError) as exc:
        print(f"simulator: cannot start: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    for key, value in env.items():
        print(f"{key}={value}")
    sys.stdout.flush()
    print(f"simulator: serving {server.base_url} (environment also in {Path(args.state_dir) / 'env'}); Ctrl-C stops",
          file=sys.stderr)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        print("simulator: stopped", file=sys.stderr)
    return 0
