"""sgp_action.ci.runfiles: the output and summary file formats, read back by models of the GitHub runner and of act
(tests/runner_rules.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgp_action.ci.runfiles import SUMMARY_LIMIT, canonical_output_value
from tests.runner_rules import parse_act_file, parse_github_file
from tests.support import runner_with_files as make


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        # act drops blank lines before the first content line (docs/runner.md#how-act-reads-the-file)
        ("\nleading", "leading"),
        ("\n\n\nx\ny", "x\ny"),
        ("crlf\r\nline", "crlf\nline"),  # act's bufio.Scanner drops the CR before LF; GitHub keeps it
        ("lone\rcr", "lone\ncr"),
        ("end\r", "end\n"),
        ("\r\n", ""),
    ],
)
def test_values_both_runners_would_read_differently_are_canonicalised(
    tmp_path: Path, value: str, canonical: str
) -> None:
    runner, _ = make(tmp_path)
    runner.set_output("v", value)
    content = (tmp_path / "out").read_text(encoding="utf-8")
    assert canonical_output_value(value) == canonical
    assert parse_github_file(content) == parse_act_file(content) == {"v": canonical}
    assert runner.outputs_written == {"v": canonical}


def test_summary_is_cut_under_one_mebibyte_with_a_note(tmp_path: Path) -> None:
    runner, _ = make(tmp_path)
    runner.append_summary("head\n")
    runner.append_summary("é" * SUMMARY_LIMIT)  # 2 MiB of UTF-8
    data = (tmp_path / "sum").read_bytes()
    assert len(data) < SUMMARY_LIMIT
    text = data.decode("utf-8")  # never cut inside a character
    assert text.startswith("head\né") and "summary was cut" in text
    runner.append_summary("more")  # already full: nothing more, still valid
    assert (tmp_path / "sum").read_bytes() == data
