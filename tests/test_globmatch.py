"""The glob automaton on its own: last-index answers, literal detection, syntax errors, bounded caches."""

from __future__ import annotations

import re

import pytest

from sgp_action.packaging import globmatch
from sgp_action.packaging.dockerignore import DockerIgnore
from sgp_action.packaging.globmatch import BadPattern, GlobSet, compile_glob


def test_last_match_is_the_highest_index_of_a_matching_glob() -> None:
    globs = GlobSet([compile_glob(t) for t in ["*.py", "a/**", "a/*.py", "b?"]])
    assert globs.last_match("x.py") == 0
    assert globs.last_match("a/x.py") == 2
    assert globs.last_match("a/x/y.py") == 1
    assert globs.last_match("bc") == 3
    assert globs.last_match("a") == -1
    assert globs.last_match("") == -1


@pytest.mark.parametrize(
    ("text", "literal"),
    [("a/b.txt", "a/b.txt"), ("a]b", "a]b"), ("a\\*b", "a*b"), ("a*b", None), ("[ab]", None), ("**/x", None)],
)
def test_plain_text_is_recognised_as_literal(text: str, literal: str | None) -> None:
    glob = compile_glob(text)
    assert glob.literal == literal
    if literal is not None:
        assert glob.matches(literal)
        assert [kind for kind, _ in glob.program] == [0] * len(literal)


@pytest.mark.parametrize("text", ["[", "[a", "[]a]", "[a-]", "a\\", "x[\\"])
def test_bad_patterns_are_refused(text: str) -> None:
    with pytest.raises(BadPattern):
        compile_glob(text)


def test_full_caches_are_replaced_with_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(globmatch, "_MAX_STATES", 3)
    monkeypatch.setattr(globmatch, "_MAX_PREFIXES", 2)
    monkeypatch.setattr(globmatch, "_MAX_POSITIONS", 4)
    ignore = DockerIgnore.parse("**/*a*b\n!**/x?y\n[a-c]*/**")
    for name in ["ab", "xay", "aab", "b/ab", "c/zz", "d/xzy", "d/aXb", "d/e/f/ab", "d/e/xy", "d/e/f/g/xay"] * 3:
        expected = bool(re.fullmatch(r"(.*/)?[^/]*a[^/]*b|[a-c][^/]*/.*", name)) and name != "d/xzy"
        assert ignore.excluded(name) == expected, name
