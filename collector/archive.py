"""The raw archive: each content blob exactly as the API returned it, gzip, written once.

The archive owns its blob names (keys.archive_blob_name, docs/architecture.md "Archive"): callers
hand it the ContentRef; the index and the ledger store the name `name(ref)` gives them.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from . import keys
from .bundle import BundleReader
from .errors import NotFoundError
from .models import ContentRef
from .normalize import record_id as id_of  # a record without Id has a derived one
from .timeutil import format_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archived:
    name: str
    created: bool  # False: it was already there (a retry, a duplicate message)
    stored_bytes: int


class RawArchive:
    """Write-once gzip blobs named by content type, contentCreated and contentId."""

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self.service = service
        self.container = service.get_container_client(container)
        self.bundles = BundleReader(self.get_index, self._range)

    def ensure_container(self) -> None:
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            # In Azure the template creates the container and the identity's role is scoped to it,
            # so creating it again is refused (403): that is fine as long as it exists.
            if exc.status_code != 403:
                raise

    @staticmethod
    def name(ref: ContentRef) -> str:
        """The blob that holds `ref`'s content (deterministic: every retry finds the same one)."""
        return keys.archive_blob_name(ref.content_type, ref.content_id, ref.content_created)

    def put(self, ref: ContentRef, body: bytes, records: int) -> Archived:
        name = self.name(ref)
        data = gzip.compress(body, compresslevel=6, mtime=0)  # mtime=0: a retry writes identical bytes
        blob = self.container.get_blob_client(name)
        try:
            blob.upload_blob(
                data,
                overwrite=False,  # write-once; under a WORM policy an overwrite would fail anyway
                content_settings=ContentSettings(content_type="application/json", content_encoding="gzip"),
                metadata={
                    "contenttype": ref.content_type,
                    "contentid": ref.content_id.encode("ascii", "backslashreplace").decode(),
                    "contentcreated": format_iso(ref.content_created),
                    "records": str(records),
                },
            )
        except ResourceExistsError:
            return Archived(name, False, len(data))
        return Archived(name, True, len(data))

    def read(self, ref: ContentRef) -> bytes:
        """The original response body of `ref` (un-gzipped); NotFoundError if it was never archived."""
        return self._read(self.name(ref))

    def names(self, prefix: str) -> Iterator[str]:
        """Content blob names starting with `prefix`, in name order, bundled ones included
        (reindex.py lists a range by day prefixes)."""
        yield from self.bundles.names(prefix, self.list_names(prefix))

    def body(self, name: str) -> bytes:
        """The original response body stored under `name` (un-gzipped); NotFoundError if there is none."""
        return self._read(name)

    def _read(self, name: str) -> bytes:
        return gzip.decompress(self.stored(name))

    def stored(self, name: str) -> bytes:
        """The stored (gzip) bytes of `name`: the blob itself, or its range of a bundle (bundle.py)."""
        try:
            # decompress=False: we want the stored bytes and gunzip them ourselves, the same way
            # against Azure and Azurite.
            return bytes(self.container.get_blob_client(name).download_blob(decompress=False).readall())
        except ResourceNotFoundError:
            pass
        bundled = self.bundles.stored(name)
        if bundled is None:
            raise NotFoundError(f"archive blob {name!r} does not exist")
        return bundled

    # -- the seam bundle.Bundler writes through (bundle.BundleStore)

    def list_names(self, prefix: str) -> list[str]:
        return list(self.list_sizes(prefix))

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Blob name → stored bytes under `prefix`, in name order (one listing)."""
        return {str(blob.name): int(blob.size) for blob in self.container.list_blobs(name_starts_with=prefix)}

    def get_index(self, name: str) -> tuple[bytes, str] | None:
        try:
            download = self.container.get_blob_client(name).download_blob(decompress=False)
        except ResourceNotFoundError:
            return None
        return bytes(download.readall()), str(download.properties.etag)

    def put_index(self, name: str, data: bytes, etag: str | None) -> None:
        """Write a bundle index only over the version read (etag) or where none exists (None)."""
        from azure.core import MatchConditions

        condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else \
            {"match_condition": MatchConditions.IfMissing}
        self.container.get_blob_client(name).upload_blob(
            data, overwrite=True, content_settings=ContentSettings(content_type="application/json"), **condition)

    def put_file(self, name: str, handle: IO[bytes], length: int) -> None:
        self.container.get_blob_client(name).upload_blob(
            handle, length=length, overwrite=True, max_concurrency=4,
            content_settings=ContentSettings(content_type="application/gzip"))

    def size(self, name: str) -> int | None:
        try:
            return int(self.container.get_blob_client(name).get_blob_properties().size)
        except ResourceNotFoundError:
            return None

    def delete(self, name: str) -> bool:
        """Delete a bundled original; False when it is gone already or storage keeps it (a
        time-based retention or legal hold answers 409: never forced)."""
        try:
            self.container.get_blob_client(name).delete_blob()
        except ResourceNotFoundError:
            return True  # another pass deleted it
        except HttpResponseError as exc:
            if exc.status_code in (403, 409):
                log.warning("bundle.original_kept blob=%s status=%s", name, exc.status_code,
                            extra={"blob": name, "status": exc.status_code})
                return False
            raise
        return True

    def immutable(self) -> bool:
        """Whether the container has a time-based retention policy or a legal hold (read through
        its properties; Azurite reports neither)."""
        properties = self.container.get_container_properties()
        return bool(getattr(properties, "has_immutability_policy", False) or getattr(properties, "has_legal_hold", False)
                    or getattr(properties, "immutable_storage_with_versioning_enabled", False))

    def _range(self, name: str, offset: int, length: int) -> bytes:
        blob = self.container.get_blob_client(name)
        return bytes(blob.download_blob(offset=offset, length=length, decompress=False).readall())

    def records(self, name: str) -> list[dict[str, Any]]:
        body = json.loads(self._read(name))
        return body if isinstance(body, list) else [body]

    def record(self, name: str, position: int, record_id: str) -> dict[str, Any]:
        """One raw record; checks its Id (falls back to a search of the blob if positions moved)."""
        rows = self.records(name)
        wanted = record_id.lower()
        if 0 <= position < len(rows) and id_of(rows[position]).lower() == wanted:
            return rows[position]
        for row in rows:
            if id_of(row).lower() == wanted:
                return row
        raise NotFoundError(f"record {record_id} is not in archive blob {name!r}")
