"""Independent models of how the runners read what the action prints and writes (for tests only).

* `parse_github_file` / `parse_act_file`: docs/runner.md#how-github-reads-the-file (actions/runner
`EnvFileKeyValuePairs`) and docs/runner.md#how-act-reads-the-file (nektos/act
  `pkg/container/parse_env_file.go`, bufio.Scanner with its 64 KiB line limit).
* `github_command` / `act_command`: actions/runner `ActionCommand.TryParseV2` then `TryParse`, and nektos/act
  `pkg/runner/command.go`'s two regular expressions.
* `github_processed_commands`: the runner's per-step command manager, including `stop-commands` and the resume
  token, over a whole log (lines split the way .NET `StreamReader.ReadLine` splits them).
* `NAMES` / `TRICKY`: Hypothesis strategies for output names and for text that stresses those readers.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

_ACT_GA = re.compile(r"^::([^ ]+)( (.+))?::([^\r\n]*)[\r\n]+$")
_ACT_ADO = re.compile(r"^##\[([^ ]+)( (.+))?\]([^\r\n]*)[\r\n]+$")
_ACT_MAX_LINE = 64 * 1024


class FileCommandError(Exception):
    """The runner would fail the step while reading the file."""


def parse_github_file(content: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file as the GitHub runner does on Linux (LF only, CR kept, BOM dropped)."""
    if content.startswith("\ufeff"):
        content = content[1:]
    lines = content.split("\n")
    last = len(lines) - 1  # lines[last] is what follows the final LF ('' when the file ends with one)
    result: dict[str, str] = {}
    i = 0
    while i <= last:
        line = lines[i]
        if i == last and line == "":
            break
        if line == "":
            i += 1
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            result[line[:eq]] = line[eq + 1 :]
            i += 1
            continue
        if heredoc < 0:
            raise FileCommandError(f"Invalid format '{line}'")
        name, delimiter = line[:heredoc], line[heredoc + 2 :]
        if not name or not delimiter:
            raise FileCommandError(f"Invalid format '{line}'. Name must not be empty and delimiter must not be empty")
        i += 1
        value: list[str] = []
        while True:
            if i > last or (i == last and lines[i] == ""):
                raise FileCommandError(f"Invalid value. Matching delimiter not found '{delimiter}'")
            if lines[i] == delimiter:
                i += 1
                break
            if i == last:
                raise FileCommandError("Invalid value. EOF marker missing new line.")
            value.append(lines[i])
            i += 1
        result[name] = "\n".join(value)
    return result


def parse_act_file(content: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file as nektos/act (and Gitea's act_runner, its fork) does."""
    raw = content.split("\n")
    if raw and raw[-1] == "":
        raw.pop()  # bufio.ScanLines: no empty token after the final LF
    lines = [line[:-1] if line.endswith("\r") else line for line in raw]
    for line in lines:
        if len(line.encode("utf-8")) >= _ACT_MAX_LINE:
            raise FileCommandError("bufio.Scanner: token too long")
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    result: dict[str, str] = {}
    it = iter(lines)
    for line in it:
        eq, heredoc = line.find("="), line.find("<<")
        if eq != -1 and (heredoc == -1 or eq < heredoc):
            result[line[:eq]] = line[eq + 1 :]
        elif heredoc != -1:
            delimiter = line[heredoc + 2 :]
            value = ""
            for content_line in it:
                if content_line == delimiter:
                    break
                if value != "":
                    value += "\n"
                value += content_line
            else:
                raise FileCommandError(f"invalid format delimiter '{delimiter}' not found before end of file")
            result[line[:heredoc]] = value
        else:
            raise FileCommandError(f"invalid format '{line}', expected a line with '=' or '<<'")
    return result


def dotnet_lines(text: str) -> list[str]:
    """Split like .NET `StreamReader.ReadLine`: at CRLF, lone CR and LF."""
    return re.split(r"\r\n|\r|\n", text.removesuffix("\n"))


def github_command(line: str) -> str | None:
    """The command name the GitHub runner would parse from one line (any name counts), else None."""
    message = line.lstrip()  # .NET TrimStart: Unicode white space (Python's set is a superset)
    if message.startswith("::"):
        end = message.find("::", 2)
        if end >= 0:
            name = message[2:end].split(" ", 1)[0]
            if name:
                return name.lower()
    start = line.find("##[")
    if start >= 0:
        close = line.find("]", start)
        if close >= 0:
            name = line[start + 3 : close].split(" ", 1)[0]
            if name:
                return name.lower()
    return None


def act_command(line: str) -> str | None:
    """The command name act would parse from one line, else None."""
    for pattern in (_ACT_GA, _ACT_ADO):
        match = pattern.match(line + "\n")
        if match:
            return match.group(1)
    return None


def github_processed_commands(log: str) -> list[str]:
    """Every command the GitHub runner would act on in `log`, honouring stop-commands and its resume token."""
    processed: list[str] = []
    token: str | None = None
    for line in dotnet_lines(log):
        name = github_command(line)
        if name is None:
            continue
        if token is not None:
            if name == token.lower():
                token = None
                processed.append("<resume>")
            continue
        if name == "stop-commands":
            token = line.lstrip()[len("::stop-commands::") :]
            processed.append(name)
            continue
        processed.append(name)
    return processed


def act_processed_commands(log: str) -> list[str]:
    """The same for act's command handler (`resumeCommand`)."""
    processed: list[str] = []
    resume = ""
    for line in log.split("\n"):
        match = _ACT_GA.match(line + "\n") or _ACT_ADO.match(line + "\n")
        if not match:
            continue
        name, arg = match.group(1), match.group(4)
        if resume and name != resume:
            continue
        if name == "stop-commands":
            resume = arg
        elif resume and name == resume:
            resume = ""
            name = "<resume>"
        processed.append(name)
    return processed


# --- Hypothesis strategies for the property tests -----------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,20}", fullmatch=True)
# Text biased towards the characters that matter to the two parsers.
PIECES = st.sampled_from(
    ["\n", "\r", "=", "<<", "::", "##[", "]", " ", "\t", "\ufeff", "\u2028", "\u200b", "%", "ghadelimiter_"]
)
TRICKY = st.lists(st.one_of(PIECES, st.text(st.characters(codec="utf-8"), max_size=5)), max_size=15).map("".join)
