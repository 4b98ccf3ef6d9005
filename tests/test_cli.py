"""The CLI shell: commands listed, help works, errors become exit codes and one `::error::` line."""

from __future__ import annotations

import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from sgp_action import cli
from sgp_action.ci.runner import reset_default_runner
from sgp_action.errors import EXIT_CONFIG
from tests.hostile import preview, send_json, serve
from tests.runner_rules import act_processed_commands, github_processed_commands

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


# --- one output path: library log records go through the runner ------------------------------------------------------

SERVER_KEY, FORGE_TOKEN = "sk-cli-log-4242", "ghs_cli_log_token_77"
HOSTILE_DETAIL = f"gone\n::set-output name=x::y\n::add-mask::{FORGE_TOKEN}\nkey {SERVER_KEY} token {FORGE_TOKEN}"


def _teardown_server(handler: BaseHTTPRequestHandler) -> None:
    """One active preview to delete; its delete answers 404 with a detail that tries to act and to leak."""
    if handler.command == "GET":
        send_json(handler, {"items": [preview("d-1")], "has_more": False})
    else:
        send_json(handler, {"detail": HOSTILE_DETAIL}, status=404)


def test_a_logged_server_error_reaches_the_log_inert_and_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in list(os.environ):
        if key.startswith(("INPUT_", "GITHUB_", "GITEA_", "FORGEJO_", "RUNNER_", "SGP_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    with serve(_teardown_server) as server:
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(tmp_path / "output"),
            "INPUT_COMMAND": "teardown",
            "INPUT_PREVIEW_LABEL": "pr-7",
            "INPUT_BASE_URL": server.url,
            "INPUT_API_KEY": SERVER_KEY,
            "INPUT_ACCOUNT_ID": "acct",
            "INPUT_GITHUB_TOKEN": FORGE_TOKEN,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_default_runner()
        try:
            assert cli.main(["run"]) == 0
        finally:
            reset_default_runner()
    out, err = capsys.readouterr()
    (record,) = [line for line in out.splitlines() if "is already gone" in line]  # the teardown's log.info
    assert "::set-output name=x::y" in record and "::add-mask::***" in record
    masks, rest = out.split("\n")[:2], "\n".join(out.split("\n")[2:])
    assert masks == [f"::add-mask::{SERVER_KEY}", f"::add-mask::{FORGE_TOKEN}"]
    assert SERVER_KEY not in rest + err and FORGE_TOKEN not in rest + err
    assert github_processed_commands(out) == ["add-mask", "add-mask"]
    assert act_processed_commands(out) == ["add-mask", "add-mask"]


def test_context_imports_no_http_yaml_emulator_or_settings(tmp_path: Path) -> None:
    # Start-up is most of a small context's time: the packaging path must not pull in the HTTP stack or the rest.
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    probe = (
        "import sys\nfrom sgp_action.cli import main\n"
        f"code = main(['context', '--root', {str(tmp_path)!r}, '--output', {str(tmp_path / 'c.tgz')!r}])\n"
        "heavy = ('requests', 'urllib3', 'yaml', 'sgp_action.emulator', 'sgp_action.run', 'sgp_action.api',"
        " 'sgp_action.ci', 'tarfile', 'tempfile')\n"
        "print(code, sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "0 []", done.stderr


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["no-such-command"]])
def test_top_level_flags_import_no_command(argv: list[str]) -> None:
    # `--version` imported every command (the HTTP stack with `run`): 170 ms instead of 30.
    probe = (
        "import sys\nfrom sgp_action.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sgp_action.commands.', 'requests'))), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"RUNNER_DEBUG": "1"}, True),
        ({"INPUT_DEBUG": " Yes "}, True),
        ({"INPUT_DEBUG": "false"}, False),
        ({"INPUT_DEBUG": "  "}, False),
    ],
)
def test_debug_for_a_command_without_input_flags_reads_the_environment_as_settings_does(
    environ: dict[str, str], expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sgp_action.run.settings import debug_requested

    for name in ("RUNNER_DEBUG", "INPUT_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    args = cli.build_parser("context").parse_args(["context", "--root", "."])
    assert cli._debug_requested(args) is expected is debug_requested(environ)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_context_that_logs_goes_through_the_runner_once_per_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM scratch\n")
    os.mkfifo(root / "pipe")  # skipped with a warning, the context's one log record
    for _ in range(2):  # a second main() in the same process replaces the first one's handler
        assert cli.main(["context", "--root", str(root), "--output", str(tmp_path / "c.tgz")]) == 0
        err = capsys.readouterr().err
        assert err.count("skipped pipe: a FIFO or device file cannot be packaged") == 1


def test_every_command_loads_its_own_module() -> None:
    for name in cli.COMMANDS:
        assert cli._load(name) is sys.modules[f"sgp_action.commands.{name}"]
    with pytest.raises(ValueError, match="no command 'nope'"):
        cli._load("nope")
