"""Property tests: the `.dockerignore` matcher agrees with a plain reference reading of
docs/build-context.md#dockers-dockerignore-rules.

The reference below shares no code with `packaging.dockerignore`: it cleans with `posixpath.normpath`, matches by
recursive backtracking over the pattern text instead of regular expressions, and evaluates every pattern against
the path and each of its parents (last match wins) instead of remembering directory states.
"""

from __future__ import annotations

import posixpath
import re
from functools import cache

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sgp_action.packaging.dockerignore import DockerIgnore, PatternError

# Thousands of generated cases, seconds of CPU per test: the slow tier.
pytestmark = pytest.mark.e2e

PATTERN_TOKENS = ["a", "b", ".", "/", "*", "?", "**", "[ab]", "[^a]", "!", "\\*"]
NAME_CHARS = "ab.!*"


class RefError(Exception):
    """The reference rejects the pattern list."""


def ref_clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    # POSIX keeps exactly two leading slashes; Go's Clean folds them like any other run.
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def ref_read(line: str) -> tuple[str, bool] | None:
    """docs/build-context.md#reading-the-file for one line of the alphabet (which has no blanks and no comments)."""
    if not line:
        return None
    invert = line.startswith("!")
    text = line[1:] if invert else line
    if text:
        text = ref_clean(text)
        if len(text) > 1 and text.startswith("/"):
            text = text[1:]
    # patternmatcher.New cleans the text again with its `!` still on, then splits the `!` off
    text = ref_clean(("!" if invert else "") + text)
    if text == "!":
        raise RefError(line)
    if text.startswith("!"):
        return text[1:], True
    return text, False


def ref_match(pattern: str, name: str) -> bool:
    """Whether `pattern` matches the whole of `name` (moby's reading of `**`, Go's of everything else)."""
    rest = pattern[2:]
    if pattern.startswith("**") and rest and not set(rest) & set("*?[]\\"):
        return name.endswith(rest) or (rest[0] == "/" and name == rest[1:])

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(name)
        if pattern.startswith("**", i):
            k = i + 2
            if pattern.startswith("/", k):
                k += 1
            if k == len(pattern):
                return True
            return match(k, j) or any(match(k, s + 1) for s in range(j, len(name)) if name[s] == "/")
        char = pattern[i]
        if char == "*":
            end = j
            while not match(i + 1, end):
                if end == len(name) or name[end] == "/":
                    return False
                end += 1
            return True
        if j == len(name):
            return False
        if char == "?":
            return name[j] != "/" and match(i + 1, j + 1)
        if char == "[":
            close = pattern.index("]", i + 2)
            members = pattern[i + 1 : close]
            negated = members.startswith("^")
            inside = name[j] in (members[1:] if negated else members)
            return inside != negated and match(close + 1, j + 1)
        if char == "\\":
            i += 1
        return name[j] == pattern[i] and match(i + 1, j + 1)

    return match(0, 0)


def ref_excluded(patterns: list[tuple[str, bool]], path: str) -> bool:
    candidates = [path[:i] for i, char in enumerate(path) if char == "/"] + [path]
    result = False
    for text, exception in patterns:
        if any(ref_match(text, candidate) for candidate in candidates):
            result = not exception
    return result


def ref_parse(lines: list[str]) -> list[tuple[str, bool]]:
    return [p for p in map(ref_read, lines) if p is not None]


pattern_lines = st.lists(st.sampled_from(PATTERN_TOKENS), min_size=1, max_size=6).map("".join)
pattern_lists = st.lists(pattern_lines, min_size=1, max_size=5)
names = st.text(NAME_CHARS, min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
paths = st.lists(names, min_size=1, max_size=4).map("/".join)


def parse_both(lines: list[str]) -> tuple[DockerIgnore, list[tuple[str, bool]]] | None:
    """Both readings of the lines, or None when both refuse them (one refusing alone fails the test)."""
    try:
        expected = ref_parse(lines)
    except RefError:
        expected = None
    try:
        ignore = DockerIgnore.parse("\n".join(lines))
    except PatternError:
        assert expected is None, f"refused {lines!r}, which the reference reads as {expected!r}"
        return None
    assert expected is not None, f"accepted {lines!r}, which the reference refuses"
    assert [(p.text, p.exclusion) for p in ignore.patterns] == expected
    return ignore, expected


@settings(max_examples=600, deadline=None)
@given(pattern_lists, paths)
def test_agrees_with_reference(lines: list[str], path: str) -> None:
    parsed = parse_both(lines)
    if parsed is not None:
        ignore, expected = parsed
        assert ignore.excluded(path) == ref_excluded(expected, path), (lines, path)


@settings(max_examples=300, deadline=None)
@given(pattern_lists, st.lists(paths, min_size=1, max_size=12))
def test_remembered_states_do_not_depend_on_order(lines: list[str], many: list[str]) -> None:
    parsed = parse_both(lines)
    if parsed is not None:
        ignore, expected = parsed
        assert [ignore.excluded(p) for p in many] == [ref_excluded(expected, p) for p in many]


@settings(max_examples=300, deadline=None)
@given(pattern_lists, paths)
def test_parent_hint_gives_the_same_answers(lines: list[str], path: str) -> None:
    parsed = parse_both(lines)
    if parsed is not None:
        hinted, plain = parsed[0], DockerIgnore(parsed[0].patterns)
        parts = path.split("/")
        parent_excluded = False
        for depth in range(1, len(parts) + 1):
            entry = "/".join(parts[:depth])
            parent_excluded = hinted.excluded(entry, parent_excluded=parent_excluded)
            assert parent_excluded == plain.excluded(entry)


@settings(max_examples=600, deadline=None)
@given(pattern_lists, paths)
def test_skipped_directories_hold_nothing_kept(lines: list[str], path: str) -> None:
    # BuildKit cuts `/**` and then `/*`, so `!a/*/**` looks like a plain prefix `a`: the one unsound case, kept
    # on purpose to send exactly what BuildKit sends (tests/test_dockerignore.py::test_buildkit_cut_quirk).
    parsed = parse_both(lines)
    if parsed is not None:
        ignore, expected = parsed
        assume(not any(exception and text.endswith("/*/**") for text, exception in expected))
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if ignore.excluded(directory) and not ignore.may_reinclude_under(directory):
                assert ignore.excluded(path), (lines, directory, path)


@settings(max_examples=300, deadline=None)
@given(pattern_lists, paths, paths)
def test_always_included_paths_are_never_excluded(lines: list[str], kept: str, other: str) -> None:
    parsed = parse_both(lines)
    if parsed is not None:
        ignore = parsed[0]
        protected = ignore.with_always_included(kept)
        assert not protected.excluded(kept)
        if other != kept and not other.startswith(kept + "/"):
            assert protected.excluded(other) == ignore.excluded(other)


# --- the matcher against Python's `re`, the backtracking form it replaced (safe on inputs this small) ---------------

ORACLE_TOKENS = ["a", "b", "c", ".", "/", "]", "*", "?", "**", "[a-c]", "[^b]", "[!a]", "[z-a]", "[^z-a]", "[\\]]"]
ORACLE_TOKENS += ["\\*", "\\a"]
ORACLE_CLASSES = {"a-c": "[a-c]", "^b": "[^b]", "!a": "[!a]", "z-a": "(?!)", "^z-a": ".", "\\]": "\\]"}


def oracle_regex(text: str) -> str:
    """The regex moby would compile for `text` (for this alphabet), with its literal-suffix fast path."""
    rest = text[2:]
    if text.startswith("**") and rest and rest[0] != "/" and not set(rest) & set("*?[]\\"):
        return ".*" + re.escape(rest)
    out, i = [], 0
    while i < len(text):
        if text.startswith("**", i):
            i += 3 if text.startswith("/", i + 2) else 2
            out.append(".*" if i == len(text) else "(?:.*/)?")
            continue
        char = text[i]
        if char == "[":
            body = next(body for body in ORACLE_CLASSES if text.startswith(f"[{body}]", i))
            out.append(ORACLE_CLASSES[body])
            i += len(body) + 2
            continue
        if char == "\\":
            out.append(re.escape(text[i + 1]))
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
        i += 1
    return "".join(out)


def is_clean(text: str) -> bool:
    return ref_clean(text) == text and not text.startswith(("/", "!")) and text not in (".", "..")


clean_globs = st.lists(st.sampled_from(ORACLE_TOKENS), min_size=1, max_size=7).map("".join).filter(is_clean)
oracle_paths = st.text("abc./]*!^\n", max_size=12)
# What a path may hold where each token stands (characters, fewest, most): mostly what the token matches, with
# near misses, so that paths that match are common (random paths almost never match a long pattern).
INSTANCES = {"*": ("ab./", 0, 3), "**": ("ab/", 0, 4), "?": ("a/.", 1, 1), "[a-c]": ("abcd", 1, 1)}
INSTANCES |= {"[^b]": ("ab/", 1, 1), "[!a]": ("!ab", 1, 1), "[z-a]": ("az", 1, 1), "[^z-a]": ("a/", 1, 1)}
INSTANCES |= {"[\\]]": ("]a", 1, 1), "\\*": ("*a", 1, 1), "\\a": ("a\\", 1, 1), "a": ("ab", 1, 1)}


@st.composite
def globs_with_paths(draw: st.DrawFn) -> tuple[str, str]:
    """A clean pattern and a path that is often an instance of it."""
    tokens = draw(st.lists(st.sampled_from(ORACLE_TOKENS), min_size=1, max_size=7))
    assume(is_clean("".join(tokens)))
    if draw(st.booleans()):
        return "".join(tokens), draw(oracle_paths)
    parts = []
    for token in tokens:
        alphabet, fewest, most = INSTANCES.get(token, (token, 1, 1))
        parts.append(draw(st.text(alphabet, min_size=fewest, max_size=most)))
    return "".join(tokens), "".join(parts)


@settings(max_examples=600, deadline=None)
@given(globs_with_paths())
def test_one_pattern_agrees_with_the_regex_it_replaced(case: tuple[str, str]) -> None:
    text, path = case
    (pattern,) = DockerIgnore.from_patterns([text]).patterns
    assert pattern.text == text
    assert pattern.matches(path) == bool(re.fullmatch(oracle_regex(text), path, re.DOTALL)), (text, path)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(clean_globs, st.booleans()), min_size=1, max_size=6), paths)
def test_globs_and_literals_together_agree_with_the_regexes(lines: list[tuple[str, bool]], path: str) -> None:
    ignore = DockerIgnore.from_patterns(("!" if exception else "") + text for text, exception in lines)
    candidates = [path[:i] for i, char in enumerate(path) if char == "/"] + [path]
    expected = False
    for text, exception in lines:
        if any(re.fullmatch(oracle_regex(text), candidate, re.DOTALL) for candidate in candidates):
            expected = not exception
    assert ignore.excluded(path) == expected, (lines, path)
