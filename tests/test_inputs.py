"""run.inputs: the --<input> flags, flags over `INPUT_*` variables, and the secret inputs to mask."""

from __future__ import annotations

import argparse
from pathlib import Path

from sgp_action.run.inputs import INPUT_NAMES, add_run_arguments, overrides_from_args, secret_values
from sgp_action.run.settings import load_settings
from tests.support import INPUT_API_KEY as KEY
from tests.support import env_for


def test_flags_win_over_env(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--command", "build", "--preview-ttl", "2h", "--dry-run", "--wait", "false"])
    overrides = overrides_from_args(args)
    assert set(overrides) == set(INPUT_NAMES)
    s = load_settings({**env_for(command="deploy", preview_ttl="8h")}, overrides, cwd=tmp_path)
    assert (s.command, s.preview_ttl, s.dry_run, s.wait) == ("build", 7200, True, False)
    flags_only = parser.parse_args(["--api-key", KEY, "--account-id", "a", "--base-url", "http://127.0.0.1:1"])
    s2 = load_settings({}, overrides_from_args(flags_only), cwd=tmp_path)
    assert (s2.api_key, s2.base_url) == (KEY, "http://127.0.0.1:1")


def test_every_input_has_a_flag() -> None:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    assert {f"--{name}" for name in INPUT_NAMES} <= flags


def test_secret_values_for_masking() -> None:
    env = {"INPUT_API-KEY": f"{KEY}\n", "INPUT_GITHUB_TOKEN": "ghs_t"}
    assert secret_values(env) == [KEY, "ghs_t"]
    assert secret_values({}, {"api-key": "flag-key"}) == ["flag-key"]
