"""`sgp-action run`: what the action runs (docs/architecture.md#commands).

Inputs come from `INPUT_*` variables or the same names as `--flags`. The secrets are masked before anything else is
printed; the event is read before the inputs so that a fork pull request, which gets no secrets, is skipped with a
notice instead of failing on the missing key. The run itself happens in a worker thread while the main thread turns
SIGINT / SIGTERM into a cancellation (`sgp_action.run.cancel.supervise`).
"""

from __future__ import annotations

import argparse
import os

from sgp_action.ci.event import load_event
from sgp_action.ci.runner import default_runner
from sgp_action.errors import EXIT_OK
from sgp_action.run.cancel import CancelToken, supervise
from sgp_action.run.forks import skip_fork_pull_request
from sgp_action.run.inputs import add_run_arguments, overrides_from_args, secret_values
from sgp_action.run.pipeline import Pipeline
from sgp_action.run.settings import load_settings, sends_key_in_clear


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every action input as a `--flag`."""
    add_run_arguments(parser)


def execute(args: argparse.Namespace) -> int:
    """Run the `command` input; returns the exit code of docs/architecture.md#errors-and-exit-codes (ActionErrors reach
    the CLI's reporter)."""
    environ = os.environ
    overrides = overrides_from_args(args)
    runner = default_runner()  # masks the secret INPUT_* variables as it is created
    for secret in secret_values(environ, overrides):
        runner.mask(secret)
    event = load_event(environ)
    if skip_fork_pull_request(event, environ, overrides, runner):
        return EXIT_OK
    settings = load_settings(environ, overrides, event=event)
    if settings.api_key and sends_key_in_clear(settings.base_url):  # allowed only by allow-insecure-http: true
        runner.warning(
            f"base-url {settings.base_url} is plain http:// to another machine: the API key crosses the network "
            "unencrypted (allowed by allow-insecure-http: true); use https:// where you can",
            title="API key sent without TLS",
        )
    token = CancelToken()
    pipeline = Pipeline(settings, event, runner, token=token)
    outcome = supervise(pipeline.run, token, abandon=pipeline.abandon)
    return outcome.exit_code
