"""`sgp-action detect`: the agents whose build inputs changed between two commits, as a JSON job matrix.

`--base` missing or all zeros lists every agent (a branch's first push). The matrix goes to stdout; logs to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sgp_action.errors import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of `detect`."""
    parser.add_argument("--base", metavar="REV", help="the commit to compare from (missing or zeros: every agent)")
    parser.add_argument("--head", metavar="REV", default="HEAD", help="the commit to compare to (default HEAD)")
    parser.add_argument(
        "--root", type=Path, default=Path("."), metavar="DIR", help="a folder inside the git repository (default .)"
    )


def execute(args: argparse.Namespace) -> int:
    """Print `[{"manifest": ..., "agent": ...}]` on stdout; InputError (no git, bad revision) exits 2."""
    from sgp_action.run.detect import changed_agents

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    matrix = changed_agents(args.root, args.base, args.head)
    print(json.dumps(matrix))
    return EXIT_OK
