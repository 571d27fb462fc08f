"""Helpers shared by the infra tests: where the templates are and how to parse them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"


def bicep_files() -> list[Path]:
    """Every .bicep file under infra/ (main and modules)."""
    return sorted(INFRA.rglob("*.bicep"))


def parse(path: Path) -> dict[str, Any]:
    """Parse one Bicep file with pycep-parser; a syntax error raises (lark or ValueError)."""
    return BicepParser().parse(file_path=path)


def setting_names(node: Any) -> set[str]:
    """App setting names in a parsed Bicep value: the keys of object literals.

    pycep's own structural keys (operator, operands, true_value, arg_1, ...) are all lower-case,
    while every app setting name has an upper-case letter, which tells the two apart.
    """
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if re.search(r"[A-Z]", key):
                found.add(key)
            found |= setting_names(value)
    elif isinstance(node, list):
        for item in node:
            found |= setting_names(item)
    return found


def strings(node: Any) -> set[str]:
    """Every string leaf of a parsed Bicep value (identifiers and literals alike)."""
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(strings(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(strings(v) for v in node)) if node else set()
    return set()
