"""`python -m collector.simulator …` (same as `python -m collector simulate …`)."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
