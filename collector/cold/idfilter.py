"""A month's id filter: which compacted days of a month may hold a record id (docs/cold-tier.md "Id lookups").

A record id says nothing about its day, so without help a lookup reads every day's ids file: 365
reads for a year. A month's filter is one blocked Bloom filter per day, laid out so that the
blocks of all the month's days for one hash sit side by side: one ranged read (days × 64 bytes)
answers "which days may hold this key" for the whole month, with about 1 % false positives a day.

    {yyyy}/{MM}/ids-filter-{sha256 of the content, 16 hex}.bin
        8 bytes   header length H (little endian)
        H bytes   JSON {"format", "month", "blocks", "days": [[day, generation, deltas, other_orgs], ...]}
        blocks × days × 64 bytes   row b holds block b of every day, in the header's day order

The compactor deletes a month's filter before it changes any day of the month (a new day, late
records, a merge) and writes a new one after, so a filter that exists is true of every day it
lists; days it does not list are probed directly. Its name carries a hash of its content, so a
reader that read a header never reads a row of another version: a replaced filter is simply gone. `other_orgs` says whether the day holds records of organizations other than
the tenant's (their keys carry an `_org` suffix the lookup cannot know): only those days are probed
for them. Pure logic; the I/O is the compactor's (build) and the view's (read).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ColdFormatError

FORMAT = 1
PREFIX = "ids-filter-"
SUFFIX = ".bin"
BLOCK_BYTES = 64  # one cache line: 512 bits
BLOCK_BITS = BLOCK_BYTES * 8
BITS_PER_KEY = 10  # ~1 % false positives with K = 7
K = 7
_LEN = struct.Struct("<Q")
_MASK = (1 << 64) - 1


def filter_name(month: str, data: bytes) -> str:
    """`yyyy/MM/ids-filter-{hash}.bin` of a month given as yyyyMM and the filter's bytes."""
    import hashlib

    return f"{month[:4]}/{month[4:]}/{PREFIX}{hashlib.sha256(data).hexdigest()[:16]}{SUFFIX}"


def month_of_filter(name: str) -> str | None:
    """yyyyMM of a filter's blob name, None if `name` is not one."""
    parts = name.split("/")
    if len(parts) == 3 and parts[2].startswith(PREFIX) and parts[2].endswith(SUFFIX) and (parts[0] + parts[1]).isdigit():
        return parts[0] + parts[1]
    return None


def _mix(value: int) -> int:
    """splitmix64: spreads the key hash's bits for the block index and the bit positions."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def positions(key_hash: int, blocks: int) -> tuple[int, list[int]]:
    """(block, K bit positions in it) of a key hash (layout.key_hash)."""
    first = _mix(key_hash)
    second = _mix(first) | 1
    return first % blocks, [((first >> 20) + i * second) % BLOCK_BITS for i in range(K)]


@dataclass(frozen=True)
class DayEntry:
    day: str
    generation: int
    deltas: int
    other_orgs: bool


@dataclass(frozen=True)
class Header:
    month: str
    blocks: int
    days: tuple[DayEntry, ...]
    offset: int  # where row 0 starts in the file

    def row(self, block: int) -> tuple[int, int]:
        """(offset, length) of the row of `block`: that block of every day."""
        length = len(self.days) * BLOCK_BYTES
        return self.offset + block * length, length


def blocks_for(records: int) -> int:
    return max(1, math.ceil(records * BITS_PER_KEY / BLOCK_BITS))


def _mix_array(value: np.ndarray) -> np.ndarray:
    """_mix over a uint64 array (numpy's uint64 arithmetic wraps like the & _MASK above)."""
    value = value + np.uint64(0x9E3779B97F4A7C15)
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = value ^ (value >> np.uint64(31))
    return mixed


def build(month: str, days: Sequence[tuple[DayEntry, np.ndarray]]) -> bytes:
    """The filter file of `days` (each with its key hashes, int64) of a month; vectorized, so a
    2 M-record day costs about a second."""
    blocks = blocks_for(max((len(hashes) for _, hashes in days), default=0))
    grid = np.zeros(blocks * len(days) * BLOCK_BYTES, dtype=np.uint8)
    for slot, (_, hashes) in enumerate(days):
        with np.errstate(over="ignore"):
            first = _mix_array(hashes.astype(np.uint64))
            second = _mix_array(first) | np.uint64(1)
        base = (first % np.uint64(blocks)).astype(np.int64) * (len(days) * BLOCK_BYTES) + slot * BLOCK_BYTES
        high = first >> np.uint64(20)
        for i in range(K):
            with np.errstate(over="ignore"):
                bit = ((high + np.uint64(i) * second) % np.uint64(BLOCK_BITS)).astype(np.int64)
            np.bitwise_or.at(grid, base + (bit >> 3), (1 << (bit & 7)).astype(np.uint8))
    header = json.dumps({"format": FORMAT, "month": month, "blocks": blocks,
                         "days": [[d.day, d.generation, d.deltas, d.other_orgs] for d, _ in days]},
                        separators=(",", ":")).encode()
    return _LEN.pack(len(header)) + header + grid.tobytes()  # row b = block b of every day, day order


def parse_header(prefix: bytes) -> tuple[int, Header | None]:
    """(bytes the header needs, the header once `prefix` holds it all)."""
    if len(prefix) < _LEN.size:
        return _LEN.size, None
    (length,) = _LEN.unpack_from(prefix)
    if len(prefix) < _LEN.size + length:
        return _LEN.size + length, None
    try:
        body = json.loads(prefix[_LEN.size:_LEN.size + length])
        if body.get("format") != FORMAT:
            raise ColdFormatError(f"id filter format {body.get('format')!r}; this version reads {FORMAT}")
        days = tuple(DayEntry(str(d[0]), int(d[1]), int(d[2]), bool(d[3])) for d in body["days"])
        return _LEN.size + length, Header(str(body["month"]), int(body["blocks"]), days, _LEN.size + length)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ColdFormatError(f"unreadable id filter: {exc}") from None


def candidates(header: Header, row: bytes, key_hash: int) -> set[str]:
    """The days of the filter whose block (in `row`, read for this key's block) may hold the key."""
    _, bits = positions(key_hash, header.blocks)
    found = set()
    for slot, entry in enumerate(header.days):
        block = row[slot * BLOCK_BYTES:(slot + 1) * BLOCK_BYTES]
        # A short read (it should not happen) counts as "may hold": a filter may only ever rule days out.
        if len(block) != BLOCK_BYTES or all(block[bit >> 3] & (1 << (bit & 7)) for bit in bits):
            found.add(entry.day)
    return found


def covered(header: Header, current: Iterable[tuple[str, int, int]]) -> set[str]:
    """Days the filter answers for: built from the (day, generation, deltas) that still hold."""
    built = {(d.day, d.generation, d.deltas) for d in header.days}
    return {day for day, generation, deltas in current if (day, generation, deltas) in built}
