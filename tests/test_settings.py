"""run.settings: every input of README.md#inputs-and-outputs, its default, good and bad values, env vs flags."""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sgp_action.ci.event import WorkflowEvent
from sgp_action.demo import pull_request_event
from sgp_action.errors import InputError
from sgp_action.run.inputs import DEFAULT_BASE_URL, add_run_arguments, overrides_from_args
from sgp_action.run.settings import load_settings, parse_build_args, sanitize_label, sends_key_in_clear
from tests.run_helpers import Workspace, run_action_process
from tests.support import INPUT_API_KEY as KEY
from tests.support import ROOT, EmulatorHandle, env_for

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def load(tmp_path: Path, env: dict[str, str] | None = None, **inputs: str):  # type: ignore[no-untyped-def]
    return load_settings({**env_for(**inputs), **(env or {})}, now=NOW, cwd=tmp_path)


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.command == "auto"
    assert s.base_url == DEFAULT_BASE_URL
    assert s.working_directory == tmp_path.resolve()
    assert s.manifest == tmp_path.resolve() / "manifest.yaml"
    assert s.environments == tmp_path.resolve() / "environments.yaml"
    assert (s.environment, s.image_name, s.image_tag, s.platform, s.build_id) == (None, None, None, None, None)
    assert s.build_args == {}
    assert s.preview_label is None
    assert s.preview_ttl == 8 * 3600
    assert s.expires_at is None
    assert (s.wait, s.reuse_build, s.replace_previous, s.follow_symlinks) == (True, True, True, False)
    assert (s.build_timeout, s.deploy_timeout, s.poll_interval) == (1800, 900, 5)
    assert (s.github_token, s.comment, s.dry_run, s.debug) == (None, None, False, False)
    assert s.temp_dir is None


def test_every_value_set(tmp_path: Path) -> None:
    (tmp_path / "repo" / "agents" / "a").mkdir(parents=True)
    s = load(
        tmp_path,
        {"RUNNER_TEMP": "/runner/tmp", "INPUT_API_KEY": f"  {KEY}\n"},
        command="Preview",
        base_url="http://127.0.0.1:8080/prefix/",
        working_directory="repo",
        manifest="agents/a/manifest.yaml",
        environments="envs.yaml",
        environment="prod",
        image_name="team/my-agent",
        image_tag="v1.2.3",
        build_args="# comment\n\nA=1\nB = two=2\nEMPTY=\n",
        platform="linux/arm64",
        build_id="b-123",
        agent_id=" agt-7 ",
        preview_label="Feature/Login!!",
        preview_ttl="1h30m",
        expires_at="2030-01-02T00:00:00Z",
        wait="no",
        build_timeout="2h",
        deploy_timeout="600",
        poll_interval="0.5s",
        reuse_build="FALSE",
        replace_previous="off",
        follow_symlinks="1",
        github_token="ghs_token",
        comment="true",
        dry_run="yes",
        debug="on",
    )
    repo = (tmp_path / "repo").resolve()
    assert s.command == "preview" and s.api_key == KEY and s.account_id == "acct-1"
    assert s.base_url == "http://127.0.0.1:8080/prefix"
    assert s.working_directory == repo
    assert s.manifest == repo / "agents/a/manifest.yaml"
    assert s.environments == repo / "envs.yaml"
    assert (s.environment, s.image_name, s.image_tag) == ("prod", "team/my-agent", "v1.2.3")
    assert s.build_args == {"A": "1", "B": " two=2", "EMPTY": ""}
    assert (s.platform, s.build_id, s.preview_label) == ("linux/arm64", "b-123", "feature-login")
    assert s.agent_id == "agt-7"
    assert s.preview_ttl == 5400
    assert s.expires_at == datetime(2030, 1, 2, tzinfo=timezone.utc)
    assert (s.wait, s.reuse_build, s.replace_previous, s.follow_symlinks) == (False, False, False, True)
    assert (s.build_timeout, s.deploy_timeout, s.poll_interval) == (7200, 600, 0.5)
    assert (s.github_token, s.comment, s.dry_run, s.debug) == ("ghs_token", True, True, True)
    assert s.temp_dir == "/runner/tmp"
    assert KEY not in repr(s) and "ghs_token" not in repr(s)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "ship"}, "command: 'ship' is not one of auto, preview"),
        ({"base_url": "api.example.com"}, "base-url"),
        ({"base_url": "ftp://host/x"}, "base-url"),
        ({"base_url": "https://"}, "base-url"),
        ({"base_url": "https://user:pw@host"}, "must not carry credentials"),
        ({"base_url": "https://host/x?y=1"}, "query"),
        ({"base_url": "https://host:99999"}, "base-url"),
        ({"working_directory": "missing-dir"}, "working-directory: 'missing-dir' is not a directory"),
        ({"image_name": "My_Agent"}, "image-name"),
        ({"image_name": "a//b"}, "image-name"),
        ({"image_tag": "-bad"}, "image-tag"),
        ({"image_tag": "x" * 129}, "image-tag"),
        ({"build_args": "NOEQUALS"}, "build-args line 1: expected KEY=VALUE"),
        ({"build_args": "A=1\n1BAD=2"}, "build-args line 2: '1BAD' is not a valid name"),
        ({"build_args": "A=1\nA=2"}, "A is given twice"),
        ({"build_args": "=value"}, "build-args line 1"),
        ({"platform": "windows/amd64"}, "platform: 'windows/amd64' is not one of linux/amd64"),
        ({"build_id": "b 1"}, "build-id: the value contains white space"),
        ({"agent_id": "a 1"}, "agent-id: the value contains white space"),
        ({"preview_label": "!!!"}, "sanitizes to nothing"),
        ({"preview_ttl": "-1h"}, "preview-ttl: '-1h' is not a usable duration: a duration cannot be negative"),
        ({"preview_ttl": "soon"}, "preview-ttl"),
        ({"build_timeout": "0"}, "build-timeout"),
        ({"deploy_timeout": "15 mins"}, "deploy-timeout"),
        ({"poll_interval": "0s"}, "poll-interval"),
        ({"expires_at": "tomorrow"}, "expires-at: 'tomorrow' is not an ISO 8601 time"),
        ({"expires_at": "2029-12-31T00:00:00Z"}, "is not in the future"),
        ({"expires_at": "2030-01-01T12:00:00+00:00"}, "is not in the future"),
        ({"wait": "maybe"}, "wait: 'maybe' is not a boolean"),
        ({"reuse_build": "2"}, "reuse-build"),
        ({"replace_previous": "y"}, "replace-previous"),
        ({"follow_symlinks": "enabled"}, "follow-symlinks"),
        ({"comment": "sometimes"}, "comment"),
        ({"dry_run": "dry"}, "dry-run"),
        ({"debug": "verbose"}, "debug"),
        ({"github_token": "two words"}, "github-token: the value contains white space"),
        ({"account_id": "a b"}, "account-id"),
    ],
)
def test_bad_values_name_the_input(tmp_path: Path, inputs: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("?", r"\?")) as info:
        load(tmp_path, None, **inputs)
    assert info.value.exit_code == 2
    assert KEY not in str(info.value)


def test_key_and_account_required_except_detect_and_dry_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="api-key is required"):
        load_settings({"INPUT_ACCOUNT_ID": "a"}, cwd=tmp_path)
    with pytest.raises(InputError, match="account-id is required"):
        load_settings({"INPUT_API_KEY": KEY}, cwd=tmp_path)
    with pytest.raises(InputError, match="api-key is required"):
        load_settings({"INPUT_API_KEY": "   ", "INPUT_ACCOUNT_ID": "a"}, cwd=tmp_path)
    detect = load_settings({"INPUT_COMMAND": "detect"}, cwd=tmp_path)
    assert detect.api_key == "" and detect.account_id == ""
    assert load_settings({"INPUT_DRY_RUN": "true"}, cwd=tmp_path).dry_run


def test_key_with_inner_white_space_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_settings({"INPUT_API_KEY": "sk-abc def-secret", "INPUT_ACCOUNT_ID": "a"}, cwd=tmp_path)
    assert "api-key" in str(info.value) and "secret" not in str(info.value)


def test_build_args_errors_never_echo_values() -> None:
    with pytest.raises(InputError) as info:
        parse_build_args("TOKEN=supersecret\nbad key=supersecret")
    assert "supersecret" not in str(info.value)


def test_hyphenated_env_spelling_and_sdk_variables(tmp_path: Path) -> None:
    env = {
        "INPUT_API-KEY": KEY,
        "INPUT_ACCOUNT-ID": "acct-h",
        "INPUT_PREVIEW-TTL": "2d",
        "INPUT_DRY-RUN": "true",
    }
    s = load_settings(env, cwd=tmp_path)
    assert (s.api_key, s.account_id, s.preview_ttl, s.dry_run) == (KEY, "acct-h", 172800, True)
    both = load_settings({**env, "INPUT_PREVIEW_TTL": "1h"}, cwd=tmp_path)
    assert both.preview_ttl == 3600  # the underscore spelling (our action.yml) wins
    sdk = load_settings(
        {"SGP_API_KEY": KEY, "SGP_ACCOUNT_ID": "acct-s", "SGP_CLIENT_BASE_URL": "http://127.0.0.1:9"}, cwd=tmp_path
    )
    assert (sdk.api_key, sdk.account_id, sdk.base_url) == (KEY, "acct-s", "http://127.0.0.1:9")
    explicit = load_settings(
        {**env_for(), "SGP_CLIENT_BASE_URL": "http://127.0.0.1:1", "INPUT_BASE_URL": "http://127.0.0.2:2"}, cwd=tmp_path
    )
    assert explicit.base_url == "http://127.0.0.2:2"


def test_empty_inputs_count_as_unset(tmp_path: Path) -> None:
    s = load(tmp_path, command="", preview_ttl="", wait="", base_url="", manifest="", comment="")
    assert (s.command, s.preview_ttl, s.wait, s.base_url) == ("auto", 28800, True, DEFAULT_BASE_URL)
    assert s.manifest.name == "manifest.yaml" and s.comment is None


def test_debug_from_runner_debug(tmp_path: Path) -> None:
    assert load(tmp_path, {"RUNNER_DEBUG": "1"}).debug
    assert not load(tmp_path, {"RUNNER_DEBUG": "0"}).debug


def test_environments_default_beside_the_manifest(tmp_path: Path) -> None:
    s = load(tmp_path, manifest="agents/x/manifest.yaml")
    assert s.environments == tmp_path.resolve() / "agents/x/environments.yaml"


def test_preview_label_default_comes_from_the_pull_request(tmp_path: Path) -> None:
    env = env_for()
    assert load_settings(
        env, event=WorkflowEvent(event_name="pull_request", pr_number=42), cwd=tmp_path
    ).preview_label == ("pr-42")
    given = load_settings({**env, "INPUT_PREVIEW_LABEL": "Demo"}, event=WorkflowEvent(pr_number=42), cwd=tmp_path)
    assert given.preview_label == "demo"
    assert load_settings(env, event=WorkflowEvent(event_name="push"), cwd=tmp_path).preview_label is None


def test_comment_auto_needs_a_token_and_a_pull_request(tmp_path: Path) -> None:
    auto = load(tmp_path, github_token="ghs_x")
    assert auto.should_comment(True) and not auto.should_comment(False)
    assert not load(tmp_path).should_comment(True)
    assert not load(tmp_path, github_token="ghs_x", comment="false").should_comment(True)


def test_expires_at_forms(tmp_path: Path) -> None:
    naive = load(tmp_path, expires_at="2030-01-01T13:00:00")
    offset = load(tmp_path, expires_at="2030-01-01T15:30:00+02:00")
    assert naive.expires_at == NOW + timedelta(hours=1)  # no offset: UTC
    assert offset.expires_at == NOW + timedelta(hours=1, minutes=30)
    assert offset.expires_at is not None and offset.expires_at.tzinfo == timezone.utc


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("pr-42", "pr-42"),
        ("PR 42", "pr-42"),
        ("feature/Login__Page", "feature-login-page"),
        ("--x--", "x"),
        ("Ünïcode ✓ label", "n-code-label"),
        ("a" * 40, "a" * 30),
        ("a" * 29 + "-b", "a" * 29),  # the cut leaves a trailing '-': removed
        ("release 1.2.3", "release-1-2-3"),
    ],
)
def test_sanitize_label(text: str, label: str) -> None:
    assert sanitize_label(text) == label
    assert sanitize_label(label) == label  # idempotent


@pytest.mark.parametrize("text", ["", "---", "!!!", "✓✓"])
def test_sanitize_label_to_nothing_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="preview-label"):
        sanitize_label(text)


CLEAR_TEXT = [
    "http://10.0.0.5:8080",
    "http://api.example.com/prefix",
    "http://sgp.invalid:9",
    "http://localhost.evil.example",
    "http://127.0.0.1.nip.io",
    "http://[::2]:80",
    "http://[fe80::1]",
    "http://0.0.0.0:8080",
]
LOOPBACK_OR_TLS = [
    "http://127.0.0.1:8080",
    "http://127.8.9.10",
    "http://[::1]:8089/p",
    "http://localhost:9",
    "http://LOCALHOST.",
    "http://[::ffff:127.0.0.1]:1",
    "https://api.example.com",
    "https://10.0.0.5",
]


@pytest.mark.parametrize("url", CLEAR_TEXT)
def test_an_http_base_url_off_this_machine_is_refused(tmp_path: Path, url: str) -> None:
    assert sends_key_in_clear(url)
    with pytest.raises(InputError, match="allow-insecure-http: true") as caught:
        load(tmp_path, base_url=url)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("url", LOOPBACK_OR_TLS)
def test_loopback_and_https_base_urls_are_fine(tmp_path: Path, url: str) -> None:
    assert not sends_key_in_clear(url)
    assert load(tmp_path, base_url=url).base_url == url.rstrip("/")


def test_allow_insecure_http_opts_in(tmp_path: Path) -> None:
    s = load(tmp_path, base_url="http://10.0.0.5:8080", allow_insecure_http="true")
    assert (s.base_url, s.allow_insecure_http) == ("http://10.0.0.5:8080", True)
    flags = argparse.ArgumentParser()
    add_run_arguments(flags)
    args = flags.parse_args(["--base-url", "http://10.0.0.5:1", "--allow-insecure-http"])
    assert load_settings(env_for(), overrides_from_args(args), cwd=tmp_path).allow_insecure_http
    with pytest.raises(InputError, match="allow-insecure-http"):
        load(tmp_path, allow_insecure_http="perhaps")


def test_no_key_no_refusal(tmp_path: Path) -> None:
    """detect and a dry run without a key send no key, so the URL is not their concern."""
    detect = load_settings({"INPUT_COMMAND": "detect", "INPUT_BASE_URL": "http://10.0.0.5"}, cwd=tmp_path)
    dry = load_settings({"INPUT_DRY_RUN": "true", "INPUT_BASE_URL": "http://10.0.0.5"}, cwd=tmp_path)
    assert detect.base_url == dry.base_url == "http://10.0.0.5"


def test_an_allowed_http_base_url_warns_once_in_a_whole_run(tmp_path: Path, emulator: EmulatorHandle) -> None:
    ws = Workspace(tmp_path, emulator)
    env = ws.environ(
        "pull_request",
        pull_request_event(ws.head_sha),
        command="build",
        dry_run="true",
        base_url="http://sgp.invalid:9",
        allow_insecure_http="true",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = run_action_process(ws, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("::warning")]
    assert len(warnings) == 1 and "http://sgp.invalid:9" in warnings[0] and "unencrypted" in warnings[0]


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"INPUT_ACCOUNT_ID": "a"}, ["--api-key", "SGP_API_KEY"]),
        ({"INPUT_API_KEY": KEY}, ["--account-id", "SGP_ACCOUNT_ID"]),
        ({"INPUT_ACCOUNT_ID": "a", "GITHUB_ACTIONS": "true"}, ["api-key: ${{ secrets.SGP_API_KEY }}"]),
    ],
)
def test_a_missing_key_names_the_flag_and_variable_outside_a_workflow(
    tmp_path: Path, environ: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(InputError) as info:
        load_settings(environ, cwd=tmp_path)
    assert all(word in str(info.value) for word in words), str(info.value)
    if "GITHUB_ACTIONS" in environ:
        assert "--api-key" not in str(info.value)
