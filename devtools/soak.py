"""`make soak`: the fault and crash soak of issue 12 (docs/reliability.md "The fault and crash soak").

    python -m devtools.soak [--cycles N] [--kills K] [--seed S] [--write]

Azurite (devtools/azurite.py) and the simulator run for the whole soak with a fresh tenant and
fresh storage names. The simulator is served from this process (SimulatorServer on a thread): the
soak scripts its faults cycle by cycle and reads back the exact bytes it served. The collector is
what is under test, so it runs as it would in production: `python -m collector collect` in a
subprocess, killed with SIGKILL when the soak says so.

Each cycle: arm a few random faults (every kind of FAULT_KINDS over the run), add new content
(late and duplicate deliveries included), run one collector (sometimes two at once), and perhaps
SIGKILL it when its log shows the phase aimed at (listing, archiving, indexing, checkpointing).
Then, all faults cleared, clean cycles run until health shows nothing waiting, and `check` compares
the simulator's content with the archive and the index: every record of content that did not
expire before it could be fetched is in the index exactly once and its blob in the archive
byte-exact; content that expired unfetched is counted in /api/health. Exit status 1 when anything
is lost or duplicated, or fewer kills or fault kinds happened than asked.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from collector import keys
from collector.bootstrap import Services
from collector.errors import NotFoundError
from collector.models import ContentRef, LedgerStatus, View
from collector.normalize import normalize_record
from collector.settings import ENVIRONMENT_VARIABLES, Settings
from simulator import Blob, Simulator, SimulatorServer
from simulator.wire import Request

from . import azurite
from .sections import replace_section

RELIABILITY_MD = azurite.REPO_ROOT / "docs" / "reliability.md"
CONTENT_TYPES = ("Audit.Exchange", "Audit.SharePoint", "Audit.AzureActiveDirectory")
PHASES = ("listing", "archiving", "indexing", "checkpointing")
FAULT_KINDS = (
    "af429_burst", "af50000", "http_500", "http_503", "http_503_code", "read_timeout", "reset", "cut_body",
    "invalid_json", "expired_content", "subscription_disabled", "clock_skew", "duplicate_delivery",
    "late_delivery", "empty_pages",
)
HTTP_TIMEOUT = 2  # M365_HTTP_TIMEOUT_SECONDS: a read-timeout fault answers a second later than this
MAX_SKEW_SECONDS = 240  # the simulator's clock is off by at most this; new content is older than it
OVERLAP_MINUTES = 120  # COLLECT_OVERLAP_MINUTES: late deliveries stay inside it (content later than that is not listed again)
SUBSCRIBE_RULE = timedelta(minutes=16)  # the collector starts a subscription at most every 15 minutes
RUN_TIMEOUT = 300.0  # a collector run longer than this is hung: a failure of the soak
CLEAN_CYCLES_MAX = 12
# Every cycle re-lists the 120-minute overlap, which holds more blobs as the soak goes on: pages
# this size still page every cycle without the listing dominating later cycles.
PAGE_SIZE = 24


def say(line: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] soak: {line}", file=sys.stderr, flush=True)


@dataclass
class Options:
    cycles: int = 200
    kills: int = 20
    seed: int = 1
    visibility_timeout: int = 20  # collect --visibility-timeout: how long a killed run's messages stay hidden
    workers: int = 2
    content_types: tuple[str, ...] = CONTENT_TYPES
    quiet: bool = False


@dataclass
class Stats:
    cycles: int = 0
    clean_cycles: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    kills_missed: int = 0  # aimed, but the run ended before the phase came
    two_at_once: int = 0
    exits: collections.Counter[str] = field(default_factory=collections.Counter)
    blobs_added: int = 0
    records_added: int = 0
    started: float = field(default_factory=time.monotonic)
    problems: list[str] = field(default_factory=list)  # hung runs, simulator errors: the soak fails
    crashes: list[str] = field(default_factory=list)  # runs that ended with a traceback (shown, not a failure by itself)

    @property
    def kills_total(self) -> int:
        return sum(self.kills.values())


@dataclass
class Verdict:
    """What `check` found: counts of records (unique (organization, Id)) and blobs, and the evidence."""

    records: int = 0  # records the collector had to keep (of blobs that were listable and did not expire unfetched)
    blobs: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # index rows of records the simulator never served
    archive_mismatches: list[str] = field(default_factory=list)
    expired_blobs: int = 0  # expired before they could be fetched; each counted in health
    expired_records: int = 0
    silent_expiries: list[str] = field(default_factory=list)  # expired unfetched but not counted in health
    gap_records: int = 0  # created while a subscription was off: the API never lists them ("Stopping a subscription")
    health_expired: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.archive_mismatches or self.silent_expiries)


# ------------------------------------------------------------------ the collector subprocess


@dataclass
class Kill:
    """Kill the run on the `occurrence`-th storage request of `phase` (seen in its INFO log), `delay` s later."""

    phase: str
    occurrence: int
    delay: float


class CollectorRun:
    """One `python -m collector -v collect` subprocess; reads its log to aim a kill at a phase.

    The storage SDK logs every request at INFO before sending it ("Request URL: '…'" then
    "Request method: '…'"), so the phase is known from the URL: enqueueing (listing), an archive blob
    upload (archiving), a table batch once the queue is being drained (indexing), a write to the
    state table (checkpointing).
    """

    def __init__(self, env: dict[str, str], options: Options, names: dict[str, str], kill: Kill | None) -> None:
        self.kill = kill
        self.killed_in: str | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self._seen: collections.Counter[str] = collections.Counter()
        self._draining = False
        self._url = ""
        self._patterns = {
            "listing": (re.compile(rf"/{re.escape(names['queue'])}/messages(\?|$)"), {"POST"}),
            "archiving": (re.compile(rf"/{re.escape(names['container'])}/(Audit|DLP)\."), {"PUT"}),
            "indexing": (re.compile(r"/\$batch"), {"POST"}),
            "checkpointing": (re.compile(rf"/{re.escape(names['prefix'])}state\("), {"PUT", "PATCH", "MERGE"}),
        }
        self._receive = re.compile(rf"/{re.escape(names['queue'])}/messages\?numofmessages")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "collector", "-v", "collect", "--workers", str(options.workers),
             "--visibility-timeout", str(options.visibility_timeout)],
            cwd=azurite.REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace",
        )
        self._reader = threading.Thread(target=self._read, name="soak-collector-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            line = line.rstrip("\n")
            if not line.startswith("    "):
                self.tail.append(line)
            if "Request URL: '" in line:
                self._url = line.split("Request URL: '", 1)[1].rstrip("'")
                if self._receive.search(self._url):
                    self._draining = True
            elif line.startswith("Request method: '") and self.kill is not None and self.killed_in is None:
                method = line.split("'")[1].upper()
                phase = self._phase(self._url, method)
                if phase == self.kill.phase:
                    self._seen[phase] += 1
                    if self._seen[phase] >= self.kill.occurrence:
                        time.sleep(self.kill.delay)
                        if self.process.poll() is None:
                            self.process.send_signal(signal.SIGKILL)
                            self.killed_in = phase

    def _phase(self, url: str, method: str) -> str | None:
        for phase, (pattern, methods) in self._patterns.items():
            if method in methods and pattern.search(url):
                if phase == "indexing" and not self._draining:
                    return None  # a batch while listing is the ledger's
                return phase
        return None

    def wait(self, timeout: float = RUN_TIMEOUT) -> int | None:
        """The exit code (negative: killed by that signal), or None if it hung and was killed."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        self._reader.join(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


# ------------------------------------------------------------------ the soak


class Soak:
    """Azurite, the simulator and the collector's settings for one soak; `run` then `check`."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.rng = Random(options.seed)
        self.stats = Stats()
        self._stack = ExitStack()
        self._unused = list(FAULT_KINDS)
        self._delivered: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)  # per type, for duplicates
        self._serial = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Soak:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        work = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="auditkeep-soak-")))
        storage = azurite.start(in_memory=True, log_path=work / "azurite.log")
        self._stack.callback(storage.stop)
        self.sim = Simulator(subscribed=self.options.content_types, throttle_limit_per_min=None, page_size=PAGE_SIZE,
                             fault_seed=self.options.seed)
        server = SimulatorServer(self.sim, state_dir=work / "simulator").start()
        self._stack.callback(server.stop)
        tag = uuid.UUID(int=self.rng.getrandbits(128)).hex[:10]
        self.names = {"prefix": f"soak{tag}", "container": f"soak-{tag}", "queue": f"soak-{tag}"}
        env = {
            **server.env(),
            "REQUESTS_CA_BUNDLE": str(server.ca_path),
            "AUDIT_STORAGE_CONNECTION_STRING": storage.connection_string,
            "AUDIT_TABLE_PREFIX": self.names["prefix"], "AUDIT_ARCHIVE_CONTAINER": self.names["container"],
            "AUDIT_QUEUE_NAME": self.names["queue"], "M365_CONTENT_TYPES": ",".join(self.options.content_types),
            "M365_HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT), "COLLECT_OVERLAP_MINUTES": str(OVERLAP_MINUTES),
            "COLLECT_INITIAL_LOOKBACK_HOURS": "3", "COLLECT_MAX_RUNTIME_SECONDS": "60",
            "AUDIT_MAX_DEQUEUE_COUNT": "8",
        }
        if "M365_ALLOW_CUSTOM_HOSTS" in ENVIRONMENT_VARIABLES:  # the simulator is not a Microsoft host
            env["M365_ALLOW_CUSTOM_HOSTS"] = "true"
        self.settings_env = env
        self.child_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("M365_", "AUDIT_", "COLLECT_"))},
                          **env}
        self.services = Services(Settings.from_env(env))
        self.services.ensure_storage()

    # ------------------------------------------------------------ cycles

    def run(self) -> Stats:
        options = self.options
        for cycle in range(options.cycles):
            self._cycle(cycle)
        self._settle()
        if self.sim.errors:
            self.stats.problems.append(f"the simulator failed {len(self.sim.errors)} time(s): {self.sim.errors[0]}")
        return self.stats

    def _cycle(self, cycle: int) -> None:
        self._reset_faults()
        self._add_content()
        kinds = self._pick_faults(cycle)
        for kind in kinds:
            if getattr(self, f"_fault_{kind}")():
                self._happened(kind)
        kill = self._pick_kill(cycle)
        runs = [CollectorRun(self.child_env, self.options, self.names, kill)]
        if self.rng.random() < 0.12:
            time.sleep(self.rng.uniform(0, 0.5))
            runs.append(CollectorRun(self.child_env, self.options, self.names, None))
            self.stats.two_at_once += 1
        try:
            for run in runs:
                self._finished(run)
        finally:
            for run in runs:  # interrupted (Ctrl-C): no collector outlives the soak
                if run.process.poll() is None:
                    run.process.kill()
        if kill is not None:
            if runs[0].killed_in:
                self.stats.kills[runs[0].killed_in] += 1
            else:
                self.stats.kills_missed += 1
        self.stats.cycles += 1
        if not self.options.quiet:
            say(f"cycle {cycle + 1}/{self.options.cycles}: faults {', '.join(kinds) or '-'}; "
                f"{'killed in ' + runs[0].killed_in if runs[0].killed_in else 'not killed'}"
                f"{'; two collectors' if len(runs) > 1 else ''}; "
                f"exits {[self._exit_name(r.process.returncode) for r in runs]}")

    def _finished(self, run: CollectorRun) -> None:
        code = run.wait()
        name = self._exit_name(code)
        crashed = any(line.startswith("Traceback") for line in run.tail)
        if crashed and not run.killed_in:
            name += " (traceback)"
            self.stats.crashes.append("\n  ".join(list(run.tail)[-12:]))
        self.stats.exits[name] += 1
        if code is None:
            self.stats.problems.append("a collector run hung (killed after "
                                       f"{RUN_TIMEOUT:.0f} s); its log ends:\n  " + "\n  ".join(run.tail))
        elif code == 1 and not self.options.quiet:
            errors = [line for line in run.tail if line.startswith("ERROR")]
            say(f"partial run (exit 1): {errors[-1] if errors else run.tail[-1] if run.tail else ''}")
        elif code not in (0, 1) and not run.killed_in:
            # 1 is a partial run (a fault outlived the run's retries); anything else is a failure to read
            self.stats.problems.append(f"a collector run exited with {code}; its log ends:\n  " + "\n  ".join(run.tail))

    @staticmethod
    def _exit_name(code: int | None) -> str:
        if code is None:
            return "hung"
        return "SIGKILL" if code == -signal.SIGKILL else str(code)

    def _happened(self, kind: str) -> None:
        with self._lock:
            self.stats.faults[kind] += 1
            if kind in self._unused:
                self._unused.remove(kind)

    def _pick_faults(self, cycle: int) -> list[str]:
        """Every kind at least once over the run: unused kinds first, spread over the cycles."""
        left = max(1, self.options.cycles - cycle)
        forced = math.ceil(len(self._unused) / left)
        kinds = self.rng.sample(self._unused, min(forced, len(self._unused)))
        for _ in range(self.rng.randint(0, 2)):
            kind = self.rng.choice(FAULT_KINDS)
            if kind not in kinds:
                kinds.append(kind)
        return kinds

    def _pick_kill(self, cycle: int) -> Kill | None:
        wanted = self.options.kills - self.stats.kills_total
        left = self.options.cycles - cycle
        if wanted <= 0 or self.rng.random() >= min(1.0, 1.5 * wanted / left):
            return None
        fewest = min(self.stats.kills[p] for p in PHASES)
        phase = self.rng.choice([p for p in PHASES if self.stats.kills[p] == fewest])
        return Kill(phase, self.rng.randint(1, 3), self.rng.uniform(0.0, 0.03))

    def _settle(self) -> None:
        """No faults, no kills, no new content: clean cycles until nothing waits (health says so)."""
        self._reset_faults()
        for clean in range(CLEAN_CYCLES_MAX):
            run = CollectorRun(self.child_env, self.options, self.names, None)
            self._finished(run)
            self.stats.clean_cycles += 1
            health = self.services.health.report()
            waiting = health["workQueue"]["approximateMessages"] + sum(
                int(t.get("waiting") or 0) + int(t.get("failedContent", t.get("poisonMessages")) or 0)
                for t in health["contentTypes"])
            disabled = [ct for ct in self.options.content_types if (s := self.sim.subscription(ct)) and s.status != "enabled"]
            if not self.options.quiet:
                say(f"clean cycle {clean + 1}: {waiting} waiting, subscriptions off: {disabled or 'none'}")
            if clean >= 1 and waiting == 0 and not disabled:
                return
            retry = [t.get("nextRetryAt") for t in health["contentTypes"] if t.get("nextRetryAt")]
            if retry:  # failed content heals at its next round (healing.py): wait for it
                due = min(datetime.fromisoformat(str(r).replace("Z", "+00:00")) for r in retry)
                pause = min(max((due - datetime.now(UTC)).total_seconds(), 0) + 1, 17 * 60)
                say(f"failed content is retried at {due:%H:%M:%S}: waiting {pause:.0f} s")
                time.sleep(pause)
        self.stats.problems.append(f"still not settled after {CLEAN_CYCLES_MAX} clean cycles")

    # ------------------------------------------------------------ content

    def _record(self, when: datetime, content_type: str) -> dict[str, Any]:
        self._serial += 1
        workload = {"Audit.Exchange": "Exchange", "Audit.SharePoint": "SharePoint"}.get(content_type, "AzureActiveDirectory")
        return {
            "Id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"), "Operation": self.rng.choice(("FileAccessed", "Send", "UserLoggedIn")),
            "OrganizationId": self.sim.tenant_id, "RecordType": self.rng.choice((2, 6, 15)), "UserType": 0, "Version": 1,
            "Workload": workload, "UserId": f"user{self.rng.randrange(40)}@contoso.com", "ClientIP": "203.0.113.7",
            "ObjectId": f"https://contoso.sharepoint.com/sites/soak/doc{self._serial}.docx", "UserAgent": "Mozilla/5.0",
        }

    def _add_blob(self, content_type: str, created: datetime, records: list[dict[str, Any]],
                  expiration: datetime | None = None) -> Blob:
        blob = self.sim.add_blob(content_type, created, records, expiration=expiration)
        self._delivered[content_type].extend(records)
        self.stats.blobs_added += 1
        self.stats.records_added += len(records)
        return blob

    def _fresh_blob(self, content_type: str, age_minutes: tuple[float, float], count: int | None = None,
                    expiration: datetime | None = None) -> Blob:
        created = datetime.now(UTC) - timedelta(minutes=self.rng.uniform(*age_minutes))
        records = [self._record(created - timedelta(seconds=self.rng.uniform(0, 300)), content_type)
                   for _ in range(count or self.rng.randint(1, 5))]
        if self.rng.random() < 0.05:
            # the same Id in another organization is another record (the dedupe key is (OrganizationId, Id))
            records.append({**records[0], "OrganizationId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4))})
        return self._add_blob(content_type, created, records, expiration)

    def _add_content(self) -> None:
        # New content every cycle (at least one blob), a little older than the largest clock skew.
        low = MAX_SKEW_SECONDS / 60 + 2
        for content_type in self.options.content_types:
            for _ in range(self.rng.randint(0, 2)):
                self._fresh_blob(content_type, (low, low + 25))
        self._fresh_blob(self.rng.choice(self.options.content_types), (low, low + 25))

    # ------------------------------------------------------------ faults (each returns whether it was armed)

    def _reset_faults(self) -> None:
        self.sim.clear_injections()
        self.sim.set(clock_skew=timedelta(0), emit_empty_page_with_next=False, empty_page_rate=0.0, page_size=PAGE_SIZE,
                     http_503_rate=0.0, af50000_rate=0.0, reset_rate=0.0, cut_body_rate=0.0)

    def _operation(self) -> str:
        return self.rng.choice(("content_list", "content_get", "content_get", "subscription_list"))

    def _fault_af429_burst(self) -> bool:
        headers = {"Retry-After": "1"} if self.rng.random() < 0.5 else {}
        self.sim.inject(self._operation(), code="AF429", times=self.rng.randint(2, 4), headers=headers)
        return True

    def _fault_af50000(self) -> bool:
        self.sim.inject(self._operation(), code="AF50000", times=self.rng.randint(1, 2))
        if self.rng.random() < 0.3:
            self.sim.set(af50000_rate=0.05)
        return True

    def _fault_http_500(self) -> bool:
        self.sim.inject(self._operation(), status=500, times=self.rng.randint(1, 2))  # no AF code
        return True

    def _fault_http_503(self) -> bool:
        self.sim.inject(self._operation(), status=503, times=self.rng.randint(1, 2))  # a front end, no code
        if self.rng.random() < 0.3:
            self.sim.set(http_503_rate=0.05)
        return True

    def _fault_http_503_code(self) -> bool:
        self.sim.inject(self._operation(), status=503, code=self.rng.choice(("AF50001", "AF50000")), times=self.rng.randint(1, 2))
        return True

    def _fault_read_timeout(self) -> bool:
        self.sim.inject(self._operation(), delay=HTTP_TIMEOUT + 1.0, times=1)
        return True

    def _fault_reset(self) -> bool:
        self.sim.inject(self._operation(), fault=self.rng.choice(("reset", "reset_after_headers")), times=self.rng.randint(1, 2))
        if self.rng.random() < 0.3:
            self.sim.set(reset_rate=0.03)
        return True

    def _fault_cut_body(self) -> bool:
        self.sim.inject(self._operation(), fault=self.rng.choice(("cut", "cut_chunked")), times=self.rng.randint(1, 2))
        if self.rng.random() < 0.3:
            self.sim.set(cut_body_rate=0.03)
        return True

    def _fault_invalid_json(self) -> bool:
        body = self.rng.choice((b"<html><body>Service busy</body></html>", b'[{"Id": "cut', b""))
        self.sim.inject(self.rng.choice(("content_list", "content_get")), status=200, body=body, times=1,
                        headers={"Content-Type": "text/html"} if body.startswith(b"<") else {})
        return True

    def _fault_expired_content(self) -> bool:
        content_type = self.rng.choice(self.options.content_types)
        now = datetime.now(UTC)
        self._fresh_blob(content_type, (10, 30), expiration=now - timedelta(minutes=1))  # expired before it was listed
        self._fresh_blob(content_type, (10, 30), expiration=now + timedelta(seconds=self.rng.uniform(0.5, 3)))  # a race
        return True

    def _fault_subscription_disabled(self) -> bool:
        """A tenant admin disables a subscription while the collector lists it (at its first listing
        request of that type); the collector starts it again. Only for types the collector may start
        again now (15-minute rule), or the type would stay off past the soak. Counted when it happens."""
        now = datetime.now(UTC)
        eligible = [ct for ct in self.options.content_types
                    if (at := self.services.state.load(ct).last_subscribe_at) is None or now - at > SUBSCRIBE_RULE]
        if not eligible:
            return False
        content_type = self.rng.choice(eligible)
        fired = threading.Event()

        def disable(request: Request) -> bool:
            if request.query.get("contenttype") == content_type and not fired.is_set():
                fired.set()
                self.sim.disable_subscription(content_type)
                self._happened("subscription_disabled")
            return False  # not an injection of its own: the disabled subscription answers

        self.sim.inject("content_list", delay=0.001, times=None, when=disable)
        return False

    def _fault_clock_skew(self) -> bool:
        self.sim.set(clock_skew=timedelta(seconds=self.rng.uniform(-MAX_SKEW_SECONDS, MAX_SKEW_SECONDS)))
        return True

    def _fault_duplicate_delivery(self) -> bool:
        content_type = self.rng.choice(self.options.content_types)
        earlier = self._delivered[content_type]
        if not earlier:
            return False
        copies = [dict(r) for r in self.rng.sample(earlier, min(len(earlier), self.rng.randint(1, 3)))]
        copies.append(dict(copies[0]))  # twice in the same blob, too
        created = datetime.now(UTC) - timedelta(minutes=self.rng.uniform(MAX_SKEW_SECONDS / 60 + 2, 40))
        self._add_blob(content_type, created, copies)
        return True

    def _fault_late_delivery(self) -> bool:
        """A blob that shows up now with a contentCreated well behind the checkpoint (inside the overlap)."""
        self._fresh_blob(self.rng.choice(self.options.content_types), (60, OVERLAP_MINUTES - 20))
        return True

    def _fault_empty_pages(self) -> bool:
        if self.rng.random() < 0.5:
            self.sim.set(emit_empty_page_with_next=True, page_size=PAGE_SIZE // 3)
        else:
            self.sim.set(empty_page_rate=0.3, page_size=PAGE_SIZE // 3)
        return True

    # ------------------------------------------------------------ the check

    def check(self) -> Verdict:
        return check(self.sim, self.services, self.options.content_types)


def _ref(blob: Blob) -> ContentRef:
    return ContentRef(blob.content_type, blob.content_id, "", blob.content_created, blob.content_expiration)


def _identity(record: dict[str, Any], tenant_id: str) -> str:
    """The index's key of a record without its time: kid + organization suffix (docs/architecture.md "Index")."""
    return keys.kid(str(record.get("Id", ""))) + keys.org_suffix(str(record.get("OrganizationId") or ""), tenant_id)


def check(sim: Simulator, services: Services, content_types: Iterable[str]) -> Verdict:
    """Compare the simulator's content with the archive, the index and health (see module docstring)."""
    verdict = Verdict()
    tenant_id = services.settings.tenant_id
    now = sim.now()
    blobs = [blob for ct in content_types for blob in sim.blobs(ct)]
    expected: dict[str, tuple[dict[str, Any], Blob]] = {}
    expired: dict[str, int] = collections.Counter()
    expired_only: set[str] = set()

    def archived(blob: Blob) -> bytes | None:
        try:
            return services.archive.read(_ref(blob))
        except NotFoundError:
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(archived, blobs))
    for blob, body in zip(blobs, bodies, strict=True):
        records = blob.records
        if not sim.listable(blob, now):
            verdict.gap_records += len(records)
            continue
        if body is None and blob.content_expiration <= now:
            status = services.ledger.status(_ref(blob))
            if status is not LedgerStatus.EXPIRED:
                verdict.silent_expiries.append(f"{blob.content_type} {blob.content_id}: expired unfetched, ledger says {status}")
            verdict.expired_blobs += 1
            expired[blob.content_type] += 1
            expired_only.update(_identity(r, tenant_id) for r in records)
            continue
        verdict.blobs += 1
        if body is None:
            verdict.lost.append(f"blob {blob.content_type} {blob.content_id} ({len(records)} records) is not archived")
        elif body != blob.body:
            verdict.archive_mismatches.append(f"blob {blob.content_id}: archived {len(body)} bytes differ from the "
                                              f"{len(blob.body)} served")
        for record in records:
            expected.setdefault(_identity(record, tenant_id), (record, blob))
    expired_only -= set(expected)
    verdict.expired_records = len(expired_only)
    verdict.records = len(expected)

    # The time view, whole: each record once. (Rows of expired-only records cannot exist: never archived.)
    start = min((b.content_created for b in blobs), default=now) - timedelta(days=2)
    rows: collections.Counter[str] = collections.Counter()
    for hit in services.index.scan(View.TIME, start, now + timedelta(days=2)):
        rows[hit.key[10:]] += 1
    for identity, count in rows.items():
        if count > 1:
            verdict.duplicated.append(f"record {identity}: {count} rows in the time view")
        if identity not in expected:
            verdict.unexpected.append(f"record {identity}: in the time view, never served (or only in expired content)")

    def located(item: tuple[str, tuple[dict[str, Any], Blob]]) -> str | None:
        identity, (record, blob) = item
        if rows.get(identity, 0) == 0:
            return f"record {record.get('Id')} of blob {blob.content_id}: not in the time view"
        entry, when = normalize_record(record, blob.content_type, blob.content_created)
        try:
            location = services.index.location(keys.day_of(when), identity)
        except Exception as exc:  # noqa: BLE001 - any failure to find it is the finding
            return f"record {record.get('Id')} of blob {blob.content_id}: id entry unreadable ({type(exc).__name__})"
        if location is None:
            return f"record {record.get('Id')} of blob {blob.content_id}: no id entry"
        name, position = location
        try:
            found = services.archive.record(name, position, entry.id)
        except NotFoundError:
            return f"record {record.get('Id')}: its id-view row points at {name}#{position}, which does not hold it"
        if found.get("OrganizationId", "") != record.get("OrganizationId", ""):
            return f"record {record.get('Id')}: its id-view row points at another organization's record"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdict.lost.extend(problem for problem in pool.map(located, expected.items()) if problem)

    health = services.health.report()
    counted = {t["contentType"]: int(t.get("expiredContentSkipped") or 0) for t in health["contentTypes"]}
    verdict.health_expired = sum(counted.get(ct, 0) for ct in content_types)
    for content_type, count in expired.items():
        if counted.get(content_type, 0) < count:
            verdict.silent_expiries.append(f"{content_type}: {count} blobs expired unfetched, health counts "
                                           f"{counted.get(content_type, 0)}")
    return verdict


# ------------------------------------------------------------------ report


def summary(stats: Stats, verdict: Verdict, options: Options) -> str:
    wall = time.monotonic() - stats.started
    faults = ", ".join(f"{kind} {stats.faults[kind]}" for kind in FAULT_KINDS)
    kills = ", ".join(f"{phase} {stats.kills[phase]}" for phase in PHASES)
    exits = ", ".join(f"{name} ×{count}" for name, count in sorted(stats.exits.items()))
    rows = [
        ("cycles", f"{stats.cycles} with faults + {stats.clean_cycles} clean (seed {options.seed})"),
        ("fault kinds", f"{sum(1 for k in FAULT_KINDS if stats.faults[k])} of {len(FAULT_KINDS)}"),
        ("faults by kind", faults),
        ("kills (SIGKILL)", f"{stats.kills_total} ({kills}); {stats.kills_missed} aimed but the run ended first"),
        ("two collectors at once", str(stats.two_at_once)),
        ("collector exits", exits),
        ("records", f"{verdict.records:,} unique in {verdict.blobs:,} blobs ({stats.records_added:,} delivered "
                    f"in {stats.blobs_added:,} blobs, duplicates included)"),
        ("lost", str(len(verdict.lost))),
        ("duplicated", str(len(verdict.duplicated))),
        ("expired (counted in health)", f"{verdict.expired_records} records in {verdict.expired_blobs} blobs; "
                                        f"health expiredContentSkipped {verdict.health_expired}; "
                                        f"{len(verdict.silent_expiries)} silent"),
        ("subscription gaps", f"{verdict.gap_records} records created while a subscription was off (never listed by the API)"),
        ("archive byte-exact", "yes" if not verdict.archive_mismatches else f"NO: {len(verdict.archive_mismatches)} differ"),
        ("wall time", f"{wall / 60:.1f} min"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"| {name.ljust(width)} | {value} |" for name, value in
                     [("measure", "result"), ("-" * width, "---"), *rows])


def failures(stats: Stats, verdict: Verdict, options: Options) -> list[str]:
    problems = list(stats.problems)
    for label, items in (("lost", verdict.lost), ("duplicated", verdict.duplicated), ("unexpected", verdict.unexpected),
                         ("archive mismatch", verdict.archive_mismatches), ("silent expiry", verdict.silent_expiries)):
        problems += [f"{label}: {item}" for item in items[:20]]
    if stats.kills_total < options.kills:
        problems.append(f"only {stats.kills_total} of {options.kills} kills landed")
    missing = [kind for kind in FAULT_KINDS if not stats.faults[kind]]
    if missing:
        problems.append(f"fault kinds never armed: {', '.join(missing)}")
    return problems


def run(options: Options, *, write: bool = False, after: Callable[[Soak], None] | None = None) -> int:
    with Soak(options) as soak:
        stats = soak.run()
        verdict = soak.check()
        if after is not None:
            after(soak)
    table = summary(stats, verdict, options)
    print(table, flush=True)
    problems = failures(stats, verdict, options)
    for crash in stats.crashes[:3]:
        print(f"soak: a collector run ended with a traceback:\n  {crash}", file=sys.stderr)
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    if write and not problems:
        measured = datetime.now(UTC).strftime("%Y-%m-%d")
        replace_section(RELIABILITY_MD, "soak", f"Measured {measured} (`python -m devtools.soak --cycles {options.cycles} "
                        f"--kills {options.kills} --seed {options.seed}`):\n\n{table}")
    return 1 if problems else 0


def _iter_types(text: str) -> Iterator[str]:
    for part in text.split(","):
        if part.strip():
            yield part.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the collector that must land")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--visibility-timeout", type=int, default=Options.visibility_timeout,
                        help="collect --visibility-timeout: how long a killed run's messages stay hidden")
    parser.add_argument("--content-types", default=",".join(CONTENT_TYPES))
    parser.add_argument("--quiet", action="store_true", help="no line per cycle")
    parser.add_argument("--write", action="store_true", help="put the figures in docs/reliability.md (only if it passed)")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.kills < 0 or args.kills > args.cycles:
        parser.error("--cycles must be at least 1 and --kills between 0 and --cycles")
    # `kill` (SIGTERM) cleans up like Ctrl-C: Azurite and the collectors are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    options = Options(cycles=args.cycles, kills=args.kills, seed=args.seed, visibility_timeout=args.visibility_timeout,
                      content_types=tuple(_iter_types(args.content_types)), quiet=args.quiet)
    return run(options, write=args.write)


if __name__ == "__main__":
    sys.exit(main())
