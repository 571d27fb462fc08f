"""infra/grant-activityfeed-permission.sh against a fake `az` that records its calls: it grants
ActivityFeed.Read (and ReadDlp with --dlp) once, and leaves existing assignments alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .bicep import INFRA

SCRIPT = INFRA / "grant-activityfeed-permission.sh"
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
API_SP = "99999999-0000-0000-0000-000000000001"
READ_ROLE = "594c1fb6-4f81-4475-ae41-0c394909246c"
DLP_ROLE = "4807a72c-ad38-4250-94c9-4eabfe26cd55"

FAKE_AZ = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
query = args[args.index("--query") + 1] if "--query" in args else ""
if args[:2] == ["ad", "sp"]:
    if "'ActivityFeed.ReadDlp'" in query:
        print("{DLP_ROLE}")
    elif "'ActivityFeed.Read'" in query:
        print("{READ_ROLE}")
    else:
        print("{API_SP}")
elif args[:2] == ["identity", "show"]:
    print("{PRINCIPAL}")
elif args[:1] == ["rest"] and "GET" in args:
    existing = os.environ.get("FAKE_EXISTING", "").split(",")
    print(1 if any(role and role in query for role in existing) else 0)
elif args[:1] == ["rest"] and "POST" in args:
    pass
else:
    sys.exit("fake az: unexpected call " + " ".join(args))
"""


@pytest.fixture
def fake_az(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    return tmp_path


def run(fake: Path, *args: str, existing: str = "") -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    log = fake / "calls.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{fake / 'bin'}:{os.environ['PATH']}", "FAKE_AZ_LOG": str(log), "FAKE_EXISTING": existing}
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60, check=False)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return proc, calls


def posts(calls: list[list[str]]) -> list[dict[str, str]]:
    return [json.loads(c[c.index("--body") + 1]) for c in calls if c[:1] == ["rest"] and "POST" in c]


def test_script_is_valid_bash_with_strict_mode() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert "set -euo pipefail" in SCRIPT.read_text()
    assert os.access(SCRIPT, os.X_OK)


def test_help_and_missing_arguments(fake_az: Path) -> None:
    proc, calls = run(fake_az, "--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout and not calls
    proc, calls = run(fake_az)
    assert proc.returncode != 0 and "Usage:" in proc.stderr and not calls
    proc, _ = run(fake_az, "--principal-id", "not-a-guid")
    assert proc.returncode != 0 and "GUID" in proc.stderr


def test_grants_activity_feed_read_once(fake_az: Path) -> None:
    proc, calls = run(fake_az, "--principal-id", PRINCIPAL)
    assert proc.returncode == 0, proc.stderr
    assert posts(calls) == [{"principalId": PRINCIPAL, "resourceId": API_SP, "appRoleId": READ_ROLE}]
    post = next(c for c in calls if "POST" in c)
    assert f"https://graph.microsoft.com/v1.0/servicePrincipals/{PRINCIPAL}/appRoleAssignments" in post
    assert "c5393580-f805-4401-95e8-94b7a6ef2fc2" in " ".join(calls[0])


def test_dlp_adds_read_dlp(fake_az: Path) -> None:
    proc, calls = run(fake_az, "--principal-id", PRINCIPAL, "--dlp")
    assert proc.returncode == 0, proc.stderr
    assert [p["appRoleId"] for p in posts(calls)] == [READ_ROLE, DLP_ROLE]


def test_existing_assignments_are_left_alone(fake_az: Path) -> None:
    proc, calls = run(fake_az, "--principal-id", PRINCIPAL, "--dlp", existing=f"{READ_ROLE},{DLP_ROLE}")
    assert proc.returncode == 0, proc.stderr
    assert posts(calls) == []
    assert proc.stdout.count("already granted") == 2
    proc, calls = run(fake_az, "--principal-id", PRINCIPAL, "--dlp", existing=READ_ROLE)
    assert [p["appRoleId"] for p in posts(calls)] == [DLP_ROLE]


def test_identity_name_is_resolved_and_dry_run_changes_nothing(fake_az: Path) -> None:
    proc, calls = run(fake_az, "--identity-name", "id-auditkeep", "--resource-group", "rg", "--dry-run",
                      "--graph-url", "https://graph.microsoft.us/")
    assert proc.returncode == 0, proc.stderr
    assert calls[0][:2] == ["identity", "show"]
    assert posts(calls) == [] and "would grant" in proc.stdout
    gets = [c for c in calls if c[:1] == ["rest"]]
    assert gets and all(f"https://graph.microsoft.us/v1.0/servicePrincipals/{PRINCIPAL}/appRoleAssignments" in c for c in gets)
