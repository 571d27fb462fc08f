"""checkov over infra/ (bicep framework): zero failed checks, every file parsed, and every skip
is a justified `// checkov:skip=CKV_...: reason` comment that checkov actually used.

checkov lives in its own venv (`make test` installs it and exports CHECKOV_BIN). It exits 0 on a
file it cannot parse, so the run is also checked for parsing errors and scanned resources.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from .bicep import INFRA, ROOT, bicep_files

pytestmark = pytest.mark.slow

SKIP_COMMENT = re.compile(r"//\s*checkov:skip=(CKV_[A-Z0-9_]+)(.*)$")


def _checkov_bin() -> str:
    candidate = os.environ.get("CHECKOV_BIN") or shutil.which("checkov")
    if not candidate or not os.access(candidate, os.X_OK):
        pytest.fail("checkov not found: run `make test` (it installs checkov in .venv-checkov and sets CHECKOV_BIN)")
    return candidate


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One checkov run per session: the bicep report as a dict."""
    proc = subprocess.run(
        [_checkov_bin(), "-d", str(INFRA), "--framework", "bicep", "-o", "json", "--skip-download", "--compact"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    assert len(bicep) == 1, f"no bicep report from checkov: {proc.stdout[:500]}"
    return bicep[0]


def _results(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return report.get("results", {}).get(kind, [])


def test_checkov_parsed_every_file(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, "checkov could not parse a template (it would still exit 0)"
    assert summary["resource_count"] > 20, f"checkov scanned only {summary['resource_count']} resources"
    assert summary["passed"] > 0
    scanned = {r["file_path"].lstrip("/") for kind in ("passed_checks", "skipped_checks") for r in _results(report, kind)}
    # checkov has checks for these resource types; the other modules (identity, monitoring, roles)
    # hold types it has no checks for, and parsing_errors == 0 covers their syntax.
    expected = {"modules/functionapp.bicep", "modules/keyvault.bicep", "modules/storage-data.bicep", "modules/storage-host.bicep"}
    assert expected <= scanned, f"checkov reported nothing for {sorted(expected - scanned)}"


def test_checkov_has_no_failed_checks(report: dict[str, Any]) -> None:
    failed = [f"{r['check_id']} {r['resource']} ({r['file_path']}): {r['check_name']}" for r in _results(report, "failed_checks")]
    assert report["summary"]["failed"] == 0 and not failed, "\n".join(failed)


def test_every_skip_is_justified_and_used(report: dict[str, Any]) -> None:
    declared: set[tuple[str, str]] = set()
    for path in bicep_files():
        for line in path.read_text().splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                reason = match.group(2).lstrip(":").strip()
                assert len(reason) >= 20, f"{path.name}: skip of {match.group(1)} needs a reason"
                declared.add((path.relative_to(INFRA).as_posix(), match.group(1)))
    used = {(r["file_path"].lstrip("/"), r["check_id"]) for r in _results(report, "skipped_checks")}
    assert used <= declared, f"skips without a comment: {sorted(used - declared)}"
    assert declared <= used, f"stale skip comments (checkov no longer runs these checks there): {sorted(declared - used)}"
