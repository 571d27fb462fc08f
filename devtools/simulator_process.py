"""Start the Management Activity API simulator as a child process (for `make run` and the benchmarks).

A separate process, so that the simulator's serving never competes for the collector's GIL. The
simulator writes `<state_dir>/env` (the settings that point a collector at it) once it listens.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import azurite


def start_simulator(state_dir: Path, args: Sequence[str], *, timeout: float = 180.0) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`python -m simulator --port <free> --state-dir <state_dir> <args...>`; returns the process and its env file's settings."""
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    log_path = state_dir / "simulator.log"
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", str(azurite.free_port()), "--state-dir", str(state_dir), *args],
            cwd=azurite.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    env_file = state_dir / "env"
    deadline = time.monotonic() + timeout
    while not env_file.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the simulator exited with {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"the simulator did not start within {timeout:.0f} s; see {log_path}")
        time.sleep(0.2)
    return process, read_env_file(env_file)


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (blank lines and `#` comments ignored)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            env[name.strip()] = value.strip()
    return env
