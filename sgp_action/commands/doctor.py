"""`sgp-action doctor`: a read-only preflight of a configuration against the server, printed as a checklist.

It takes the same inputs as `run` (`INPUT_*` variables or `--flags`) and never sends POST, PATCH or DELETE to SGP.
Exit 0 when a deploy could go ahead, 2 for a local problem, 3 for a server answer that blocks.
"""

from __future__ import annotations

import argparse
import os

from sgp_action.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every action input as a `--flag`, as for `run` (`--command` is hidden and ignored: this is the doctor)."""
    from sgp_action.run.inputs import add_run_arguments

    add_run_arguments(parser)
    for action in parser._actions:
        if action.dest == "input_command":
            action.help = argparse.SUPPRESS


def execute(args: argparse.Namespace) -> int:
    """Check the configuration, print the checklist (and the job summary) and return its exit code."""
    from sgp_action.ci.event import load_event
    from sgp_action.ci.runner import default_runner
    from sgp_action.run.checklist import Checklist, inert
    from sgp_action.run.doctor import diagnose, report
    from sgp_action.run.inputs import overrides_from_args, secret_values
    from sgp_action.run.settings import load_settings

    environ = os.environ
    overrides = {**overrides_from_args(args), "command": "doctor"}
    runner = default_runner()
    for secret in secret_values(environ, overrides):
        runner.mask(secret)
    event = load_event(environ)
    try:
        settings = load_settings(environ, overrides, event=event)
    except InputError as exc:
        checks = Checklist()
        checks.fail("inputs", inert(exc, 300), "set the input the message names", server=False)
        return report(checks, runner)
    return report(diagnose(settings, event), runner)
