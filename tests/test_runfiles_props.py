"""Property tests: whatever the values, the output file reads back the same on GitHub's runner and on act."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgp_action.ci.runfiles import canonical_output_value
from sgp_action.ci.runner import Runner
from tests.runner_rules import NAMES, TRICKY, parse_act_file, parse_github_file

# Thousands of generated cases, seconds of CPU per test: the slow tier.
pytestmark = pytest.mark.e2e


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
