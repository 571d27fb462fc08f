"""`python -m collector collect | simulate | serve ...` (see collector/cli.py)."""

import sys

from .cli import main

sys.exit(main())
