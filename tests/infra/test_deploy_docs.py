"""Static checks of the deployment documentation and of requirements.txt: what a reader copies
from docs/ must work on a fresh clone, and the dependency floors must cover what the code relies on."""

from __future__ import annotations

import re
from pathlib import Path

from .bicep import INFRA, ROOT

# Every place a deployment command can be documented: the README, docs/ and the infra scripts.
DOCUMENTED = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *INFRA.glob("*.sh")])
PUBLISH = re.compile(r"func\s+azure\s+functionapp\s+publish\b")


def _commands(text: str) -> list[str]:
    """Logical lines of text: a line ending in a backslash continues on the next one."""
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def test_every_documented_publish_names_the_python_worker() -> None:
    # Core Tools takes the worker runtime from a --python (--node, ...) flag or else from
    # FUNCTIONS_WORKER_RUNTIME in local.settings.json, which a fresh clone does not have: without
    # either, `func azure functionapp publish` stops with "Worker runtime is not set".
    found = []
    for path in DOCUMENTED:
        for line in _commands(path.read_text(encoding="utf-8")):
            if PUBLISH.search(line):
                found.append((path.relative_to(ROOT).as_posix(), line.strip()))
    assert found, "no documented `func azure functionapp publish` command"
    missing = [f"{where}: {line}" for where, line in found if not re.search(r"(?<![\w-])--python\b", line)]
    assert not missing, "publish commands without --python:\n" + "\n".join(missing)
