"""`python -m simulator …`: the Management Activity API simulator (see simulator/cli.py)."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
