"""Git provenance: a real repository, credentials stripped from remotes, payload overrides, no git at all."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sgp_action.packaging.provenance import (
    Provenance,
    collect_provenance,
    find_git_root,
    head_commit,
    normalise_ref,
    normalise_repo_url,
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    if shutil.which("git") is None:
        pytest.fail("git is needed by this test")
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env={**os.environ, **GIT_ENV}
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "agents/echo").mkdir(parents=True)
    (root / "agents/echo/manifest.yaml").write_text("agent: {}\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    git(root, "remote", "add", "origin", "https://x-access-token:ghs_secret@GitHub.com/acme/agents.git")
    return root


def test_work_tree(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    found = collect_provenance(repo / "agents/echo")
    assert found == Provenance(
        source_commit=head,
        source_ref="main",
        source_repo="github.com/acme/agents",
        source_subpath="agents/echo",
        source_dirty=False,
    )
    assert "ghs_secret" not in str(found.as_fields())
    assert collect_provenance(repo).source_subpath == "."


@pytest.mark.parametrize(
    "change",
    [
        lambda repo: (repo / "agents/echo/manifest.yaml").write_text("agent: {name: x}\n"),
        lambda repo: (repo / "untracked.txt").write_text("new\n"),
    ],
    ids=["modified", "untracked"],
)
def test_dirty(repo: Path, change: Callable[[Path], object]) -> None:
    change(repo)
    assert collect_provenance(repo).source_dirty is True


def test_ignored_files_do_not_make_it_dirty(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.tmp\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    (repo / "scratch.tmp").write_text("x")
    assert collect_provenance(repo).source_dirty is False


def test_tag_and_detached_head(repo: Path) -> None:
    git(repo, "tag", "v1.2.0")
    git(repo, "checkout", "-q", "--detach", "HEAD")
    assert collect_provenance(repo).source_ref == "v1.2.0"
    (repo / "f").write_text("x")
    git(repo, "add", "f")
    git(repo, "commit", "-q", "-m", "second")
    detached = collect_provenance(repo)
    assert detached.source_ref is None and detached.source_commit == git(repo, "rev-parse", "HEAD")


def test_payload_overrides_win(repo: Path) -> None:
    found = collect_provenance(
        repo / "agents/echo",
        commit="a" * 40,
        ref="refs/heads/feature/x",
        repo="https://gitea.example:3000/acme/agents",
    )
    assert found.source_commit == "a" * 40
    assert found.source_ref == "feature/x"
    assert found.source_repo == "gitea.example:3000/acme/agents"
    assert found.source_subpath == "agents/echo" and found.source_dirty is False


def test_no_remote(repo: Path) -> None:
    git(repo, "remote", "remove", "origin")
    assert collect_provenance(repo).source_repo is None


def test_outside_git(tmp_path: Path) -> None:
    assert find_git_root(tmp_path) is None
    assert collect_provenance(tmp_path) == Provenance()
    assert collect_provenance(tmp_path, commit="b" * 40, ref="refs/tags/v1") == Provenance(
        source_commit="b" * 40, source_ref="v1"
    )


def test_without_a_git_executable(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "no-bin-here"))
    assert collect_provenance(repo, commit="c" * 40) == Provenance(source_commit="c" * 40)


def test_find_git_root_accepts_a_git_file(tmp_path: Path) -> None:
    (tmp_path / "sub/deeper").mkdir(parents=True)
    (tmp_path / "sub/.git").write_text("gitdir: ../.git/worktrees/sub\n")  # worktrees and submodules
    assert find_git_root(tmp_path / "sub/deeper") == (tmp_path / "sub").resolve()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/agents.git", "github.com/acme/agents"),
        ("https://user:pass@GitHub.com/acme/agents/", "github.com/acme/agents"),
        ("http://token@gitea.local:3000/acme/agents.git?x=1#frag", "gitea.local:3000/acme/agents"),
        ("git@github.com:acme/agents.git", "github.com/acme/agents"),
        ("github.com:acme/agents", "github.com/acme/agents"),
        ("ssh://git@git.example.com:2222/acme/agents.git", "git.example.com:2222/acme/agents"),
        ("git://git.example.com/acme/agents", "git.example.com/acme/agents"),
        ("https://forge.example", "forge.example"),
        ("/srv/git/agents.git", None),
        ("file:///srv/git/agents.git", None),
        ("../agents", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_repo_url(url: str | None, expected: str | None) -> None:
    assert normalise_repo_url(url) == expected


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("refs/heads/main", "main"),
        ("refs/tags/v1.0", "v1.0"),
        ("refs/pull/12/merge", "refs/pull/12/merge"),
        ("feature/x", "feature/x"),
        ("  ", None),
        (None, None),
    ],
)
def test_normalise_ref(ref: str | None, expected: str | None) -> None:
    assert normalise_ref(ref) == expected


def test_head_commit(repo: Path, tmp_path: Path) -> None:
    assert head_commit(repo) == git(repo, "rev-parse", "HEAD")
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert head_commit(outside) is None
