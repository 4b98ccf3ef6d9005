"""Every citation of the project's own notes resolves, and nothing cites the notes the repository does not hold.

A citation is `docs/<name>.md#<anchor>` (or `README.md#<anchor>` / `SECURITY.md#<anchor>`) anywhere in the code,
the action, the examples, the tests, the benchmarks and the top-level documents; its anchor must be the GitHub slug
of one of the file's headings. Links between the files of `docs/` are checked the same way.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCANNED_DIRS = ("sgp_action", "examples", "tests", "bench")
SCANNED_FILES = ("action.yml", "README.md", "SECURITY.md")
TEXT_SUFFIXES = {".py", ".yml", ".yaml", ".md", ".toml", ".txt", ".cfg", ".sh", ".json", ""}
SELF = Path(__file__).resolve()

CITATION = re.compile(r"(?<![\w/.-])((?:docs/[\w.-]+|README|SECURITY)\.md)(?:#([\w-]+))?")
# Notes kept outside the repository, cited in the old style; `docs/sgp-api.md` is the project's own.
OLD_NOTES = ("product", "formats", "platforms", "seed-api-and-sdk")
LEGACY = re.compile(
    r"\b(?:" + "|".join(OLD_NOTES) + r")\.md\b"
    r"|(?<!docs/)\bsgp-api\.md\b"
    r"|\bT[1-9][0-9]?\b"  # trap ids T1..T99 (T0 is a test timestamp's name, not a trap)
    r"|(?<!RFC \d{4} )\bsections? \d+(?:\.\d+)*\b"
    r"|(?<![\w.])[ABC]\.\d+(?:\.\d+)*\b"  # parts of the old formats / platforms notes: A.3, B.1, C.3
)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
DOC_LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation except `-` and `_` removed, spaces to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps only its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor the headings of a Markdown file produce, with GitHub's `-1`, `-2` suffixes for repeats."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match is None:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def scanned_files() -> Iterator[Path]:
    """The text files whose comments and docstrings may cite the notes."""
    for name in SCANNED_FILES:
        path = ROOT / name
        if path.is_file():
            yield path
    for folder in SCANNED_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            parts = set(path.relative_to(ROOT).parts)
            if parts & {"__pycache__", ".venv", ".pytest_cache", ".hypothesis"} or not path.is_file():
                continue
            if path.suffix in TEXT_SUFFIXES and path.resolve() != SELF:
                yield path


def lines_of(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a text file (undecodable bytes replaced)."""
    yield from enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1)


def test_slug_rule() -> None:
    assert github_slug("Docker's dockerignore rules") == "dockers-dockerignore-rules"
    assert github_slug("Paging without a has-more flag") == "paging-without-a-has-more-flag"
    assert github_slug("manifest.yaml") == "manifestyaml"
    assert github_slug("Build cancel answers 202") == "build-cancel-answers-202"


def test_the_reference_notes_exist() -> None:
    for name in ("architecture", "sgp-api", "build-context", "runner", "emulator"):
        assert anchors(DOCS / f"{name}.md"), f"docs/{name}.md is missing or has no headings"


def test_every_citation_resolves() -> None:
    broken: list[str] = []
    count = 0
    cache: dict[Path, set[str]] = {}
    for path in scanned_files():
        for number, line in lines_of(path):
            for match in CITATION.finditer(line):
                target, anchor = ROOT / match.group(1), match.group(2)
                where = f"{path.relative_to(ROOT)}:{number}: {match.group(0)}"
                if match.group(1).startswith("docs/"):
                    count += 1
                if not target.is_file():
                    broken.append(f"{where}: no such file")
                elif anchor is not None and anchor not in cache.setdefault(target, anchors(target)):
                    broken.append(f"{where}: no heading with that anchor in {match.group(1)}")
    assert not broken, "citations that lead nowhere:\n" + "\n".join(broken)
    assert count > 0, "no docs/ citation found: is the scan looking in the right places?"


def test_links_between_the_notes_resolve() -> None:
    broken: list[str] = []
    for doc in sorted(DOCS.glob("*.md")):
        in_fence = False
        for number, line in lines_of(doc):
            if FENCE.match(line):
                in_fence = not in_fence
            if in_fence:
                continue
            for match in DOC_LINK.finditer(line):
                target_text, anchor = match.group(1), match.group(2)
                if "://" in target_text or (target_text and not target_text.endswith(".md")):
                    continue
                target = (doc.parent / target_text).resolve() if target_text else doc
                where = f"docs/{doc.name}:{number}: {match.group(0)}"
                if not target.is_file():
                    broken.append(f"{where}: no such file")
                elif anchor is not None and anchor not in anchors(target):
                    broken.append(f"{where}: no such heading")
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("text", "legacy"),
    [
        (f"({OLD_NOTES[0]}.md section 7)", True),
        ("sgp-api.md 2.1", True),
        ("docs/sgp-api.md#create-a-build", False),
        ("a retry could duplicate it (T16)", True),
        ("created_at=T0 + timedelta(minutes=1)", False),
        ("RFC 2046 section 5.1.1", False),
        ("2026-01-01T12:00:00Z", False),
        ("BuildKit's choice (A.3)", True),
        ("`a/b.py` under `*`", False),
    ],
)
def test_legacy_pattern(text: str, legacy: bool) -> None:
    assert (LEGACY.search(text) is not None) is legacy


def test_no_citation_of_notes_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in scanned_files()
        for number, line in lines_of(path)
        if LEGACY.search(line)
    ]
    assert not found, "cite docs/<file>.md#<heading> instead:\n" + "\n".join(found)


def test_every_module_of_the_action_is_in_the_architecture_table() -> None:
    """docs/architecture.md names every module outside the emulator (a row may name several: `run/doctor*.py`)."""
    table = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^|]*)` \|", table, flags=re.M) + re.findall(r"^\| `[^`]+`, `([^`]+)` \|", table, re.M)
    listed = [name for row in rows for name in re.findall(r"[\w/*]+\.py", row)]
    package = ROOT / "sgp_action"
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name != "__init__.py"
        and "emulator" not in path.parts
        and not any(fnmatch.fnmatch(str(path.relative_to(package)), name) for name in listed)
    ]
    assert not missing, f"add a row to docs/architecture.md's module list for: {missing}"
