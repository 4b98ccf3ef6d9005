"""sgp_action.ci.runner: outputs, summary, masks, groups, annotations and server-text safety, read back by models of
the GitHub runner and of act (tests/runner_rules.py)."""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sgp_action import cli
from sgp_action.ci import runner as runner_module
from sgp_action.ci.runner import (
    Runner,
    RunnerLogHandler,
    escape_data,
    escape_property,
    neutralize,
    report_error,
)
from sgp_action.errors import ActionError, Cancelled, InputError
from sgp_action.run.inputs import overrides_from_args
from sgp_action.run.settings import debug_requested
from tests.runner_rules import (
    FileCommandError,
    act_command,
    act_processed_commands,
    github_command,
    github_processed_commands,
    parse_act_file,
    parse_github_file,
)
from tests.support import GITHUB_ACTIONS_ENV as ACTIONS
from tests.support import runner_with_files as make

# --- file commands --------------------------------------------------------------------------------------------------

TRICKY_VALUES = [
    ("empty", ""),
    ("plain", "abc"),
    ("spaces", "  padded  "),
    ("multi", "line1\nline2\nline3"),
    ("trailing-newline", "x\n"),
    ("blank-middle", "a\n\n\nb"),
    ("only-newlines-after", "a\n\n"),
    ("equals", "a=b=c"),
    ("heredoc-marker", "x<<EOF\nEOF\ny"),
    ("json", '[{"manifest": "a/manifest.yaml", "agent": "a"}]'),
    ("unicode", "déploiement ✓ 部署 \U0001f680"),
    ("line-separators", "a\u2028b\x85c\x0bd"),
    ("fake-delimiter", "ghadelimiter_00000000-0000-0000-0000-000000000000"),
    ("bom-inside", "\ufeffvalue"),
]


@pytest.mark.parametrize(("label", "value"), TRICKY_VALUES, ids=[v[0] for v in TRICKY_VALUES])
def test_output_reads_back_identically_under_both_runners(tmp_path: Path, label: str, value: str) -> None:
    runner, _ = make(tmp_path)
    runner.set_output("before", "1")
    runner.set_output("value", value)
    runner.set_output("after", "2")
    content = (tmp_path / "out").read_text(encoding="utf-8")
    expected = {"before": "1", "value": value, "after": "2"}
    assert parse_github_file(content) == expected
    assert parse_act_file(content) == expected
    assert "\r" not in content


def test_each_output_uses_a_fresh_random_delimiter_and_lf_only(tmp_path: Path) -> None:
    runner, stream = make(tmp_path)
    runner.set_output("a", "1")
    runner.set_output("a", "2")
    raw = (tmp_path / "out").read_bytes()
    headers = [line for line in raw.split(b"\n") if b"<<" in line]
    assert len(headers) == 2 and headers[0] != headers[1]
    assert all(h.split(b"<<")[1].startswith(b"ghadelimiter_") for h in headers)
    assert b"\r" not in raw and raw.endswith(b"\n")
    assert parse_github_file(raw.decode()) == {"a": "2"}  # the last one wins
    assert stream.getvalue() == ""  # nothing printed when a file is there


def test_value_holding_the_delimiter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = "11111111-2222-3333-4444-555555555555"
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    runner, _ = make(tmp_path)
    with pytest.raises(ActionError, match="delimiter"):
        runner.set_output("evil", f"x\nghadelimiter_{fixed}\ninjected=1")
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_text() == ""


@pytest.mark.parametrize("name", ["", "a=b", "a<<b", "a\nb", "-x", "bad name", "x:y"])
def test_bad_output_names_are_refused(tmp_path: Path, name: str) -> None:
    runner, _ = make(tmp_path)
    with pytest.raises(ActionError):
        runner.set_output(name, "v")


def test_a_line_act_cannot_read_is_written_with_a_warning(tmp_path: Path) -> None:
    runner, stream = make(tmp_path)
    long_line = "[" + ",".join(f'"deployment-{n:05d}"' for n in range(4000)) + "]"
    runner.set_output("deleted", long_line)
    content = (tmp_path / "out").read_text()
    assert parse_github_file(content) == {"deleted": long_line}
    with pytest.raises(FileCommandError, match="too long"):
        parse_act_file(content)
    assert stream.getvalue().startswith("::warning title=Output too long for some runners::output deleted has a line")
    runner.set_output("deleted", long_line.replace(",", ",\n"))  # one id a line: fine everywhere
    assert stream.getvalue().count("::warning") == 1


def test_gitea_output_is_the_fallback(tmp_path: Path) -> None:
    stream = io.StringIO()
    runner = Runner({**ACTIONS, "GITEA_OUTPUT": str(tmp_path / "gitea-out")}, stream)
    runner.set_output("result", "success")
    assert parse_act_file((tmp_path / "gitea-out").read_text()) == {"result": "success"}
    both = Runner({**ACTIONS, "GITHUB_OUTPUT": str(tmp_path / "gh"), "GITEA_OUTPUT": str(tmp_path / "gt")}, stream)
    both.set_output("x", "1")
    assert (tmp_path / "gh").exists() and not (tmp_path / "gt").exists()


def test_appending_after_a_line_without_final_newline_keeps_the_file_valid(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("earlier=value", encoding="utf-8")  # another tool forgot the LF
    runner, _ = make(tmp_path)
    runner.set_output("ours", "x")
    content = (tmp_path / "out").read_text()
    assert parse_github_file(content) == parse_act_file(content) == {"earlier": "value", "ours": "x"}


def test_without_output_file_the_cli_prints_name_value(tmp_path: Path) -> None:
    stream = io.StringIO()
    runner = Runner({}, stream)
    runner.set_output("result", "success")
    runner.set_output("report", "a\nb")
    assert stream.getvalue() == "result=success\nreport<<EOF\na\nb\nEOF\n"


def test_runner_models_reject_what_the_real_runners_reject() -> None:
    with pytest.raises(FileCommandError, match="delimiter not found"):
        parse_github_file("x<<D\nvalue\n")
    with pytest.raises(FileCommandError, match="missing new line"):
        parse_github_file("x<<D\nvalue")
    with pytest.raises(FileCommandError, match="expected a line"):
        parse_act_file("a=1\n\nb=2\n")
    assert parse_github_file("a=1\n\nb=2\n") == {"a": "1", "b": "2"}
    with pytest.raises(FileCommandError, match="not found"):
        parse_act_file("x<<D\nvalue\n")


# --- summary --------------------------------------------------------------------------------------------------------


def test_summary_appends_and_falls_back_to_gitea(tmp_path: Path) -> None:
    runner, _ = make(tmp_path)
    runner.append_summary("## one\n")
    runner.append_summary("two\n")
    assert (tmp_path / "sum").read_text() == "## one\ntwo\n"
    gitea = Runner({**ACTIONS, "GITEA_STEP_SUMMARY": str(tmp_path / "g")}, io.StringIO())
    gitea.append_summary("| a |\n")
    assert (tmp_path / "g").read_text() == "| a |\n"


def test_summary_outside_a_runner_is_printed(tmp_path: Path) -> None:
    stream = io.StringIO()
    Runner({}, stream).append_summary("| build | b-1 |")
    assert stream.getvalue() == "| build | b-1 |\n"


# --- masks, groups, annotations ---------------------------------------------------------------------------------------


def test_secret_inputs_are_masked_before_anything_else(tmp_path: Path) -> None:
    stream = io.StringIO()
    env = {**ACTIONS, "INPUT_API_KEY": "sk-live-123456", "INPUT_GITHUB-TOKEN": "ghp_line1\nline2%0A\n\n", "X": "y"}
    runner = Runner(env, stream)
    runner.info("hello sk-live-123456")
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["::add-mask::sk-live-123456", "::add-mask::ghp_line1", "::add-mask::line2%250A"]
    assert lines[3] == "hello ***"
    runner.mask("sk-live-123456")  # already registered: not printed again
    assert stream.getvalue().count("add-mask") == 3


def test_masks_are_not_printed_outside_a_runner_but_still_redact() -> None:
    stream = io.StringIO()
    runner = Runner({"SGP_API_KEY": "sk-local-abcdef"}, stream)
    runner.info("key=sk-local-abcdef")
    runner.server_line("echo sk-local-abcdef")
    assert "sk-local-abcdef" not in stream.getvalue() and "add-mask" not in stream.getvalue()


def test_groups_annotations_and_escaping(tmp_path: Path) -> None:
    runner, stream = make(tmp_path)
    with runner.group("Build b-1"), runner.group("inner"):
        runner.info("step")
    runner.warning("100% done\r\nnext", title="a: b, c", file="dir/x,y.txt")
    runner.error("boom\nline 2")
    runner.notice("fyi")
    assert stream.getvalue().splitlines() == [
        "::group::Build b-1",
        "== inner",
        "step",
        "::endgroup::",
        "::warning title=a%3A b%2C c,file=dir/x%2Cy.txt::100%25 done%0D%0Anext",
        "::error::boom%0Aline 2",
        "::notice::fyi",
    ]
    assert escape_data("%\r\n:,") == "%25%0D%0A:,"
    assert escape_property("%\r\n:,") == "%25%0D%0A%3A%2C"


def test_annotation_titles_are_redacted_too(tmp_path: Path) -> None:
    runner, stream = make(tmp_path, INPUT_API_KEY="sk-title-5555")
    runner.error("failed", title="key sk-title-5555")
    assert stream.getvalue().splitlines()[1] == "::error title=key ***::failed"


def test_debug_lines_follow_the_debug_setting() -> None:
    quiet_stream, loud_stream = io.StringIO(), io.StringIO()
    Runner(ACTIONS, quiet_stream).debug("detail")
    Runner(ACTIONS, loud_stream, debug=True).debug("detail")
    assert quiet_stream.getvalue() == "::debug::detail\n"
    assert loud_stream.getvalue() == "debug: detail\n"


def test_plain_mode_outside_a_runner() -> None:
    stream = io.StringIO()
    runner = Runner({}, stream)
    with runner.group("Packaging"):
        runner.warning("secret-looking file", title="context")
    runner.debug("hidden")
    assert stream.getvalue() == "== Packaging\nwarning: context: secret-looking file\n"


# --- server text ------------------------------------------------------------------------------------------------------

HOSTILE = [
    "::add-mask::password",
    "::ADD-MASK::password",
    "  ::set-output name=result::success",
    "\t::error file=x::fake failure",
    "\u00a0\u3000::warning::wide spaces",
    "\ufeff::debug::bom first",
    "\u200b::notice::zero width first",
    "::stop-commands::attacker-token",
    "::attacker-token::",
    "::group::fake",
    "::endgroup::",
    "::save-state name=x::y",
    "::set-env name=PATH::/evil",
    "::add-path::/evil",
    "##[set-output name=result]success",
    "##[add-mask]password",
    "Step 3/5 : RUN echo ##[error]inside a line",
    "##[stop-commands]tok",
    "progress\r::add-mask::after a carriage return",
    "crlf\r\n::error::next line",
    "sep\u2028::warning::line separator",
    "nel\x85::warning::next-line char",
    "ff\x0c::warning::form feed",
    "::",
    "::::",
    ":: ::",
    "##[",
    "# ##[ #",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_server_text_never_acts_as_a_command(tmp_path: Path, text: str) -> None:
    runner, stream = make(tmp_path)
    runner.server_line(text)
    token = runner._stop_token
    runner.info("our own line")
    runner.error("after")
    log = stream.getvalue()
    lines = log.splitlines()
    body = lines[1 : lines.index(f"::{token}::")]  # between the stop marker and the resume marker
    assert body
    for line in body:
        assert github_command(line) is None, line
        assert act_command(line) is None, line
    assert github_processed_commands(log) == ["stop-commands", "<resume>", "error"]
    assert act_processed_commands(log) == ["stop-commands", "<resume>", "error"]


@pytest.mark.parametrize("text", HOSTILE)
def test_neutralized_text_is_safe_even_without_stop_commands(text: str) -> None:
    stream = io.StringIO()
    Runner({}, stream).server_line(text)  # outside a runner: guard 1 alone
    for line in stream.getvalue().splitlines():
        assert github_command(line) is None, line
        assert act_command(line) is None, line
    assert neutralize("plain text") == "plain text"


def test_server_lines_share_one_region_and_our_lines_close_it(tmp_path: Path) -> None:
    runner, stream = make(tmp_path)
    runner.server_line("Step 1/3 : FROM python")
    runner.server_line("Step 2/3 : RUN true\nStep 3/3 : CMD x")
    token = runner._stop_token
    assert token is not None and len(token) == 32
    runner.info("status: running")
    runner.server_line("done")
    second = runner._stop_token
    runner.flush()
    assert stream.getvalue().splitlines() == [
        f"::stop-commands::{token}",
        "Step 1/3 : FROM python",
        "Step 2/3 : RUN true",
        "Step 3/3 : CMD x",
        f"::{token}::",
        "status: running",
        f"::stop-commands::{second}",
        "done",
        f"::{second}::",
    ]
    assert second != token


def test_server_text_cannot_hold_the_resume_token(tmp_path: Path) -> None:
    runner, stream = make(tmp_path)
    runner.server_line("first")
    token = runner._stop_token
    assert token is not None
    runner.server_line(f"::{token.upper()}::")
    runner.server_line(f"##[{token}]")
    runner.flush()
    assert github_processed_commands(stream.getvalue()) == ["stop-commands", "<resume>"]
    assert stream.getvalue().count(token) == 2


def test_our_own_lines_are_neutralized_too(tmp_path: Path) -> None:
    runner, stream = make(tmp_path)
    runner.info("packaging ::add-mask::x\n::add-mask::file-name-from-the-repo")
    assert github_processed_commands(stream.getvalue()) == []


def test_log_handler_routes_records_through_the_runner(tmp_path: Path) -> None:
    runner, stream = make(tmp_path, INPUT_API_KEY="sk-handler-999")
    logger = logging.getLogger("sgp_action.test_runner_handler")
    logger.setLevel(logging.DEBUG)
    handler = RunnerLogHandler(runner)
    logger.addHandler(handler)
    try:
        logger.warning("server said ::add-mask::x with key sk-handler-999")
        logger.debug("detail")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[1:] == ["server said ::add-mask::x with key ***", "::debug::detail"]
    assert github_processed_commands("\n".join(lines[1:])) == ["debug"]


# --- error reporting --------------------------------------------------------------------------------------------------


def test_report_error_in_a_runner_is_one_annotation_and_sets_result(tmp_path: Path) -> None:
    runner, stream = make(tmp_path, INPUT_API_KEY="sk-report-777")
    report_error(InputError("preview-ttl: '-5m' is not a duration\nuse 90m"), runner=runner, write_result=True)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "::add-mask::sk-report-777",
        "::error title=Bad input or configuration::preview-ttl: '-5m' is not a duration%0Ause 90m",
    ]
    assert parse_github_file((tmp_path / "out").read_text()) == {"result": "failure"}
    runner.outputs_written["result"] = "cancelled"
    report_error(Cancelled("cancelled by the runner"), runner=runner, write_result=True)
    assert parse_github_file((tmp_path / "out").read_text()) == {"result": "failure"}  # not written twice


def test_report_error_traceback_only_with_debug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    runner = Runner({"SGP_API_KEY": "sk-trace-4242"}, stream)
    try:
        raise InputError("bad key sk-trace-4242")
    except InputError as exc:
        report_error(exc, runner=runner)
        assert stream.getvalue() == ""
        assert capsys.readouterr().err == "Error: bad key ***\n"
        report_error(exc, runner=runner, debug=True)
    assert "Traceback (most recent call last)" in stream.getvalue()
    assert "sk-trace-4242" not in stream.getvalue()


# --- the CLI's error presentation (sgp_action.cli._report) ---------------------------------------------------------


@pytest.fixture
def actions_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "RUNNER_DEBUG", "INPUT_DEBUG", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("INPUT_API_KEY", "sk-cli-key-31337")
    monkeypatch.setenv("INPUT_ACCOUNT_ID", "acct")
    monkeypatch.setenv("INPUT_COMMAND", "bogus")
    monkeypatch.chdir(tmp_path)
    runner_module.reset_default_runner()
    yield tmp_path
    runner_module.reset_default_runner()


def test_cli_run_input_error_is_masked_first_then_one_annotation_and_result(
    actions_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "::add-mask::sk-cli-key-31337"
    assert lines[1:] == [
        "::error title=Bad input or configuration::command: 'bogus' is not one of auto, preview, deploy, build, "
        "teardown, cleanup, detect, doctor"
    ]
    assert parse_github_file((actions_env / "out").read_text()) == {"result": "failure"}


def test_cli_debug_adds_the_traceback_without_the_key(actions_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--debug"]) == 2
    out = capsys.readouterr().out
    assert "Traceback (most recent call last)" in out and "InputError" in out
    assert out.count("sk-cli-key-31337") == 1  # only in the ::add-mask:: line


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["run"], {}, False),
        (["run", "--debug"], {}, True),
        (["run", "--debug", "false"], {}, False),
        (["run", "--debug=yes"], {}, True),
        (["run", "--debug", "--dry-run"], {}, True),
        (["run"], {"RUNNER_DEBUG": "1"}, True),
        (["run"], {"INPUT_DEBUG": "TRUE"}, True),
    ],
)
def test_debug_switch(argv: list[str], env: dict[str, str], expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNNER_DEBUG", "INPUT_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = cli.build_parser(only="run").parse_args(argv)
    assert debug_requested(os.environ, overrides_from_args(args)) is expected


def test_other_commands_do_not_write_result(actions_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["context", "--root", str(actions_env / "missing")]) == 2
    assert "::error title=Bad input or configuration::" in capsys.readouterr().out
    assert not (actions_env / "out").exists()


@pytest.mark.parametrize("name", ["result\n", "a\n", "deployment-id\r"])
def test_a_name_ending_in_a_line_break_is_refused(tmp_path: Path, name: str) -> None:
    runner, _ = make(tmp_path)
    with pytest.raises(ActionError, match="not a valid output name"):
        runner.set_output(name, "v")
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_text() == ""


def test_a_lone_surrogate_in_a_value_is_an_action_error_and_nothing_is_written(tmp_path: Path) -> None:
    runner, _ = make(tmp_path)
    with pytest.raises(ActionError, match="lone surrogate at character 3"):
        runner.set_output("namespace", "abc\ud800def")
    assert runner.outputs_written == {}
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_text() == ""


def test_a_lone_surrogate_in_the_summary_is_replaced_not_fatal(tmp_path: Path) -> None:
    runner, _ = make(tmp_path)
    runner.append_summary("status \udc80 ok\n")
    assert (tmp_path / "sum").read_text(encoding="utf-8") == "status \ufffd ok\n"
