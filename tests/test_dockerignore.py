"""Table tests of the `.dockerignore` matcher against docs/build-context.md#dockers-dockerignore-rules (and moby /
BuildKit where it is silent)."""

from __future__ import annotations

import pytest

from sgp_action.errors import ContextError
from sgp_action.packaging.dockerignore import DockerIgnore, Pattern, PatternError

# (.dockerignore text, path, excluded?)
CASES: list[tuple[str, str, bool]] = [
    # --- docs/build-context.md#matching: anchored, whole-path matching ------------------------------------------------
    ("a.py", "a.py", True),
    ("a.py", "sub/a.py", False),
    ("*.py", "x.py", True),
    ("*.py", "sub/x.py", False),
    ("*.py", ".py", True),
    ("node_modules", "node_modules/x/y.js", True),
    ("node_modules", "app/node_modules/x.js", False),
    ("sub/a.py", "sub/a.py", True),
    ("sub/a.py", "a.py", False),
    ("a", "ab", False),
    ("a", "ba", False),
    ("a", "a/b", True),
    # --- `*` and `?` never cross `/` -----------------------------------------------------------------------
    ("*", "anything", True),
    ("*", "d/x", True),
    ("a*b", "axyzb", True),
    ("a*b", "ab", True),
    ("a*b", "a/b", False),
    ("*/x.py", "d/x.py", True),
    ("*/x.py", "d/e/x.py", False),
    ("*/x.py", "x.py", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("a?c", "abbc", False),
    ("a?c", "a/c", False),
    ("??", "ab", True),
    ("??", "abc", False),
    # --- classes: ranges, `^` negation, `!` literal, escapes inside ----------------------------------------
    ("[ab].py", "a.py", True),
    ("[ab].py", "c.py", False),
    ("[a-c].py", "b.py", True),
    ("[a-c].py", "d.py", False),
    ("[a-cx-z]", "y", True),
    ("[^a].py", "b.py", True),
    ("[^a].py", "a.py", False),
    ("[!a].py", "!.py", True),
    ("[!a].py", "a.py", True),
    ("[!a].py", "b.py", False),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "bx", False),
    ("a[^x]b", "a/b", True),  # Go: a negated class also matches '/'
    ("[\\]]x", "]x", True),
    ("[\\-]x", "-x", True),
    ("[\\-]x", "x", False),
    ("[a^]", "^", True),
    ("[*]", "*", True),  # literal inside brackets (filepath.Match)
    ("[*]", "x", False),
    ("[?]", "?", True),
    ("[?]", "x", False),
    ("x[z-a]", "xz", False),  # reversed range: matches nothing, is not an error (Go)
    ("x[z-a]", "xa", False),
    ("x[^z-a]", "xq", True),
    ("[.]py", ".py", True),
    ("[.]py", "apy", False),
    ("é[é-ü]", "éö", True),
    # --- `\` escapes the next character -------------------------------------------------------------------
    ("\\*.py", "*.py", True),
    ("\\*.py", "a.py", False),
    ("a\\?b", "a?b", True),
    ("a\\?b", "axb", False),
    ("\\[ab]", "[ab]", True),
    ("\\[ab]", "a", False),
    ("\\d", "d", True),
    ("\\d", "1", False),
    ("a\\\\b", "a\\b", True),
    ("\\!x", "!x", True),
    # --- regex metacharacters are literal; matching is case-sensitive ---------------------------------------
    ("a.py", "axpy", False),
    ("a+b", "a+b", True),
    ("a+b", "aab", False),
    ("(x)|y", "(x)|y", True),
    ("(x)|y", "y", False),
    ("{a,b}", "{a,b}", True),
    ("{a,b}", "a", False),
    ("$x^", "$x^", True),
    ("*.(py)", "a.(py)", True),
    ("*^x", "a^x", True),
    ("*$", "a$", True),
    ("README.md", "readme.md", False),
    ("*.PY", "a.py", False),
    # --- `**` ----------------------------------------------------------------------------------------------
    ("**/x", "x", True),
    ("**/x", "a/x", True),
    ("**/x", "a/b/x", True),
    ("**/x", "a/xx", False),
    ("**/x", "ax", False),
    ("**/x/y", "x/y", True),
    ("**/x/y", "a/b/x/y", True),
    ("dir/**", "dir", False),  # not dir itself (an empty dir/ entry stays)
    ("dir/**", "dir/a", True),
    ("dir/**", "dir/a/b", True),
    ("dir/**", "dirx/a", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**/b", "b", False),
    ("**", "a", True),
    ("**", "a/b/c", True),
    ("**/*.pyc", "x.pyc", True),
    ("**/*.pyc", "a/b/x.pyc", True),
    ("**/*.pyc", "a/b/x.pyo", False),
    ("**/__pycache__", "pkg/__pycache__/m.pyc", True),
    ("**/__pycache__", "__pycache__", True),
    ("**/node_modules/**", "node_modules", False),
    ("**/node_modules/**", "web/node_modules/x", True),
    ("a/**/*/c", "a/b/c", True),
    ("a/**/*/c", "a/c", False),
    # moby compiles a `**` that is not a whole segment as `(.*/)?`, or `.*` at the end
    ("a**", "a/b/c", True),
    ("a**", "abc", True),
    ("x/a**", "x/a", True),
    ("a**b", "ab", True),
    ("a**b", "a/b", True),
    ("a**b", "ax/b", True),
    ("a**b", "axb", False),
    # moby's suffix fast path: a leading `**` then literal text is a plain suffix test (`**.pyc`: any depth)
    ("**.pyc", "a/b/x.pyc", True),
    ("**.pyc", "x.pyc", True),
    ("**.pyc", "x.py", False),
    ("**x", "bx", True),
    ("**x*", "bx", False),  # not only literal text: `(.*/)?x[^/]*`
    ("**x*", "b/xy", True),
    # --- docs/build-context.md#matching: parents, last match wins, `!` exceptions -------------------------------------
    ("a\n!a/b.py", "a/b.py", False),
    ("a\n!a/b.py", "a/c.py", True),
    ("a\n!a/b.py", "a", True),
    ("a\n!a/b.py", "a/b.py/x", False),
    ("*\n!*/b.py", "a/b.py", False),  # docs/build-context.md#buildkit-and-the-classic-builder
    ("*\n!*/b.py", "a/c.py", True),
    ("*\n!*/b.py", "b.py", True),
    # docs/build-context.md#buildkit-and-the-classic-builder (fsutil TestWalkerExclude)
    ("foo*\n!foo/bar2", "bar", False),
    ("foo*\n!foo/bar2", "foo", True),
    ("foo*\n!foo/bar2", "foo/bar2", False),
    ("foo*\n!foo/bar2", "foo/bar", True),
    ("foo*\n!foo/bar2", "food", True),
    ("!a\na", "a", True),
    ("a\n!a", "a", False),
    ("a\n!a", "a/b", False),
    ("!x", "x", False),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "x.md", True),
    ("*.md\n!README.md\nREADME*", "README.md", True),
    ("a/b\n!a", "a/b", False),  # the later exception matches a parent, so it wins
    ("**/c\n!a", "a/c", False),  # buildx#850: a per-entry-only evaluation gets this one wrong
    ("**/c\n!a", "b/c", True),
    ("a\n!a/b\na/b/c", "a/b/c/d", True),
    ("a\n!a/b\na/b/c", "a/b/x", False),
    ("a\n!a/b\na/b/c\n!a/b/c/keep", "a/b/c/keep/deep", False),
    ("a\n!a/b\na/b/c\n!a/b/c/keep", "a/b/c/other", True),
    ("*\n!keep\nkeep/tmp", "keep/x", False),
    ("*\n!keep\nkeep/tmp", "keep/tmp/x", True),
    # --- docs/build-context.md#reading-the-file: cleaning -------------------------------------------------------------
    ("/foo", "foo", True),
    ("./foo", "foo", True),
    ("foo/", "foo", True),
    ("foo/.", "foo", True),
    ("//foo", "foo", True),
    ("foo//bar", "foo/bar", True),
    ("foo/./bar", "foo/bar", True),
    ("foo/../bar", "bar", True),
    ("foo/../bar", "foo/bar", False),
    ("/../b.py", "b.py", True),
    ("../a.py", "a.py", False),
    ("a/../../x", "x", False),
    (".", "a", False),
    ("./", "a", False),
    ("/", "a", False),
    ("a.py/", "a.py", True),  # trailing `/` is not "directories only"
    ("*\n!./foo/", "foo", False),
    ("*\n!/foo", "foo", False),
    ("*\n!/../foo", "foo", False),
    # --- docs/build-context.md#reading-the-file: comments, BOM, whitespace, CRLF --------------------------------------
    ("#a", "#a", False),
    (" #a", "#a", True),
    ("\t#a", "#a", True),
    ("a # note", "a", False),
    ("a # note", "a # note", True),
    ("\\#a", "#a", True),
    ("\ufeffa", "a", True),
    ("\ufeff#c\nx", "#c", False),
    ("x\n\ufeffa", "a", False),
    ("x\n\ufeffa", "\ufeffa", True),
    ("a\r\nb\r\n", "a", True),
    ("a\r\nb\r\n", "b", True),
    ("a\rb", "a\rb", True),
    ("  a.py\t ", "a.py", True),
    ("\u00a0a.py\u3000", "a.py", True),
    ("a\x1c", "a", False),  # Go's TrimSpace keeps \x1c (Python's strip would not)
    ("*\n! a.py", "a.py", False),
    ("*\n!\t a.py  ", "a.py", False),
    ("a b", "a b", True),
    ("a b", "a", False),
    ("a /.", "a", True),  # moby's second trim: Clean leaves "a ", New trims it
    ("\n\n\na\n\n", "a", True),
]


@pytest.mark.parametrize(("text", "path", "expected"), CASES)
def test_excluded(text: str, path: str, expected: bool) -> None:
    ignore = DockerIgnore.parse(text)
    assert ignore.excluded(path) is expected
    # a fresh instance (no remembered parent states) and one asked about every parent first agree
    walked = DockerIgnore.parse(text)
    parts = path.split("/")
    for depth in range(1, len(parts)):
        walked.excluded("/".join(parts[:depth]))
    assert walked.excluded(path) is expected


@pytest.mark.parametrize(
    ("text", "patterns"),
    [
        ("/foo\n! ./bar/\n", [("foo", False, 1), ("bar", True, 2)]),
        ("# c\n\n  x/../y  \r\n!z\n", [("y", False, 3), ("z", True, 4)]),
        ("\ufeff!a\n", [("a", True, 1)]),
        ("../a.py\n", [("../a.py", False, 1)]),
        (".\n", [(".", False, 1)]),
        ("!a/..\n", [(".", True, 1)]),
        ("dir/**/\n", [("dir/**", False, 1)]),
        ("", []),
        ("# only\n#comments\n", []),
    ],
)
def test_parse_keeps_cleaned_text_kind_and_line(text: str, patterns: list[tuple[str, bool, int]]) -> None:
    parsed = DockerIgnore.parse(text).patterns
    assert [(p.text, p.exclusion, p.line) for p in parsed] == patterns
    assert all(isinstance(p, Pattern) for p in parsed)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[", 1, "syntax error in pattern '['"),
        ("a\n[", 2, "syntax error in pattern '['"),
        ("ok\n\n# c\n[a-\n", 4, "syntax error in pattern '[a-'"),
        ("[a", 1, "syntax error"),
        ("[]a]", 1, "syntax error"),
        ("[^]", 1, "syntax error"),
        ("[a-]", 1, "syntax error"),
        ("[-a]", 1, "syntax error"),
        ("[a-z-0]", 1, "syntax error"),
        ("x[\\", 1, "syntax error"),
        ("a\\", 1, "syntax error in pattern 'a\\'"),
        ("**/[", 1, "syntax error"),
        ("!x[", 1, "syntax error in pattern '!x['"),
        ("x\n\n!\n", 3, 'illegal exclusion pattern "!"'),
        ("! ", 1, 'illegal exclusion pattern "!"'),
        ("!\t\r\n", 1, 'illegal exclusion pattern "!"'),
        ("a\n!/", 2, 'illegal exclusion pattern "!"'),  # "/" survives ReadAll, then New's Clean makes it "!"
        ("a\n!/..", 2, 'illegal exclusion pattern "!"'),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PatternError) as caught:
        DockerIgnore.parse(text, source="app/.dockerignore")
    assert str(caught.value).startswith(f"app/.dockerignore line {line}: {message}")
    assert caught.value.line == line
    assert caught.value.source == "app/.dockerignore"
    assert isinstance(caught.value, ContextError)


@pytest.mark.parametrize("text", ["# [", "#!", "[ab]", "\\[", "[\\]]", "x[z-a]", "!.", "!..", "[!]]"])
def test_valid_patterns_raise_nothing(text: str) -> None:
    DockerIgnore.parse(text)


def test_from_patterns_cleans_items_and_names_the_item() -> None:
    ignore = DockerIgnore.from_patterns(["/build/", "", "  ", "!build/keep", "#literal"])
    assert [(p.text, p.exclusion, p.line) for p in ignore.patterns] == [
        ("build", False, 1),
        ("build/keep", True, 4),
        ("#literal", False, 5),
    ]
    assert ignore.excluded("build/x")
    assert not ignore.excluded("build/keep/y")
    assert ignore.excluded("#literal")
    with pytest.raises(PatternError, match=r"^agentex defaults line 2: syntax error in pattern '\['"):
        DockerIgnore.from_patterns(["a", "["], source="agentex defaults")


def test_no_patterns_exclude_nothing() -> None:
    ignore = DockerIgnore.parse("# nothing\n")
    assert ignore.patterns == ()
    assert not ignore.excluded("a/b")
    assert not ignore.excluded("a", parent_excluded=False)
    assert not ignore.may_reinclude_under("a")


# (.dockerignore text, excluded directory, may an exception re-include something below it?)
REINCLUDE_CASES: list[tuple[str, str, bool]] = [
    ("a", "a", False),
    ("a\n!a/b.py", "a", True),
    ("a\n!a/b.py", "b", False),
    ("a\n!a/b.py", "a/x", False),
    ("a\n!a/b.py", "a/b.py", True),
    ("a\n!ab", "a", False),  # a prefix of the text but not of a path
    ("*\n!*/b.py", "a", True),  # any wildcard exception: every excluded directory is entered
    ("*\n!*/b.py", "x/y/z", True),
    ("*\n!c\n!*/b.py", "a", True),  # one wildcard exception is enough, whatever the others are
    ("*\n!*/b.py\n!c", "a", True),
    ("a\n!a/b/**", "a", True),
    ("a\n!a/b/**", "a/b", True),
    ("a\n!a/b/**", "a/c", False),
    ("a\n!a/b/*", "a/b", True),
    ("a\n!a/b/*", "a/b/c", False),
    ("x\n!a/*/**", "a", True),  # `/**` then `/*` cut: `a` is left, no wildcard
    ("x\n!a/*/**", "a/x", False),  # ...so BuildKit never enters a/x (see test_buildkit_cut_quirk)
    ("x\n!a/**/*", "q", True),  # `a/**` keeps a wildcard
    ("a\n!b\\*", "a", True),  # `\` counts as a wildcard character
    ("a\n!c^d", "a", True),  # so do `^` and `]`
    ("a\n!c]d", "a", True),
    ("node_modules\n!node_modules/keep.js", "node_modules", True),
    ("node_modules\n!node_modules/keep.js", "node_modules/sub", False),
    ("a\n!a/b\nc", "c", False),
    ("a\n!.", "a", False),
]


@pytest.mark.parametrize(("text", "directory", "expected"), REINCLUDE_CASES)
def test_may_reinclude_under(text: str, directory: str, expected: bool) -> None:
    assert DockerIgnore.parse(text).may_reinclude_under(directory) is expected


def test_buildkit_cut_quirk() -> None:
    # The matcher puts a/x/y back, but BuildKit's walker never opens a/x: the walk below must not either.
    ignore = DockerIgnore.parse("a/x\n!a/*/**")
    assert ignore.excluded("a/x")
    assert not ignore.excluded("a/x/y")
    assert not ignore.may_reinclude_under("a/x")
    assert walk(ignore, ["a/x/y", "a/z"]) == {"a/z"}


@pytest.mark.parametrize(
    ("text", "paths", "always", "kept"),
    [
        ("*", ["Dockerfile", ".dockerignore", "a"], (".dockerignore", "Dockerfile"), {"Dockerfile", ".dockerignore"}),
        # docs/build-context.md#files-that-are-always-sent: only the chosen Dockerfile is protected
        ("*", ["Dockerfile", "Dockerfile.alt"], ("Dockerfile.alt",), {"Dockerfile.alt"}),
        ("build", ["build/Dockerfile", "build/x"], ("build/Dockerfile",), {"build/Dockerfile"}),
        ("**/*.Dockerfile", ["a/app.Dockerfile", "a/b.Dockerfile"], ("./a/app.Dockerfile",), {"a/app.Dockerfile"}),
        ("*", ["a[1].Dockerfile", "a1.Dockerfile"], ("a[1].Dockerfile",), {"a[1].Dockerfile"}),
        ("*", ["x*", "xy"], ("x*",), {"x*"}),
        ("*", ["Dockerfile"], ("../Dockerfile",), set()),
        ("a", ["Dockerfile", "a"], ("Dockerfile",), {"Dockerfile"}),
    ],
)
def test_with_always_included(text: str, paths: list[str], always: tuple[str, ...], kept: set[str]) -> None:
    ignore = DockerIgnore.parse(text)
    protected = ignore.with_always_included(*always)
    assert {p for p in paths if not protected.excluded(p)} == kept
    assert all(p.exclusion and p.line == 0 for p in protected.patterns[len(ignore.patterns) :])


def test_with_always_included_adds_nothing_when_nothing_is_excluded() -> None:
    ignore = DockerIgnore.parse("*.md")
    assert ignore.with_always_included("Dockerfile", ".dockerignore") is ignore
    with pytest.raises(ValueError, match="relative"):
        ignore.with_always_included("/abs/Dockerfile")


def walk(ignore: DockerIgnore, files: list[str]) -> set[str]:
    """Files a BuildKit-style walk keeps from a tree given as file paths (directories are implied)."""
    tree: dict[str, set[str]] = {"": set()}
    for file in files:
        parts = file.split("/")
        for depth in range(1, len(parts) + 1):
            tree.setdefault("/".join(parts[: depth - 1]), set()).add("/".join(parts[:depth]))
    kept: set[str] = set()

    def visit(directory: str, parent_excluded: bool) -> None:
        for entry in sorted(tree.get(directory, ())):
            excluded = ignore.excluded(entry, parent_excluded=parent_excluded)
            if entry in tree:
                if not excluded or ignore.may_reinclude_under(entry):
                    visit(entry, excluded)
            elif not excluded:
                kept.add(entry)

    visit("", False)
    return kept


@pytest.mark.parametrize(
    ("text", "files", "kept"),
    [
        ("foo*\n!foo/bar2", ["bar", "foo/bar", "foo/bar2", "food"], {"bar", "foo/bar2"}),
        ("*\n!*/b.py", ["a/b.py", "a/c.py", "b.py", "x/y/b.py"], {"a/b.py"}),
        (
            "node_modules\n!node_modules/keep.js",
            ["node_modules/keep.js", "node_modules/a/b.js", "x"],
            {"node_modules/keep.js", "x"},
        ),
        (
            "**/__pycache__\n*.pyc\n!keep.pyc",
            ["p/__pycache__/m.pyc", "keep.pyc", "a.pyc", "p/m.py"],
            {"keep.pyc", "p/m.py"},
        ),
        (
            ".git\n.env*\n!.env.example",
            [".git/HEAD", ".env", ".env.local", ".env.example", "app.py"],
            {".env.example", "app.py"},
        ),
    ],
)
def test_walk_keeps_what_docker_keeps(text: str, files: list[str], kept: set[str]) -> None:
    assert walk(DockerIgnore.parse(text), files) == kept


def test_walk_never_enters_excluded_directory_without_exceptions() -> None:
    ignore = DockerIgnore.parse("node_modules\n**/*.log")
    asked: list[str] = []
    real = ignore.excluded

    class Spy(DockerIgnore):
        def excluded(self, path: str, *, parent_excluded: bool | None = None) -> bool:
            asked.append(path)
            return real(path, parent_excluded=parent_excluded)

    spy = Spy(ignore.patterns)
    kept = walk(spy, ["node_modules/a/b.js", "node_modules/c.js", "src/x.py", "src/y.log"])
    assert kept == {"src/x.py"}
    assert not any(p.startswith("node_modules/") for p in asked)


def test_parent_hint_without_exceptions_matches_full_evaluation() -> None:
    ignore = DockerIgnore.parse("build\n*.tmp\nsrc/*/gen")
    for path, parent in [("build/a", True), ("src/x/gen", False), ("a.tmp", False), ("src/x/gen/y", True)]:
        assert ignore.excluded(path, parent_excluded=parent) is True
    for path, parent in [("src/a.tmp", False), ("src/x/y", False)]:
        assert ignore.excluded(path, parent_excluded=parent) is False


def test_many_patterns_and_deep_paths() -> None:
    # more patterns than a regex has groups to spare, and a path deeper than Python's recursion limit
    texts = [f"d{i}" for i in range(300)] + ["!d299/keep"]
    ignore = DockerIgnore.from_patterns(texts)
    assert ignore.excluded("d0/x")
    assert ignore.excluded("d299/x")
    assert not ignore.excluded("d299/keep/x")
    assert not ignore.excluded("e")
    deep = "/".join(["d150"] + ["s"] * 3000)
    assert ignore.excluded(deep)
    assert not DockerIgnore.parse("x").excluded(deep)


def test_pattern_matches_only_the_path_itself() -> None:
    (pattern,) = DockerIgnore.parse("a/*").patterns
    assert pattern.matches("a/b")
    assert not pattern.matches("a/b/c")
    assert not pattern.matches("a")


# --- hostile files: a backtracking matcher took minutes on each of these; the timeouts catch a regression ----------


@pytest.mark.timeout(10)
def test_many_stars_against_a_long_name() -> None:
    ignore = DockerIgnore.parse("*a*a*a*a*a*a*a*a*b")
    assert not ignore.excluded("a" * 200)
    assert not ignore.excluded("d/" + "a" * 200)
    assert ignore.excluded("a" * 200 + "b")
    assert not ignore.patterns[0].matches("a" * 200)


@pytest.mark.timeout(10)
def test_chained_double_stars() -> None:
    ignore = DockerIgnore.parse("**/" * 20 + "b")
    assert not ignore.excluded("a/" * 100 + "c")
    assert ignore.excluded("a/" * 100 + "b")
    assert ignore.excluded("b")


@pytest.mark.timeout(5)
def test_six_stars_against_fifty_names() -> None:
    # about 0.05 s per name and pattern when backtracking: 11 s in all
    ignore = DockerIgnore.parse("\n".join("*?*?*?*?*?*?" + last for last in "bcde"))
    names = [f"{i:02d}" + "a" * 39 for i in range(50)]
    assert not any(ignore.excluded(name) for name in names)
    assert all(ignore.excluded(name + "e") for name in names)


@pytest.mark.timeout(10)
def test_hundred_thousand_literal_lines() -> None:
    lines = [f"dir{i}/file{i}.txt" for i in range(100_000)]
    lines += ["!dir5", "dir5/**/*.log", "!dir6/file6.txt", "dir8/file8.txt", "!dir8/file8.txt"]
    ignore = DockerIgnore.parse("\n".join(lines))
    assert ignore.excluded("dir1/file1.txt")
    assert ignore.excluded("dir99999/file99999.txt/below")
    assert not ignore.excluded("dir1/file2.txt")
    assert not ignore.excluded("dir5/file5.txt")  # a later exception on its parent wins
    assert ignore.excluded("dir5/x/y.log")  # ...and a later glob after that
    assert not ignore.excluded("dir6/file6.txt")
    assert not ignore.excluded("dir8/file8.txt")  # the same text again: its last line counts
    assert ignore.may_reinclude_under("dir6")
    assert not ignore.may_reinclude_under("dir7")
    assert sum(ignore.excluded(f"dir{i}/file{i}.txt") for i in range(0, 100_000, 97)) == 1_031
