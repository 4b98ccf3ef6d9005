"""The CLI shell: commands listed, help works, errors become exit codes and one `::error::` line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sgp_action import cli
from sgp_action.errors import EXIT_CONFIG

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == EXIT_CONFIG


def test_unknown_command_is_a_usage_error() -> None:
    assert cli.main(["frobnicate"]) == EXIT_CONFIG


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([name, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "sgp_action", "--version"],
        [sys.executable, str(ROOT / "entrypoint.py"), "--version"],
    ],
)
def test_module_and_entrypoint_are_the_same_program(argv: list[str]) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.startswith("sgp-action ")


def test_a_missing_dependency_is_exit_2_naming_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "requests_toolbelt", None)  # what a missing package looks like to an import
    assert cli.main(["context", "--help"]) == EXIT_CONFIG
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "requests-toolbelt (module requests_toolbelt)" in text and "pip install -r requirements.txt" in text
    assert "usage:" not in text  # checked before anything else


def test_a_mistyped_flag_after_run_prints_runs_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--comand", "preview"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("usage: sgp-action run ") and "--deployment-url" in err
    assert "sgp-action run: error: unrecognized arguments: --comand preview" in err
