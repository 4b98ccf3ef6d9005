"""All talk with the Actions runner: outputs, job summary, masks, groups, annotations and log lines.

The formats of the output and summary files are `sgp_action.ci.runfiles`'s; when and what to write is decided here.

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
from collections.abc import Iterator, Mapping
from typing import TextIO

from sgp_action.ci.runfiles import (
    append_text,
    checked_output,
    file_path,
    fit_summary,
    too_long_for_act,
    without_surrogates,
    write_output,
)
from sgp_action.errors import ActionError

_ZWSP = "\u200b"
_MIN_REDACT = 4  # shorter "secrets" are still masked by the runner, but not rewritten in our own text
#: Inputs that carry secrets, and the official SDK's variable for the key (`sgp_action.run.settings` reads both from
#: here): the Runner masks them as it is created, before anything else is printed (docs/runner.md#masks).
SECRET_INPUTS = ("api-key", "github-token")
SDK_KEY_VARIABLE = "SGP_API_KEY"


def input_env_names(name: str) -> tuple[str, str]:
    """The variables a runner passes input `name` in: `api-key` -> `INPUT_API_KEY` and `INPUT_API-KEY`."""
    upper = name.upper().replace(" ", "_")
    return "INPUT_" + upper.replace("-", "_"), "INPUT_" + upper


SECRET_ENV_NAMES = (*(env for name in SECRET_INPUTS for env in input_env_names(name)), SDK_KEY_VARIABLE)


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


class Runner:
    """The runner as the action sees it: one instance per process (see `default_runner`).

    Args:
        environ: the environment to read (`os.environ` by default).
        stream: where log lines go (`sys.stdout` by default); every write is flushed at once.
        debug: verbose mode (`sgp_action.run.settings.debug_requested` decides it for the CLI).
        mask_inputs: register the secret inputs found in `environ` at once (docs/runner.md#masks).
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        stream: TextIO | None = None,
        *,
        debug: bool = False,
        mask_inputs: bool = True,
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._stream = stream
        self.in_actions = self.environ.get("GITHUB_ACTIONS", "").lower() == "true"
        self.debug_enabled = debug
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

    def set_output(self, name: str, value: str) -> None:
        """Write one step output (docs/runner.md#step-outputs): heredoc form, a fresh random delimiter, LF endings.

        `$GITHUB_OUTPUT`, else `$GITEA_OUTPUT`; with neither (plain CLI use) `name=value` is printed instead.
        Raises ActionError when the name is not a valid output name, the value is not valid Unicode (a lone
        surrogate, which a JSON answer's `\\ud800` escape can produce) or the name or value holds the delimiter.
        """
        value = checked_output(name, value)
        path = file_path(self.environ, "GITHUB_OUTPUT", "GITEA_OUTPUT")
        with self._lock:
            self.outputs_written[name] = value
            if path is None:
                if "\n" in value:
                    self.info(f"{name}<<EOF\n{value}\nEOF")
                else:
                    self.info(f"{name}={value}")
                return
            write_output(path, name, value)
        if too_long_for_act(value):
            self.warning(
                f"output {name} has a line over 64 KiB: act and the Gitea/Forgejo runners cannot read it "
                "(their file reader stops at that size), so later steps there will not see this output",
                title="Output too long for some runners",
            )

    def append_summary(self, markdown: str) -> None:
        """Append Markdown to the job summary, kept under the runner's 1 MiB limit (cut with a note when over).

        `$GITHUB_STEP_SUMMARY`, else `$GITEA_STEP_SUMMARY`; outside a runner the Markdown is printed.
        """
        # A lone surrogate cannot be written as UTF-8: shown as U+FFFD instead of losing the whole summary.
        markdown = self._redact(without_surrogates(markdown))
        path = file_path(self.environ, "GITHUB_STEP_SUMMARY", "GITEA_STEP_SUMMARY")
        if path is None:
            if not self.in_actions:
                self.info(markdown)
            return
        with self._lock:
            fitted = fit_summary(path, markdown)
            if fitted is not None:
                append_text(path, fitted)


class RunnerLogHandler(logging.Handler):
    """Routes library log records through a Runner, so they are made safe and redacted like every other line.

    The CLI attaches one to the `sgp_action` logger (`attach`): a record may carry server text (an API error's
    body), and it must reach the log as inert as a build log line.
    """

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


def attach(runner: Runner, *, debug: bool) -> RunnerLogHandler:
    """Make `runner` the one output of the `sgp_action` logger (replacing a handler a previous call attached)."""
    logger = logging.getLogger("sgp_action")
    for old in [h for h in logger.handlers if isinstance(h, RunnerLogHandler)]:
        logger.removeHandler(old)
    handler = RunnerLogHandler(runner)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler


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
