"""The hot side compaction reads: the id view `{p}i{yyyyMMdd}` (record key → archive blob and
position) and where an archive blob came from (its name holds content type and contentCreated)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError

from .. import keys
from ..index import location_from_entity
from ..models import View
from ..tables import TableClients


class HotIdView:
    """Reads the id view of the hot index (collector/index.py), one day table at a time."""

    def __init__(self, clients: TableClients, prefix: str) -> None:
        self.clients = clients
        self.prefix = prefix

    def days(self) -> list[str]:
        """Days (yyyyMMdd) that have an id table, oldest first."""
        low = f"{self.prefix}{View.ID}"
        names = self.clients.names(low, f"{low}~")
        return sorted(n[len(low):] for n in names if len(n) == len(low) + 8 and n[len(low):].isdigit())

    def locations(self, day: str, since: datetime | None = None) -> Iterator[tuple[str, str, int]]:
        """(record key, archive blob, position) of every id entity of `day`; with `since`, only
        entities the service wrote at or after it (their Timestamp), for late records."""
        table = self.clients.get(keys.table_name(self.prefix, View.ID, day))
        select = ["RowKey", "d"]
        if since is None:
            rows = table.list_entities(select=select, results_per_page=1000)
        else:
            rows = table.query_entities("Timestamp ge @since", parameters={"since": since.astimezone(UTC)},
                                        select=select, results_per_page=1000)
        try:
            for entity in rows:
                blob, position = location_from_entity(entity)
                yield str(entity["RowKey"]), blob, position
        except ResourceNotFoundError:
            return  # the day's tables were dropped (prune-index) since the listing


def blob_origin(name: str) -> tuple[str, datetime]:
    """(content type, contentCreated) of an archive blob name (keys.archive_blob_name); ValueError if it is not one."""
    content_type, _, rest = name.partition("/")
    stamp = rest.rsplit("/", 1)[-1].split("_", 1)[0]  # yyyyMMddTHHmmssfffZ
    if not content_type or len(stamp) != 19 or not stamp.endswith("Z"):
        raise ValueError(f"not an archive blob name: {name!r}")
    created = datetime.strptime(stamp[:15], "%Y%m%dT%H%M%S").replace(microsecond=int(stamp[15:18]) * 1000, tzinfo=UTC)
    return content_type, created
