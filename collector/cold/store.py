"""The cold container in Blob storage: upload day files, read them by range, the manifest with
optimistic concurrency, and careful deletion (never a blob under an immutability policy or legal hold).

Files are uploaded to the Cool tier: the cold tier must stay online (a query reads it directly), so
the container's lifecycle rule may move it to Cold but never to Archive (docs/cold-tier.md).
"""

from __future__ import annotations

import io
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings, StandardBlobTier

log = logging.getLogger(__name__)


class ColdBlobStore:
    """Blob I/O of the cold tier; `requests` counts the read requests it sent (cold reads are billed per request)."""

    def __init__(self, service: BlobServiceClient, container: str, *, tier: StandardBlobTier | None = StandardBlobTier.COOL) -> None:
        self.container = service.get_container_client(container)
        self.tier = tier
        self.requests = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def ensure_container(self) -> None:
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code != 403:  # in Azure the template creates it and the role is scoped to it
                raise

    def put_file(self, name: str, path: Path) -> int:
        """Upload (overwrite: a rerun of a crashed attempt rewrites the same generation's names).
        Parquet files, id filters, and a part's checkpoint (JSON)."""
        content_type = "application/json" if name.endswith(".json") else "application/vnd.apache.parquet"
        with open(path, "rb") as handle:
            self.container.get_blob_client(name).upload_blob(
                handle, overwrite=True, standard_blob_tier=self.tier, max_concurrency=2,
                content_settings=ContentSettings(content_type=content_type))
        return path.stat().st_size

    def get(self, name: str) -> tuple[bytes, str] | None:
        """(bytes, etag), or None when the blob does not exist."""
        self._count()
        try:
            downloader = self.container.get_blob_client(name).download_blob()
            return downloader.readall(), str(downloader.properties.etag)
        except ResourceNotFoundError:
            return None

    def put_manifest(self, name: str, data: bytes, etag: str | None) -> None:
        """Write the manifest: only if it is still `etag` (None: only if there is none). ResourceModifiedError
        / ResourceExistsError when another compaction got there first."""
        blob = self.container.get_blob_client(name)
        settings = ContentSettings(content_type="application/json")
        if etag is None:
            blob.upload_blob(data, overwrite=False, content_settings=settings, standard_blob_tier=self.tier)
        else:
            blob.upload_blob(data, overwrite=True, content_settings=settings, standard_blob_tier=self.tier,
                             etag=etag, match_condition=MatchConditions.IfNotModified)

    def size(self, name: str) -> int | None:
        self._count()
        try:
            return int(self.container.get_blob_client(name).get_blob_properties().size)
        except ResourceNotFoundError:
            return None

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        self._count()
        return bytes(self.container.get_blob_client(name).download_blob(offset=offset, length=length).readall())

    def age(self, name: str) -> timedelta | None:
        """How long ago the blob was last written (None: it does not exist)."""
        try:
            modified = self.container.get_blob_client(name).get_blob_properties().last_modified
        except ResourceNotFoundError:
            return None
        return datetime.now(UTC) - modified

    def list(self, prefix: str) -> list[str]:
        return [b.name for b in self.container.list_blobs(name_starts_with=prefix)]

    def delete(self, name: str) -> bool:
        """Delete unless the blob is under an immutability policy or legal hold; True if deleted."""
        blob = self.container.get_blob_client(name)
        try:
            props = blob.get_blob_properties()
            policy = getattr(props, "immutability_policy", None)
            if getattr(props, "has_legal_hold", False) or (policy is not None and getattr(policy, "expiry_time", None)):
                log.warning("cold.delete_skipped %s: immutability policy or legal hold", name, extra={"blob": name})
                return False
            blob.delete_blob()
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            if exc.status_code in (403, 409):  # container-level WORM: keep it, the manifest no longer lists it
                log.warning("cold.delete_refused %s: %s", name, exc.status_code, extra={"blob": name})
                return False
            raise
        return True

    def open(self, name: str, size: int | None = None) -> RangeFile:
        return RangeFile(self, name, size)


class RangeFile(io.RawIOBase):
    """A read-only file over one blob: every read is one ranged GET (pyarrow reads the footer and
    then only the column chunks it needs)."""

    def __init__(self, store: ColdBlobStore, name: str, size: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.name = name
        found = size if size is not None else store.size(name)
        if found is None:
            raise FileNotFoundError(name)
        self.length = found
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # RawIOBase takes any writable buffer
        wanted = min(len(buffer), self.length - self.position)
        if wanted <= 0:
            return 0
        data = self.store.read_range(self.name, self.position, wanted)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        wanted = self.length - self.position if size is None or size < 0 else min(size, self.length - self.position)
        if wanted <= 0:
            return b""
        data = self.store.read_range(self.name, self.position, wanted)
        self.position += len(data)
        return data


__all__ = ["ColdBlobStore", "RangeFile", "ResourceModifiedError"]
