"""Hostile server text and the check that markdown made from it is inert (no live markup outside code spans)."""

from __future__ import annotations

import re

#: Server text that would be live markdown, HTML, a mention or a table break if it were not made inert.
HOSTILE = [
    "[Click to re-authorize](https://evil.example/phish) @octocat ![px](https://evil.example/px.png)",
    "<img src=x onerror=alert(1)>",
    "<details><summary>open</summary>",
    "a | b || c",
    "`code` and ``two`` and ```three```",
    "`",
    "ends with a backtick`",
    "line one\n# heading\r\n> quote\n- item",
    "# not a heading",
    "**bold** _em_ ~~gone~~ <https://evil.example> www.evil.example https://evil.example",
    "back\\|slash pipe \\`tick",
    "\u2028sep\x00nul\x1b[31m",
]


def outside_code_spans(line: str) -> str:
    """The parts of one markdown line that are not inside a code span (CommonMark 6.1, backslash escapes honoured)."""
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            out.append(line[i : i + 2])
            i += 2
            continue
        if line[i] != "`":
            out.append(line[i])
            i += 1
            continue
        run = len(line[i:]) - len(line[i:].lstrip("`"))
        j = i + run
        while j < len(line):
            if line[j] == "`":
                close = len(line[j:]) - len(line[j:].lstrip("`"))
                if close == run:
                    break
                j += close
            else:
                j += 1
        if j >= len(line):  # no closing run: the backticks are literal text
            out.append(line[i : i + run])
            i += run
            continue
        out.append("<code>")
        i = j + run
    return "".join(out)


def code_span_text(cell: str) -> str:
    """What a cell made by md_code shows: the span's content (GFM: `\\|` in a table cell is a literal pipe)."""
    run = len(cell) - len(cell.lstrip("`"))
    assert run and cell.endswith("`" * run) and outside_code_spans(cell) == "<code>", cell
    inner = cell[run:-run]
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip():
        inner = inner[1:-1]
    return inner.replace("\\|", "|")


def assert_inert(markdown: str, columns: int = 2) -> None:
    """No line of `markdown` has live markup outside code spans, and every table row has `columns` cells."""
    for line in markdown.splitlines():
        rest = outside_code_spans(line)
        for live in ("evil", "@octocat", "<img", "<details><summary>open", "![", "](", "**", "~~", "# heading"):
            assert live not in rest, (live, line)
        if line.startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", line)) == columns + 1, line
