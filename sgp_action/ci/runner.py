"""All talk with the Actions runner: outputs, job summary, masks, groups, annotations and log lines.

This is the only module (besides the command modules) that prints. It works the same on GitHub, Gitea and Forgejo
runners and in nektos/act; outside a runner (`GITHUB_ACTIONS` is not `true`) it prints plain text instead of
workflow commands, so the CLI stays readable in any other CI.

Server text safety (docs/runner.md#server-text-is-inert). Two runner rules decide what is a workflow command:

* GitHub (actions/runner `ActionCommand.TryParseV2` / `TryParse`, tried in that order): a line whose text after
  `TrimStart()` (any Unicode white space) starts with `::`, **or** a line that contains `##[` anywhere (the legacy
  form is found with `IndexOf`, not only at the start). Command names compare case-insensitively, and the
  runner's `StreamReader.ReadLine` also ends a line at a lone `\\r`.
* act / Gitea act_runner (nektos/act `pkg/runner/command.go`): `^::name( props)?::data$` or `^##[name( props)?]data$`
  at the very start of a line.

So every line of server text is printed with two independent guards:

1. it is split at every line break Python knows (a superset of both runners' rules), and a line whose text after
   leading white space / invisible format characters starts with `::`, or that contains `##[`, gets a ZERO WIDTH SPACE
   (U+200B) in front of it / inside `##[`. Both parsers need those exact characters, U+200B is neither white space
   for .NET's `TrimStart` nor for Go, and the log still reads the same;
2. runs of server lines are wrapped in `::stop-commands::<128-bit random token>` ... `::<token>::` (the runner's own
   mechanism; act implements it too), so even a form neither rule above anticipates is not processed. The region is
   opened lazily and closed before any line of our own, so our groups, masks and annotations always work, and it is
   per step (the runner creates a command manager per step), so a crash cannot leak a stopped state to later steps.

Our own lines go through guard 1 as well: they may embed file names or manifest values from the repository.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import sys
import threading
import traceback
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from typing import TextIO

from sgp_action.errors import ActionError

SUMMARY_LIMIT = 1024 * 1024  # the runner refuses a step summary over 1 MiB (FileCommandManager.cs)
_SUMMARY_MARGIN = 1024
_TRUNCATION_NOTE = "\n\n> **Note:** the rest of this summary was cut: GitHub limits a step summary to 1 MiB.\n"
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ZWSP = "\u200b"
_SURROGATE = re.compile("[\ud800-\udfff]")
_ACT_LINE_LIMIT = 64 * 1024  # bufio.Scanner's default token size in nektos/act's parseEnvFile
_MIN_REDACT = 4  # shorter "secrets" are still masked by the runner, but not rewritten in our own text
# Inputs that carry secrets, in every spelling they can reach us (docs/runner.md#masks: masked before anything else).
SECRET_ENV_NAMES = (
    "INPUT_API_KEY",
    "INPUT_API-KEY",
    "INPUT_GITHUB_TOKEN",
    "INPUT_GITHUB-TOKEN",
    "SGP_API_KEY",
)


def escape_data(text: str) -> str:
    """Escape a workflow-command message the way actions/toolkit does (`%`, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (toolkit `escapeProperty`: also `:` and `,`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _is_leading_noise(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cf"


def neutralize(line: str) -> str:
    """Return `line` (one line, no line breaks) changed so that no runner can read it as a workflow command."""
    if "##[" in line:
        line = line.replace("##[", "#" + _ZWSP + "#[")
    index = 0
    while index < len(line) and _is_leading_noise(line[index]):
        index += 1
    if line.startswith("::", index):
        line = _ZWSP + line
    return line


def split_lines(text: str) -> list[str]:
    """Split at every line break either runner (or a terminal) might honour; an empty text is one empty line."""
    return text.splitlines() or [""]


def canonical_output_value(value: str) -> str:
    """The value both runners read back from our heredoc entry (docs/runner.md#how-github-reads-the-file,
    docs/runner.md#how-act-reads-the-file).

    act and Gitea's act_runner read the file with `bufio.Scanner`, which drops a `\\r` before each LF, and they drop
    blank lines before a heredoc's first non-empty line; GitHub keeps both. To give the same value everywhere, line
    breaks become LF and leading line breaks are removed before writing.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.lstrip("\n")


class Runner:
    """The runner as the action sees it: one instance per process (see `default_runner`).

    Args:
        environ: the environment to read (`os.environ` by default).
        stream: where log lines go (`sys.stdout` by default); every write is flushed at once.
        debug: verbose mode; `None` reads `RUNNER_DEBUG=1` and the `debug` input (`INPUT_DEBUG`).
        mask_inputs: register the secret inputs found in `environ` at once (docs/runner.md#masks).
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        stream: TextIO | None = None,
        *,
        debug: bool | None = None,
        mask_inputs: bool = True,
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._stream = stream
        self.in_actions = self.environ.get("GITHUB_ACTIONS", "").lower() == "true"
        if debug is None:  # the `debug` input can also be switched on later: `runner.debug_enabled = True`
            debug_input = self.environ.get("INPUT_DEBUG", "").strip().lower() in {"true", "yes", "1", "on"}
            debug = self.environ.get("RUNNER_DEBUG") == "1" or debug_input
        self.debug_enabled = debug
        if self.environ.get("FORGEJO_ACTIONS", "").lower() == "true":
            self.forge = "forgejo"
        elif self.environ.get("GITEA_ACTIONS", "").lower() == "true":
            self.forge = "gitea"
        else:
            self.forge = "github"
        self._lock = threading.RLock()
        self._secrets: list[str] = []
        self._stop_token: str | None = None
        self._in_group = False
        self.outputs_written: dict[str, str] = {}
        if mask_inputs:
            for name in SECRET_ENV_NAMES:
                self.mask(self.environ.get(name, ""))

    @property
    def stream(self) -> TextIO:
        """The stream given, else whatever `sys.stdout` is now (so a long-lived runner follows redirections)."""
        return sys.stdout if self._stream is None else self._stream

    # --- low-level writing --------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for value in self._secrets:
            if len(value) >= _MIN_REDACT:
                text = text.replace(value, "***")
        return text

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def _resume_commands(self) -> None:
        if self._stop_token is not None:
            self._write(f"::{self._stop_token}::")
            self._stop_token = None

    def _command(self, name: str, message: str = "", properties: Mapping[str, str | None] | None = None) -> None:
        """Print one workflow command (commands are re-enabled first)."""
        pairs = (properties or {}).items()
        props = ",".join(f"{key}={escape_property(self._redact(val))}" for key, val in pairs if val)
        head = f"{name} {props}" if props else name
        with self._lock:
            self._resume_commands()
            self._write(f"::{head}::{escape_data(self._redact(message))}")

    def flush(self) -> None:
        """Re-enable command processing if server text left it stopped, and flush the stream."""
        with self._lock:
            self._resume_commands()
            self.stream.flush()

    close = flush

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by `***` (what the runner would show)."""
        return self._redact(text)

    # --- masks ----------------------------------------------------------------------------------------------------

    def mask(self, value: str) -> None:
        """Register a secret with `::add-mask::`, one command per line of a multi-line value (empty lines skipped)."""
        for line in split_lines(value):
            if not line.strip() or line in self._secrets:
                continue
            with self._lock:
                self._secrets.append(line)
                self._secrets.sort(key=len, reverse=True)  # longest first: a secret inside another is still hidden
                if self.in_actions:
                    self._resume_commands()
                    self._write(f"::add-mask::{escape_data(line)}")

    # --- log lines ------------------------------------------------------------------------------------------------

    def info(self, text: str) -> None:
        """Print our own text (each line made safe, secrets redacted)."""
        with self._lock:
            self._resume_commands()
            for line in split_lines(self._redact(text)):
                self._write(neutralize(line))

    def server_line(self, text: str) -> None:
        """Print text that came from the server (build/deploy logs, events, error bodies): never a command."""
        with self._lock:
            if self.in_actions and self._stop_token is None:
                self._stop_token = secrets.token_hex(16)
                self._write(f"::stop-commands::{self._stop_token}")
            token = self._stop_token
            for line in split_lines(self._redact(text)):
                if token is not None and token in line.lower():  # cannot happen by chance: 128 random bits
                    line = re.sub(re.escape(token), "<token>", line, flags=re.IGNORECASE)
                self._write(neutralize(line))

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A collapsible log section (`::group::`); nested groups become plain heading lines."""
        with self._lock:
            nested = self._in_group
            if nested or not self.in_actions:
                self.info(f"== {title}")
            else:
                self._command("group", title)
                self._in_group = True
        try:
            yield
        finally:
            if not nested and self.in_actions:
                with self._lock:
                    self._command("endgroup")
                    self._in_group = False

    def debug(self, text: str) -> None:
        """A verbose line: plain when `debug` is on (the runner hides `::debug::` unless step debug is set)."""
        if self.debug_enabled:
            self.info(f"debug: {text}")
        elif self.in_actions:
            self._command("debug", text)

    def _annotation(self, level: str, text: str, title: str | None, file: str | None, line: int | None = None) -> None:
        if not self.in_actions:
            prefix = f"{level}: {title}: " if title else f"{level}: "
            self.info(prefix + text)
            return
        # act (and Gitea's act_runner) match `^::([^ ]+)( (.+))?::` greedily, so a `::` inside the message (server
        # text in a failure's log tail) would swallow the command name or the properties.
        text = self._redact(text).replace("::", ":" + _ZWSP + ":")
        self._command(level, text, {"title": title, "file": file, "line": str(line) if line else None})

    def notice(self, text: str, *, title: str | None = None, file: str | None = None) -> None:
        """A notice annotation."""
        self._annotation("notice", text, title, file)

    def warning(self, text: str, *, title: str | None = None, file: str | None = None, line: int | None = None) -> None:
        """A warning annotation (optionally pointing at a file)."""
        self._annotation("warning", text, title, file, line)

    def error(self, text: str, *, title: str | None = None, file: str | None = None, line: int | None = None) -> None:
        """An error annotation; multi-line text stays one annotation (line breaks are escaped)."""
        self._annotation("error", text, title, file, line)

    # --- file commands --------------------------------------------------------------------------------------------

    def _file(self, *names: str) -> str | None:
        for name in names:
            path = self.environ.get(name, "")
            if path:
                return path
        return None

    def set_output(self, name: str, value: str) -> None:
        """Write one step output (docs/runner.md#step-outputs): heredoc form, a fresh random delimiter, LF endings.

        `$GITHUB_OUTPUT`, else `$GITEA_OUTPUT`; with neither (plain CLI use) `name=value` is printed instead.
        Raises ActionError when the name is not a valid output name, the value is not valid Unicode (a lone
        surrogate, which a JSON answer's `\\ud800` escape can produce) or the name or value holds the delimiter.
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
        value = canonical_output_value(value)
        path = self._file("GITHUB_OUTPUT", "GITEA_OUTPUT")
        with self._lock:
            self.outputs_written[name] = value
            if path is None:
                if "\n" in value:
                    self.info(f"{name}<<EOF\n{value}\nEOF")
                else:
                    self.info(f"{name}={value}")
                return
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            if delimiter in name or delimiter in value:
                raise ActionError(f"output {name!r}: the value contains the heredoc delimiter; refusing to write it")
            entry = f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
            _append(path, entry)
        if any(len(line.encode("utf-8")) >= _ACT_LINE_LIMIT for line in value.split("\n")):
            self.warning(
                f"output {name} has a line over 64 KiB: act and the Gitea/Forgejo runners cannot read it "
                "(their file reader stops at that size), so later steps there will not see this output",
                title="Output too long for some runners",
            )

    def append_summary(self, markdown: str) -> None:
        """Append Markdown to the job summary, kept under the runner's 1 MiB limit (cut with a note when over).

        `$GITHUB_STEP_SUMMARY`, else `$GITEA_STEP_SUMMARY`; outside a runner the Markdown is printed.
        """
        # A lone surrogate (from a server's JSON) cannot be written as UTF-8: shown as U+FFFD instead of losing it all.
        markdown = self._redact(_SURROGATE.sub("\ufffd", markdown))
        path = self._file("GITHUB_STEP_SUMMARY", "GITEA_STEP_SUMMARY")
        if path is None:
            if not self.in_actions:
                self.info(markdown)
            return
        with self._lock:
            try:
                used = os.path.getsize(path)
            except OSError:
                used = 0
            room = SUMMARY_LIMIT - _SUMMARY_MARGIN - used
            data = markdown.encode("utf-8")
            if len(data) > room:
                note = _TRUNCATION_NOTE.encode("utf-8")
                keep = max(room - len(note), 0)
                if room <= len(note):
                    return  # already full: a partial note would break the Markdown
                markdown = data[:keep].decode("utf-8", "ignore") + _TRUNCATION_NOTE
            _append(path, markdown)


def _append(path: str, text: str) -> None:
    """Append, starting on a new line if someone left the file without a final LF (no blank lines,
    docs/runner.md#how-act-reads-the-file)."""
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(text.encode("utf-8"))


class RunnerLogHandler(logging.Handler):
    """Routes library log records through a Runner, so they are made safe and redacted like every other line."""

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.runner = runner

    def emit(self, record: logging.LogRecord) -> None:
        """Print the record: DEBUG through `Runner.debug`, everything else as a plain line."""
        try:
            text = self.format(record)
            if record.levelno <= logging.DEBUG:
                self.runner.debug(text)
            else:
                self.runner.info(text)
        except Exception:  # logging must never break the run
            self.handleError(record)


_DEFAULT: Runner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> Runner:
    """The process-wide Runner on `os.environ` and stdout (created on first use, which masks the secret inputs)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Runner()
        return _DEFAULT


def reset_default_runner() -> None:
    """Forget the process-wide Runner (tests that change the environment between runs)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        _DEFAULT = None


def report_error(
    exc: ActionError, *, debug: bool = False, runner: Runner | None = None, write_result: bool = False
) -> None:
    """Show an error as one readable line, an `::error::` annotation inside a runner (traceback only with debug).

    With `write_result`, also set the `result` output to the error's result when nothing set it yet, so a workflow
    can branch on it even when the run stopped before its first phase.
    """
    runner = runner or default_runner()
    message = str(exc) or type(exc).__name__
    if debug:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        runner.info(text.rstrip("\n"))
    if runner.in_actions:
        runner.error(message, title=exc.title)
    else:
        runner.flush()
        print(f"Error: {runner._redact(message)}", file=sys.stderr, flush=True)
    if write_result and "result" not in runner.outputs_written:
        try:
            runner.set_output("result", exc.result)
        except (ActionError, OSError) as write_error:  # the error report itself must not fail
            runner.info(f"could not write the result output: {write_error}")
