"""The hot side compaction reads: every record of a day of the hot index with its archive blob and
position (collector/index.py `day_locations`), and where an archive blob came from (its name holds
content type and contentCreated)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from ..index import day_locations, table_days, view_letters
from ..models import View
from ..tables import TableClients


class HotIdView:
    """Reads the hot index (collector/index.py) one day at a time, for compaction."""

    def __init__(self, clients: TableClients, prefix: str) -> None:
        self.clients = clients
        self.prefix = prefix

    def days(self) -> list[str]:
        """Days (yyyyMMdd) that have id entries (format 2's ids table, or its keys table on days
        written before the ids table existed, or format 1's id table), oldest first."""
        days: set[str] = set()
        for letter in view_letters(View.ID):
            days |= table_days(self.clients, self.prefix, letter)
        return sorted(days)

    def locations(self, day: str, since: datetime | None = None) -> Iterator[tuple[str, str, int]]:
        """(record key, archive blob, position) of every record of `day`, each once; with `since`,
        only records of entities the service wrote at or after it (their Timestamp), for late records."""
        return day_locations(self.clients, self.prefix, day, since)


def blob_origin(name: str) -> tuple[str, datetime]:
    """(content type, contentCreated) of an archive blob name (keys.archive_blob_name); ValueError if it is not one."""
    content_type, _, rest = name.partition("/")
    stamp = rest.rsplit("/", 1)[-1].split("_", 1)[0]  # yyyyMMddTHHmmssfffZ
    if not content_type or len(stamp) != 19 or not stamp.endswith("Z"):
        raise ValueError(f"not an archive blob name: {name!r}")
    created = datetime.strptime(stamp[:15], "%Y%m%dT%H%M%S").replace(microsecond=int(stamp[15:18]) * 1000, tzinfo=UTC)
    return content_type, created
