"""`sgp-action demo`: the whole preview flow against a private emulator on the bundled sample agent."""

from __future__ import annotations

import argparse
import shutil
import sys

from sgp_action.demo import run_demo

NEXT_STEPS = """
== where to go next
* Ready-to-copy workflows: examples/github/ (preview, deploy, cleanup, rollback, monorepo) and examples/gitea/
  in this repository; point their manifest: at your agent's manifest.yaml.
* Check your real setup before the first deploy, read-only (GET requests only):
    SGP_API_KEY=... SGP_ACCOUNT_ID=... sgp-action doctor --manifest path/to/manifest.yaml
* Try your own agent or workflow against a local emulator: README.md, section
  "Trying it without credentials: the emulator and the demo"."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the demo (all optional)."""
    parser.add_argument(
        "--dialect",
        choices=("current", "legacy"),
        default="current",
        help="API shapes the private emulator serves (default: current)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary repository, event and output files, and say where"
    )


def execute(args: argparse.Namespace) -> int:
    """Run the preview flow, then print the step outputs and the job summary; exit with the run's code."""
    sys.stdout.flush()
    print("== sgp-action demo: preview of the bundled sample agent on a private SGP emulator", flush=True)
    result = run_demo(dialect=args.dialect)
    try:
        print(f"\n== step outputs (exit code {result.returncode})")
        width = max((len(name) for name in result.outputs), default=0)
        for name, value in result.outputs.items():
            print(f"{name.ljust(width)}  {value}")
        print("\n== job summary")
        print(result.summary.rstrip() or "(empty)")
        if args.keep:
            print(f"\nkept {result.workdir}")
        print(NEXT_STEPS)
    finally:
        if not args.keep:
            shutil.rmtree(result.workdir, ignore_errors=True)
    return result.returncode
