"""The command line: `sgp-action COMMAND [flags]`, `python -m sgp_action` and `entrypoint.py` are this program.

The CLI is thin: each command lives in `sgp_action/commands/<name>.py` with `add_arguments(parser)` and
`execute(args) -> int`, imported only when chosen so that start-up stays fast. This is the one layer that decides
what a person sees when something goes wrong: library code raises `ActionError`s and logs.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import logging
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from sgp_action import __version__
from sgp_action.errors import EXIT_CANCELLED, EXIT_CONFIG, ActionError, ConfigError

COMMANDS: dict[str, str] = {
    "run": "what the action runs: reads INPUT_* variables (or the same names as --flags) and performs `command`",
    "context": "package a build context (tar.gz) without uploading it",
    "emulator": "start the local SGP emulator (a real HTTP server)",
    "detect": "list the agents whose build inputs changed between two commits, as a JSON matrix",
    "demo": "run the whole preview flow against a private emulator on the bundled sample agent",
    "doctor": "check a configuration against the server before the first deploy (read-only), as a checklist",
}

#: Commands whose stdout is the step's log; the others keep stdout for their data (a file list, a JSON matrix, the
#: emulator's address) and log to stderr.
LOG_TO_STDOUT = frozenset({"run", "doctor"})

#: Commands that take the action's inputs as flags. The others never import `run.settings` (which pulls in the
#: HTTP stack): `context` starts in a fraction of the time.
TAKES_INPUTS = frozenset({"run", "doctor"})

#: The runtime dependencies (module: the package that provides it), looked for before anything is imported: a
#: missing one would otherwise surface mid-run (the upload imports requests_toolbelt) as an internal error.
REQUIRED_MODULES = {
    "requests": "requests",
    "sseclient": "sseclient-py",
    "yaml": "pyyaml",
    "requests_toolbelt": "requests-toolbelt",
}


class CommandModule(Protocol):
    """What each `sgp_action.commands.<name>` module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def execute(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> CommandModule:
    """The module of command `name`, imported now: each is imported only when chosen (start-up), and by a plain
    import statement so that tests/test_layers.py sees the edge."""
    if name == "run":
        from sgp_action.commands import run

        return run
    if name == "context":
        from sgp_action.commands import context

        return context
    if name == "emulator":
        from sgp_action.commands import emulator

        return emulator
    if name == "detect":
        from sgp_action.commands import detect

        return detect
    if name == "demo":
        from sgp_action.commands import demo

        return demo
    if name == "doctor":
        from sgp_action.commands import doctor

        return doctor
    raise ValueError(f"no command {name!r}")  # COMMANDS and this list are kept equal by tests/test_cli.py


def missing_dependencies() -> list[str]:
    """The packages of REQUIRED_MODULES that this Python cannot import, by package name."""
    missing = []
    for module, package in REQUIRED_MODULES.items():
        try:
            if module in sys.modules:  # None there makes its import fail, as importlib.util.find_spec reads it
                found = sys.modules[module] is not None
            else:  # sys.path first: importlib.util (any finder) costs start-up, and is only asked when that misses
                found = importlib.machinery.PathFinder.find_spec(module) is not None or _found_by_any_finder(module)
        except (ImportError, ValueError):  # a broken install, or a module entry set to None
            found = False
        if not found:
            missing.append(f"{package} (module {module})")
    return missing


def _found_by_any_finder(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def check_dependencies() -> None:
    """Raise ConfigError (exit 2) naming what to install when a runtime dependency is missing."""
    missing = missing_dependencies()
    if missing:
        raise ConfigError(
            f"this Python ({sys.executable}) lacks {', '.join(missing)}. Install the action's requirements into "
            "it: `python3 -m pip install -r requirements.txt` from the action's folder, or in a checkout "
            "`python3 -m venv .venv && .venv/bin/pip install -e .` and run `.venv/bin/sgp-action`"
        )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; with `only`, import and register just that command's flags."""
    return _build_parsers(set(COMMANDS) if only is None else {only})[0]


def _build_parsers(load: set[str]) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's own (for a usage message about that command's flags); only the
    commands in `load` are imported and given their flags."""
    parser = argparse.ArgumentParser(
        prog="sgp-action",
        description="Build and deploy Agentex agents on the Scale GenAI Platform (SGP).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, help_text in COMMANDS.items():
        commands[name] = cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name in load:
            _load(name).add_arguments(cmd_parser)
    return parser, commands


def _debug_requested(args: argparse.Namespace) -> bool:
    """`run.settings.debug_requested` with the command's flags; a command without input flags reads only the
    environment, with the same rule (`RUNNER_DEBUG=1`, or the `debug` input's first non-empty variable true)."""
    if args.command in TAKES_INPUTS:
        from sgp_action.run.inputs import overrides_from_args
        from sgp_action.run.settings import debug_requested

        return debug_requested(os.environ, overrides_from_args(args))
    if os.environ.get("RUNNER_DEBUG") == "1":
        return True
    # The variable `ci.runner.input_env_names("debug")` names (not imported: see _LazyRunnerHandler).
    return os.environ.get("INPUT_DEBUG", "").strip().lower() in {"true", "yes", "1", "on"}


def _log_output(command: str, debug: bool) -> logging.Handler:
    """Send every log record of the package through the runner (made inert, redacted, framed like our lines)."""
    from sgp_action.ci.runner import Runner, attach, default_runner

    if command in LOG_TO_STDOUT:
        runner = default_runner()
        runner.debug_enabled = debug
    else:
        runner = Runner(stream=sys.stderr, debug=debug)
    return attach(runner, debug=debug)


class _LazyRunnerHandler(logging.Handler):
    """Stands in for the runner's handler: a command that logs nothing (a `context` run, as a rule) never loads
    `ci.runner`, a good part of its start-up. The first record makes the runner's handler as `_log_output` does, and
    every record goes through it."""

    def __init__(self, command: str, debug: bool) -> None:
        super().__init__()
        self.command, self.debug = command, debug
        self.target: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.target is None:
            self.target = _log_output(self.command, self.debug)
            # This handler stays the logger's one output (the logger is iterating over its handlers just now).
            logging.getLogger("sgp_action").removeHandler(self.target)
        self.target.handle(record)


def _log_lazily(command: str, debug: bool) -> None:
    """`_log_output`, for commands logging to stderr on the first record that passes the level `attach` sets."""
    logger = logging.getLogger("sgp_action")
    # Replace what an earlier main() in this process attached; a RunnerLogHandler exists only once ci.runner is loaded.
    loaded = sys.modules.get("sgp_action.ci.runner")
    stale = (_LazyRunnerHandler, loaded.RunnerLogHandler) if loaded is not None else (_LazyRunnerHandler,)
    for old in [h for h in logger.handlers if isinstance(h, stale)]:
        logger.removeHandler(old)
    if command in LOG_TO_STDOUT:
        _log_output(command, debug)
        return
    logger.addHandler(_LazyRunnerHandler(command, debug))
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit code (docs/architecture.md#errors-and-exit-codes)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        check_dependencies()
    except ConfigError as exc:
        _report(exc, False)
        return exc.exit_code
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    # `--version`, `--help` and a mistyped command need no command's flags: nothing is imported for them.
    parser, commands = _build_parsers({chosen} if chosen in COMMANDS else set())
    try:
        args, unknown = parser.parse_known_args(args_list)
        if unknown:  # a mistyped flag of a command: show that command's usage, not the top-level one
            commands.get(args.command or "", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_CONFIG
    if not args.command:
        parser.print_help()
        return EXIT_CONFIG
    debug = _debug_requested(args)
    _log_lazily(args.command, debug)
    try:
        return _load(args.command).execute(args)
    except ActionError as exc:
        _report(exc, debug, write_result=args.command == "run")
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def _report(exc: ActionError, debug: bool, *, write_result: bool = False) -> None:
    """One readable line (an `::error::` annotation in a runner); for `run`, also the `result` output."""
    from sgp_action.ci.runner import report_error

    report_error(exc, debug=debug, write_result=write_result)
