"""Property tests: whatever the values, the output file reads back the same on GitHub's runner and on act, and no
server text becomes a workflow command."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgp_action.ci.runfiles import canonical_output_value
from sgp_action.ci.runner import Runner
from tests.runner_rules import (
    act_command,
    act_processed_commands,
    github_command,
    github_processed_commands,
    parse_act_file,
    parse_github_file,
)

# Thousands of generated cases, seconds of CPU per test: the slow tier.
pytestmark = pytest.mark.e2e

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,20}", fullmatch=True)
# Text biased towards the characters that matter to the two parsers.
PIECES = st.sampled_from(
    ["\n", "\r", "=", "<<", "::", "##[", "]", " ", "\t", "\ufeff", "\u2028", "\u200b", "%", "ghadelimiter_"]
)
TRICKY = st.lists(st.one_of(PIECES, st.text(st.characters(codec="utf-8"), max_size=5)), max_size=15).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(NAMES, TRICKY), min_size=1, max_size=6))
def test_outputs_parse_back_the_same_under_both_runners(entries: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        runner = Runner({"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)}, io.StringIO())
        expected: dict[str, str] = {}
        for name, value in entries:
            runner.set_output(name, value)
            expected[name] = canonical_output_value(value)
        content = out.read_text(encoding="utf-8")
    assert parse_github_file(content) == expected
    assert parse_act_file(content) == expected
    for _name, value in entries:
        if "\r" not in value and not value.startswith("\n"):
            assert canonical_output_value(value) == value  # ordinary values are never changed


@settings(max_examples=300, deadline=None)
@given(st.lists(TRICKY, min_size=1, max_size=5))
def test_no_server_text_acts_as_a_command(texts: list[str]) -> None:
    stream = io.StringIO()
    runner = Runner({"GITHUB_ACTIONS": "true"}, stream)
    for text in texts:
        runner.server_line(text)
    runner.flush()
    log = stream.getvalue()
    assert github_processed_commands(log) == ["stop-commands", "<resume>"]
    assert act_processed_commands(log) == ["stop-commands", "<resume>"]
    lines = log.splitlines()
    for line in lines[1:-1]:  # guard 1 alone is enough as well
        assert github_command(line) is None, line
        assert act_command(line) is None, line
