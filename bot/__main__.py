"""Command line: `python -m bot [run | migrate | playground]` (run is the default)."""

from __future__ import annotations

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
