"""The marked sections of docs/performance.md that the benchmarks rewrite (`<!-- bench:{name}:... -->`)."""

from __future__ import annotations

import re
from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def write_section(name: str, text: str) -> None:
    """Replace the text between `<!-- bench:{name}:start -->` and its end marker in docs/performance.md."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    current = PERFORMANCE_MD.read_text() if PERFORMANCE_MD.exists() else "# Performance\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        current = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, current, flags=re.DOTALL)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    PERFORMANCE_MD.write_text(current)
