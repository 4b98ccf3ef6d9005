"""The runner's file commands: step outputs and the job summary, appended to the files the runner names.

Two readers parse the output file (docs/runner.md#step-outputs): GitHub's runner and act's (also Gitea's and
Forgejo's runners), which differ on line endings, blank lines and line length; every entry is written so both read
back the same value. The summary file is cut before the runner's 1 MiB limit, which would otherwise drop it whole.
`sgp_action.ci.runner.Runner` decides when to write and under its lock; this module only knows the file formats.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping

from sgp_action.errors import ActionError

SUMMARY_LIMIT = 1024 * 1024  # the runner refuses a step summary over 1 MiB (FileCommandManager.cs)
_SUMMARY_MARGIN = 1024
_TRUNCATION_NOTE = "\n\n> **Note:** the rest of this summary was cut: GitHub limits a step summary to 1 MiB.\n"
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ACT_LINE_LIMIT = 64 * 1024  # bufio.Scanner's default token size in nektos/act's parseEnvFile


def file_path(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of the variables `names` that names a file (GitHub's first, then the `GITEA_*` alias); else None."""
    for name in names:
        path = environ.get(name, "")
        if path:
            return path
    return None


def canonical_output_value(value: str) -> str:
    """The value both runners read back from our heredoc entry (docs/runner.md#how-github-reads-the-file,
    docs/runner.md#how-act-reads-the-file).

    act and Gitea's act_runner read the file with `bufio.Scanner`, which drops a `\\r` before each LF, and they drop
    blank lines before a heredoc's first non-empty line; GitHub keeps both. To give the same value everywhere, line
    breaks become LF and leading line breaks are removed before writing.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.lstrip("\n")


def checked_output(name: str, value: str) -> str:
    """`value` as it will be written for output `name` (canonical); ActionError when either cannot be written.

    The name must be a valid output name; the value must be valid Unicode (a lone surrogate, which a JSON answer's
    `\\ud800` escape can produce, cannot be encoded).
    """
    if not _OUTPUT_NAME.fullmatch(name):  # `match` with `$` would accept a name ending in a line break
        raise ActionError(f"internal error: {name!r} is not a valid output name")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ActionError(
            f"output {name}: the value holds a lone surrogate at character {exc.start} (not valid Unicode); "
            "the server sent a malformed string"
        ) from None
    return canonical_output_value(value)


def write_output(path: str, name: str, value: str) -> None:
    """Append one output in the heredoc form with a fresh random delimiter (docs/runner.md#step-outputs).

    ActionError when the name or value holds the delimiter: the entry would end early and the rest be read as more
    outputs.
    """
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    if delimiter in name or delimiter in value:
        raise ActionError(f"output {name!r}: the value contains the heredoc delimiter; refusing to write it")
    append_text(path, f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def too_long_for_act(value: str) -> bool:
    """True when a line of `value` is too long for act's and the Gitea/Forgejo runners' file reader."""
    return any(len(line.encode("utf-8")) >= _ACT_LINE_LIMIT for line in value.split("\n"))


def without_surrogates(text: str) -> str:
    """`text` with each lone surrogate (from a server's JSON) as U+FFFD, so it can be written as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def fit_summary(path: str, markdown: str) -> str | None:
    """`markdown` as it fits in the summary file at `path` under the runner's limit: cut with a note when over, None
    when the file is already full (a partial note would break the Markdown)."""
    try:
        used = os.path.getsize(path)
    except OSError:
        used = 0
    room = SUMMARY_LIMIT - _SUMMARY_MARGIN - used
    data = markdown.encode("utf-8")
    if len(data) <= room:
        return markdown
    note = _TRUNCATION_NOTE.encode("utf-8")
    if room <= len(note):
        return None
    return data[: room - len(note)].decode("utf-8", "ignore") + _TRUNCATION_NOTE


def append_text(path: str, text: str) -> None:
    """Append, starting on a new line if someone left the file without a final LF (no blank lines,
    docs/runner.md#how-act-reads-the-file)."""
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(text.encode("utf-8"))
