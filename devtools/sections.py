"""Marked sections of the docs that the benchmarks and the soak rewrite (`<!-- {marker}:start -->`)."""

from __future__ import annotations

import re
from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def replace_section(path: Path, marker: str, text: str, *, empty: str | None = None) -> None:
    """Replace the text between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` in `path`,
    or append the section; a missing file starts as `empty` (None: it must exist)."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    current = empty if empty is not None and not path.exists() else path.read_text()
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        current = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, current, flags=re.DOTALL)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)


def write_section(name: str, text: str) -> None:
    """Replace the `bench:{name}` section of docs/performance.md."""
    replace_section(PERFORMANCE_MD, f"bench:{name}", text, empty="# Performance\n")
