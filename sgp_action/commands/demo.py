"""`sgp-action demo`: the whole preview flow against a private emulator on the bundled sample agent."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo takes no flags."""


def execute(args: argparse.Namespace) -> int:
    """Run the demo."""
    print("sgp-action demo: not available yet (the preview flow lands with issue 4)", file=sys.stderr)
    return 0
