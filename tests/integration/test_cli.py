"""`python -m collector ...` as a user runs it: a subprocess, real environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulator import Simulator, SimulatorServer

from .world import CLIENT, SECRET, TENANT, record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live_sim(tmp_path):
    sim = Simulator(TENANT, CLIENT, SECRET, subscribed=True)
    now = datetime.now(UTC)
    for i in range(3):
        sim.add_blob("Audit.SharePoint", now - timedelta(hours=2, minutes=i), [record(i, now - timedelta(hours=3))])
    server = SimulatorServer(sim, state_dir=tmp_path / "sim").start()
    yield sim, server
    server.stop()


def run_cli(args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("M365_", "AUDIT_", "COLLECT_"))}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120)


def base_env(server, storage_connection_string, prefix):
    return {
        "M365_TENANT_ID": TENANT, "M365_CLIENT_ID": CLIENT, "M365_CLIENT_SECRET": SECRET,
        "M365_API_URL": server.base_url, "M365_LOGIN_URL": server.base_url, "M365_ALLOW_CUSTOM_HOSTS": "true", "REQUESTS_CA_BUNDLE": str(server.ca_path),
        "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string, "AUDIT_TABLE_PREFIX": prefix,
        "AUDIT_ARCHIVE_CONTAINER": prefix.lower(), "AUDIT_QUEUE_NAME": prefix.lower(),
        "M365_CONTENT_TYPES": "Audit.SharePoint", "COLLECT_INITIAL_LOOKBACK_HOURS": "24",
    }


def test_collect_runs_a_full_cycle_and_shows_progress(live_sim, storage_connection_string, unique_prefix):
    _, server = live_sim
    result = run_cli(["collect"], base_env(server, storage_connection_string, unique_prefix))
    assert result.returncode == 0, result.stderr
    assert "Audit.SharePoint: window 1/1" in result.stderr
    assert "cycle done: 3 blobs, 3 records" in result.stderr


def test_a_wrong_secret_fails_with_one_clear_line(live_sim, storage_connection_string, unique_prefix):
    _, server = live_sim
    env = {**base_env(server, storage_connection_string, unique_prefix), "M365_CLIENT_SECRET": "wrong"}
    result = run_cli(["collect", "--quiet"], env)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "authentication failed" in lines[0] and "AADSTS7000215" in lines[0]
    assert "wrong" not in lines[0]


def test_bad_configuration_fails_with_one_line_naming_the_setting(storage_connection_string):
    result = run_cli(["collect"], {"M365_TENANT_ID": "contoso", "M365_CLOUD": "mars",
                                   "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "M365_TENANT_ID" in lines[0] and "M365_CLOUD" in lines[0]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_key(connection_string: str, key: str) -> str:
    parts = [p for p in connection_string.split(";") if p and not p.startswith("AccountKey=")]
    return ";".join([*parts, f"AccountKey={key}"])


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong key", "refused the AccountKey of AUDIT_STORAGE_CONNECTION_STRING (403 "),
    ("closed port", "cannot be reached (locally: is Azurite running?"),
    ("malformed", "AUDIT_STORAGE_CONNECTION_STRING is not a storage connection string"),
])
def test_bad_storage_settings_fail_with_one_line_naming_the_setting(live_sim, storage_connection_string, unique_prefix,
                                                                   case, expected):
    """Issue 12: a wrong key, an unreachable account or a malformed string is one configuration line, exit 2."""
    _, server = live_sim
    secret_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    connection = {
        "wrong key": _with_key(storage_connection_string, secret_key),
        "closed port": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + secret_key +
                       f";BlobEndpoint=http://127.0.0.1:{_free_port()}/devstoreaccount1"
                       f";QueueEndpoint=http://127.0.0.1:{_free_port()}/devstoreaccount1"
                       f";TableEndpoint=http://127.0.0.1:{_free_port()}/devstoreaccount1",
        "malformed": "AccountName=;AccountKey=;nonsense",
    }[case]
    env = {**base_env(server, storage_connection_string, unique_prefix), "AUDIT_STORAGE_CONNECTION_STRING": connection}
    # A closed port costs the SDK's retries (about 15 s) per command: serve is checked with the other two.
    commands = [["collect", "--quiet"]] + ([] if case == "closed port" else [["serve", "--port", str(_free_port())]])
    for command in commands:
        result = run_cli(command, env)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert (result.returncode, len(lines)) == (2, 1), (command, result.stderr)
        assert lines[0].startswith("auditkeep: configuration error: ") and expected in lines[0], lines[0]
        assert secret_key not in result.stderr and "Traceback" not in result.stderr
