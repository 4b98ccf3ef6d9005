"""`sgp-action emulator`: start the local SGP emulator (docs/emulator.md).

The flags and the server live in `sgp_action.emulator`, apart from the action's code; this module only wires them
into the CLI so that `sgp-action emulator --help` documents every flag.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the emulator's own flags."""
    from sgp_action.emulator import add_arguments as emulator_arguments

    emulator_arguments(parser)


def execute(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; exit 0."""
    from sgp_action.emulator import config_from_args, serve

    return serve(config_from_args(args))
