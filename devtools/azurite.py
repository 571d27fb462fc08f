"""Start and stop a private Azurite (npm package, pinned in package.json) on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Azurite's well-known development account (public, documented by Microsoft: not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def azurite_binary() -> Path:
    path = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `npm ci` (make does it for you)")
    return path


@dataclass
class Azurite:
    """A running Azurite process; `connection_string` points the SDKs at it."""

    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int
    location: Path
    owns_location: bool

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.owns_location:
            shutil.rmtree(self.location, ignore_errors=True)


def connection_string(blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{DEV_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{DEV_ACCOUNT};"
    )


def start(
    location: Path | None = None,
    *,
    ports: tuple[int, int, int] | None = None,
    in_memory: bool = False,
    log_path: Path | None = None,
    timeout: float = 30.0,
) -> Azurite:
    """Start Azurite and wait until all three services accept connections.

    ``location`` keeps data between runs (used by `make run` and the query benchmark); without it a
    temporary folder is used and removed on stop. ``in_memory`` skips the disk entirely.
    """
    blob_port, queue_port, table_port = ports or (free_port(), free_port(), free_port())
    owns = location is None
    where = Path(tempfile.mkdtemp(prefix="azurite-")) if location is None else location
    where.mkdir(parents=True, exist_ok=True)
    args = [
        str(azurite_binary()),
        "--silent",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        # Azurite closes idle keep-alive connections after 5 s by default; the SDKs' pooled
        # connections then fail with "connection reset" on their next (non-idempotent) batch.
        "--blobKeepAliveTimeout", "300", "--queueKeepAliveTimeout", "300", "--tableKeepAliveTimeout", "300",
        "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
        "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
    ]
    if in_memory:
        args.append("--inMemoryPersistence")
    else:
        args += ["--location", str(where)]
    log = open(log_path or os.devnull, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=where)
    log.close()
    azurite = Azurite(process, blob_port, queue_port, table_port, where, owns)
    deadline = time.monotonic() + timeout
    pending = {blob_port, queue_port, table_port}
    while pending:
        if process.poll() is not None:
            azurite.stop()
            raise RuntimeError(f"Azurite exited with code {process.returncode} before listening (args: {' '.join(args)})")
        if time.monotonic() > deadline:
            azurite.stop()
            raise RuntimeError(f"Azurite did not listen on ports {sorted(pending)} within {timeout:.0f} s")
        for port in list(pending):
            with socket.socket() as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    pending.discard(port)
        if pending:
            time.sleep(0.1)
    return azurite
