"""The CLI: start_background in-process, each --auth mode with msal, knobs, and the real process with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msal
import pytest
import requests

from simulator.cli import start_background

REPO = Path(__file__).resolve().parents[2]
SCOPE = ["https://manage.office.com/.default"]


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_start_background_serves_a_generated_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server, env = start_background(["--port", "0", "--state-dir", str(tmp_path), "--days", "0.25", "--records-per-hour", "400",
                                    "--subscribed", "--page-size", "5", "--knob", "default_window=todayUtc",
                                    "--realism", "duplicate_across_blobs_rate=0.2"])
    try:
        assert read_env(tmp_path / "env") == env
        assert env["M365_API_URL"] == env["M365_LOGIN_URL"] == server.base_url
        assert env["M365_AUTH"] == "secret" and env["M365_CLIENT_SECRET"]
        assert server.sim.knobs.page_size == 5 and server.sim.knobs.default_window == "todayUtc"
        assert len(server.sim.blobs()) > 10
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", env["REQUESTS_CA_BUNDLE"])  # certifi's roots + the simulator's CA
        app = msal.ConfidentialClientApplication(env["M365_CLIENT_ID"], authority=f"{env['M365_LOGIN_URL']}/{env['M365_TENANT_ID']}",
                                                 client_credential=env["M365_CLIENT_SECRET"], instance_discovery=False)
        token = app.acquire_token_for_client(scopes=SCOPE)["access_token"]
        listed = requests.get(f"{env['M365_API_URL']}/api/v1.0/{env['M365_TENANT_ID']}/activity/feed/subscriptions/content",
                              params={"contentType": "Audit.Exchange", "PublisherIdentifier": env["M365_TENANT_ID"]},
                              headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200 and len(listed.json()) <= 5
    finally:
        server.stop()
    assert server.sim.errors == []


def test_certificate_mode_writes_a_pem_msal_can_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server, env = start_background(["--port", "0", "--state-dir", str(tmp_path), "--days", "0", "--auth", "certificate"])
    try:
        assert "M365_CLIENT_SECRET" not in env and env["M365_AUTH"] == "certificate"
        pem = Path(env["M365_CLIENT_CERTIFICATE_PATH"]).read_text()
        assert "PRIVATE KEY-----" in pem and "BEGIN CERTIFICATE-----" in pem
        assert oct(os.stat(env["M365_CLIENT_CERTIFICATE_PATH"]).st_mode & 0o777) == "0o600"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", env["REQUESTS_CA_BUNDLE"])
        app = msal.ConfidentialClientApplication(env["M365_CLIENT_ID"], authority=f"{env['M365_LOGIN_URL']}/{env['M365_TENANT_ID']}",
                                                 client_credential={"private_key": pem, "public_certificate": pem}, instance_discovery=False)
        assert "access_token" in app.acquire_token_for_client(scopes=SCOPE)
    finally:
        server.stop()


def test_managed_identity_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server, env = start_background(["--port", "0", "--state-dir", str(tmp_path), "--days", "0", "--auth", "managed_identity"])
    try:
        for name in ("REQUESTS_CA_BUNDLE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
            monkeypatch.setenv(name, env[name])
        with requests.Session() as session:
            client = msal.ManagedIdentityClient(msal.UserAssignedManagedIdentity(client_id=env["M365_CLIENT_ID"]), http_client=session)
            assert "access_token" in client.acquire_token_for_client(resource="https://manage.office.com")
    finally:
        server.stop()


def test_fault_options_and_admin_disable(tmp_path: Path):
    server, _ = start_background(["--port", "0", "--state-dir", str(tmp_path), "--days", "0", "--subscribed", "--af50000-rate", "0.25",
                                  "--http-503-rate", "0.1", "--no-throttle", "--empty-pages", "--clock-skew", "-60",
                                  "--token-lifetime", "300", "--admin-disable-after", "0.1"])
    try:
        knobs = server.sim.knobs
        assert (knobs.af50000_rate, knobs.http_503_rate, knobs.throttle_limit_per_min, knobs.emit_empty_page_with_next) == (0.25, 0.1, None, True)
        assert knobs.clock_skew.total_seconds() == -60 and knobs.token_lifetime_seconds == 300
        deadline = time.monotonic() + 5
        while server.sim.subscription("Audit.Exchange").status == "enabled" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.sim.subscription("Audit.Exchange").disabled_by == "a tenant admin"
    finally:
        server.stop()


def test_unknown_knob_is_refused(tmp_path: Path):
    with pytest.raises(TypeError, match="unknown simulator knob"):
        start_background(["--port", "0", "--state-dir", str(tmp_path), "--days", "0", "--knob", "no_such_knob=1"])


def test_live_mode_keeps_adding_blobs(tmp_path: Path):
    server, _ = start_background(["--port", "0", "--state-dir", str(tmp_path), "--days", "0", "--live", "--live-interval", "0.1",
                                  "--records-per-hour", "72000"])
    try:
        deadline = time.monotonic() + 5
        while len(server.sim.blobs()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(server.sim.blobs()) >= 3
    finally:
        server.stop()


def test_the_process_prints_the_environment_and_stops_on_sigterm(tmp_path: Path):
    process = subprocess.Popen([sys.executable, "-m", "simulator", "--port", "0", "--state-dir", str(tmp_path), "--days", "0"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "env").exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        env = read_env(tmp_path / "env")
        health = requests.get(f"{env['M365_API_URL']}/_sim/health", verify=str(tmp_path / "ca.pem"))
        assert health.status_code == 200 and health.json()["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    printed = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    assert printed == env
    assert set(env) >= {"M365_TENANT_ID", "M365_CLIENT_ID", "M365_CLIENT_SECRET", "M365_API_URL", "M365_LOGIN_URL", "REQUESTS_CA_BUNDLE"}
    assert b"stopped" in err
