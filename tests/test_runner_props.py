"""Property tests: no server text becomes a workflow command, on GitHub's runner or on act."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgp_action.ci.runner import Runner
from tests.runner_rules import TRICKY, act_command, act_processed_commands, github_command, github_processed_commands

# Thousands of generated cases, seconds of CPU per test: the slow tier.
pytestmark = pytest.mark.e2e


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
