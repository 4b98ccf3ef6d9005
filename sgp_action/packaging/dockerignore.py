"""Docker's `.dockerignore` rules as a pure matcher (docs/build-context.md#dockers-dockerignore-rules).

Reading follows moby `ignorefile.ReadAll` then `patternmatcher.New` (both stages, so their combined cleaning quirks
come out the same); matching follows `patternmatcher.MatchesOrParentMatches`: a path is excluded when the last
pattern that matches the path *or one of its parent directories* is not a `!` exception. Pattern syntax is Go's
`filepath.Match` (validated the same way) plus moby's `**`. The walker's "may I skip this excluded directory" rule
is BuildKit's (tonistiigi/fsutil `filter.go`, docs/build-context.md#buildkit-and-the-classic-builder).

Deliberate differences from moby, all where moby hands Go's regexp a text it never meant to (filepath.Match, which
moby validates patterns with, is followed instead): inside `[...]` the characters `*` and `?` are literal; `\\x` is
always the literal `x` (moby turns `\\d` into a digit class); `^` outside brackets is literal (moby's `*^x` can never
match); a reversed range such as `[z-a]` matches nothing (moby fails at match time); `**` also matches names that
contain a newline (Go's `.` does not). moby's own quirks are kept: `**.pyc` is a suffix test at any depth, and a
non-segment `**` is `(.*/)?`.

Each pattern is compiled once (`packaging.globmatch`, which never backtracks, so a hostile pattern cannot hang the
walk). Plain-text patterns are looked up in a dict and only the others run, all together, through one automaton, so
100,000 literal lines cost no more per entry than one. Evaluation keeps, for every directory already seen, the index
of the last pattern that matched it or one of its parents; an entry then only needs the last pattern matching the
entry itself, so the cost per entry does not grow with depth.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sgp_action.errors import ContextError
from sgp_action.packaging.globmatch import BadPattern, Glob, GlobSet, compile_glob

log = logging.getLogger(__name__)

__all__ = ["DockerIgnore", "Pattern", "PatternError"]

# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip() also strips \x1c-\x1f, Go does not).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_BOM = "\ufeff"
# fsutil `patternChars` (Unix): an exception holding one of these could match anywhere, so no excluded directory
# may be skipped. `]` and `^` count although they are literal on their own: BuildKit counts them too.
_FSUTIL_PATTERN_CHARS = frozenset("*[]?^\\")
# Bound on remembered directory states; a walk only needs the current branch, so clearing loses little.
_MAX_REMEMBERED_DIRS = 1 << 16


class PatternError(ContextError):
    """A `.dockerignore` line that Docker would refuse (`error checking context: ...`); nothing may be sent."""

    def __init__(self, message: str, *, source: str, line: int) -> None:
        super().__init__(message)
        self.source = source
        self.line = line


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern: `text` as Docker keeps it (no `!`), whether it is a `!` exception, its 1-based line.

    `line` is 0 for exceptions added by `DockerIgnore.with_always_included`.
    """

    text: str
    exclusion: bool
    line: int
    _glob: Glob = field(repr=False, compare=False)

    def matches(self, path: str) -> bool:
        """Whether this pattern matches `path` itself (the whole relative path; parents are not considered)."""
        return self._glob.matches(path)


def _clean(path: str) -> str:
    """Go `filepath.Clean` on a `/` path: fold `//`, drop `.`, resolve `x/..` lexically, no trailing `/`."""
    if path and path[-1] != "/" and path[0] != "." and "//" not in path and "/." not in path:
        return path  # no empty, `.` or `..` segment: already clean (the common case, 100,000 lines must be quick)
    if not path:
        return "."
    rooted = path[0] == "/"
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            # `..` at the root of a rooted path stays at the root.
        else:
            parts.append(part)
    body = "/".join(parts)
    if rooted:
        return "/" + body
    return body or "."


def _escape(path: str) -> str:
    """A pattern matching exactly `path`."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def _read_pattern(line: str, number: int, source: str) -> Pattern | None:
    """One line (comments already dropped) to a Pattern, or None for a blank line; both moby stages."""
    shown = line.strip(_GO_SPACE)
    # Stage 1, ignorefile.ReadAll: trim, split off `!` (and the blanks after it), Clean, drop ONE leading `/`.
    text = shown
    if not text:
        return None
    invert = text[0] == "!"
    if invert:
        text = text[1:].strip(_GO_SPACE)
    if text:
        text = _clean(text)
        if len(text) > 1 and text[0] == "/":
            text = text[1:]
    if invert:
        text = "!" + text
    # Stage 2, patternmatcher.New: trim and Clean again (so `a /.` ends as `a`, `!/` as a bare `!`), then `!`.
    text = text.strip(_GO_SPACE)
    if not text:
        return None
    text = _clean(text)
    exclusion = text[0] == "!"
    if exclusion:
        if len(text) == 1:
            raise PatternError(
                f"{source} line {number}: illegal exclusion pattern \"!\" in '{shown}': "
                "write the path to re-include after the '!', or delete the line",
                source=source,
                line=number,
            )
        text = text[1:]
    try:
        glob = compile_glob(text)
    except BadPattern as exc:
        raise PatternError(
            f"{source} line {number}: syntax error in pattern '{shown}': {exc}; "
            "escape a literal '[', '*', '?' or '\\' with '\\'",
            source=source,
            line=number,
        ) from exc
    return Pattern(text=text, exclusion=exclusion, line=number, _glob=glob)


def _without_trailing_glob(text: str) -> str:
    """fsutil `patternWithoutTrailingGlob`: cut a trailing `/**`, then a trailing `/*` (both, in that order)."""
    text = text.removesuffix("/**")
    return text.removesuffix("/*")


class DockerIgnore:
    """An ordered list of `.dockerignore` patterns with Docker's matching rules.

    Build it with `parse` (file text) or `from_patterns`. Instances are immutable apart from an internal cache and
    can be shared between threads.
    """

    __slots__ = (
        "_dir_states",
        "_excludes",
        "_glob_indices",
        "_globs",
        "_literals",
        "_no_exceptions",
        "_reinclude_anywhere",
        "_reinclude_dirs",
        "patterns",
    )

    def __init__(self, patterns: Iterable[Pattern] = ()) -> None:
        self.patterns: tuple[Pattern, ...] = tuple(patterns)
        self._excludes = tuple(not p.exclusion for p in self.patterns)
        # Only the last matching pattern counts, so a literal text needs only the index of its last occurrence.
        self._literals: dict[str, int] = {}
        self._glob_indices: list[int] = []
        globs: list[Glob] = []
        for index, pattern in enumerate(self.patterns):
            literal = pattern._glob.literal
            if literal is None:
                self._glob_indices.append(index)
                globs.append(pattern._glob)
            else:
                self._literals[literal] = index
        self._globs = GlobSet(globs) if globs else None
        self._dir_states: dict[str, int] = {}
        exceptions = [_without_trailing_glob(p.text) for p in self.patterns if p.exclusion]
        self._no_exceptions = not exceptions
        self._reinclude_anywhere = any(not _FSUTIL_PATTERN_CHARS.isdisjoint(t) for t in exceptions)
        # Every `d` such that some exception's cut text is `d` or starts with `d/`: one lookup per excluded directory.
        self._reinclude_dirs = frozenset(t[:i] for t in exceptions for i, char in enumerate(t + "/") if char == "/")

    def __repr__(self) -> str:
        return f"DockerIgnore({[('!' if p.exclusion else '') + p.text for p in self.patterns]!r})"

    @classmethod
    def parse(cls, text: str, *, source: str = ".dockerignore") -> DockerIgnore:
        """Read `.dockerignore` text as Docker does (docs/build-context.md#reading-the-file).

        A BOM is dropped from the first line only; a line whose first byte is `#` is a comment; lines are trimmed
        (so CRLF works) and blank ones dropped; `!` marks an exception. Raises PatternError naming `source` and
        the line for a bare `!` or a pattern Go's filepath.Match rejects.
        """
        lines = text.split("\n")
        if lines[0].startswith(_BOM):
            lines[0] = lines[0][1:]
        patterns = []
        for number, line in enumerate(lines, start=1):
            if line.startswith("#"):
                continue
            pattern = _read_pattern(line, number, source)
            if pattern is not None:
                patterns.append(pattern)
        log.debug("%s: %d patterns", source, len(patterns))
        return cls(patterns)

    @classmethod
    def from_patterns(cls, patterns: Iterable[str], *, source: str = "<patterns>") -> DockerIgnore:
        """Patterns given one per item, cleaned like `.dockerignore` lines (no comment or BOM handling).

        Errors name `source` and the item's 1-based position as its line.
        """
        read = (_read_pattern(p, number, source) for number, p in enumerate(patterns, start=1))
        return cls(p for p in read if p is not None)

    def with_always_included(self, *paths: str) -> DockerIgnore:
        """A copy that can no longer exclude `paths` (docs/build-context.md#files-that-are-always-sent: `.dockerignore`
        and the chosen Dockerfile).

        Like the docker CLI, a literal `!<path>` exception is appended for each path these patterns exclude. Paths
        are relative to the context root; one that cleans to outside the context (`../Dockerfile`) is skipped,
        since nothing in the context can be it.
        """
        added: list[Pattern] = []
        for raw in paths:
            if raw.startswith("/"):
                raise ValueError(f"always-included path {raw!r} must be relative to the context root")
            path = _clean(raw)
            if path in (".", "..") or path.startswith("../") or not self.excluded(path):
                continue
            text = _escape(path)
            added.append(Pattern(text=text, exclusion=True, line=0, _glob=compile_glob(text)))
        return DockerIgnore(self.patterns + tuple(added)) if added else self

    def excluded(self, path: str, *, parent_excluded: bool | None = None) -> bool:
        """Whether Docker leaves `path` out of the context: the last pattern matching it or a parent is not `!`.

        `path` is relative to the context root, `/`-separated, without `./` (never the root itself). The answer
        is exact whatever order paths come in: each directory's state is remembered, so an entry costs one lookup
        among the literal patterns and one automaton run over its own name. `parent_excluded`, when given, must be
        what this method returned for the parent directory (False for top-level entries); it only saves work.
        """
        if not self.patterns:
            return False
        if parent_excluded is not None and self._no_exceptions:
            # Without exceptions, an excluded parent excludes everything below it, and a kept parent means no
            # pattern matched any parent, so only the path itself is left to test.
            return parent_excluded or self._last_match(path, -1) >= 0
        cut = path.rfind("/")
        if cut > 0:
            parent = path[:cut]
            state = self._dir_states.get(parent)
            if state is None:
                state = self._dir_state(parent)
        else:
            state = -1
        state = self._last_match(path, state)
        return state >= 0 and self._excludes[state]

    def may_reinclude_under(self, dir_path: str) -> bool:
        """Whether a `!` exception could put back something below the excluded directory `dir_path`.

        BuildKit's rule (fsutil, docs/build-context.md#buildkit-and-the-classic-builder): true when any exception
        contains one of `*?[]^\\` once a trailing `/**` and then a trailing `/*` are cut off, or when an exception's
        text so cut starts with
        `dir_path/`. A walker must not enter an excluded directory when this is False: BuildKit never does, even
        for the rare exception (`!a/*/**`) that would have matched below it.
        """
        if self._reinclude_anywhere:
            return True
        return dir_path in self._reinclude_dirs

    # --- evaluation ------------------------------------------------------------------------------------------

    def _last_match(self, path: str, after: int) -> int:
        """Index of the last pattern after index `after` that matches `path` itself, else `after`."""
        last = max(after, self._literals.get(path, -1))
        if self._globs is not None and self._glob_indices[-1] > last:
            found = self._globs.last_match(path)
            if found >= 0:
                last = max(last, self._glob_indices[found])
        return last

    def _dir_state(self, directory: str) -> int:
        """Index of the last pattern matching `directory` or a parent of it (-1 if none), remembered."""
        states = self._dir_states
        state = states.get(directory)
        if state is not None:
            return state
        pending = [directory]
        state = -1
        cut = directory.rfind("/")
        while cut > 0:
            parent = directory[:cut]
            known = states.get(parent)
            if known is not None:
                state = known
                break
            pending.append(parent)
            cut = directory.rfind("/", 0, cut)
        if len(states) > _MAX_REMEMBERED_DIRS:
            states.clear()
        for entry in reversed(pending):
            state = self._last_match(entry, state)
            states[entry] = state
        return state
