"""`sgp-action emulator`: placeholder until its issue lands."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags yet."""


def execute(args: argparse.Namespace) -> int:
    """Say that the command is not available yet."""
    print("sgp-action emulator: not available yet", file=sys.stderr)
    return 2
