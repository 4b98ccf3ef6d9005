"""The workspace bound and the confinement rule: which folder packaged paths may not leave, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sgp_action.confine import confinement_problem, is_within, workspace_bound


def test_bound_is_the_nearest_repository(tmp_path: Path) -> None:
    (tmp_path / "repo/.git").mkdir(parents=True)
    (tmp_path / "repo/agents/echo").mkdir(parents=True)
    assert workspace_bound(tmp_path / "repo/agents/echo") == (tmp_path / "repo").resolve()
    # A worktree or submodule has a `.git` file, not a folder.
    (tmp_path / "repo/agents/echo/.git").write_text("gitdir: ../../.git/modules/echo\n")
    assert workspace_bound(tmp_path / "repo/agents/echo") == (tmp_path / "repo/agents/echo").resolve()


def test_bound_without_a_repository(tmp_path: Path) -> None:
    (tmp_path / "ws/agents/echo").mkdir(parents=True)
    start = tmp_path / "ws/agents/echo"
    assert workspace_bound(start) == start.resolve()
    assert workspace_bound(start, str(tmp_path / "ws")) == (tmp_path / "ws").resolve()
    assert workspace_bound(start, "") == start.resolve()
    # A GITHUB_WORKSPACE that does not hold the start is no bound for it.
    (tmp_path / "other").mkdir()
    assert workspace_bound(start, str(tmp_path / "other")) == start.resolve()


def test_repository_above_the_runner_workspace_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "runner/work/agent").mkdir(parents=True)
    start = tmp_path / "runner/work/agent"
    assert workspace_bound(start) == tmp_path.resolve()
    assert workspace_bound(start, str(tmp_path / "runner/work")) == (tmp_path / "runner/work").resolve()


def test_bound_is_a_real_path(tmp_path: Path) -> None:
    (tmp_path / "real/.git").mkdir(parents=True)
    os.symlink("real", tmp_path / "alias")
    assert workspace_bound(tmp_path / "alias") == (tmp_path / "real").resolve()


@pytest.mark.parametrize(
    ("real", "problem"),
    [
        ("/w/repo", None),
        ("/w/repo/a/b.txt", None),
        ("/w/repo/.github/x", None),
        ("/w/repo/a.git/x", None),
        ("/w/repo-evil/x", "outside the workspace /w/repo"),
        ("/w", "outside the workspace /w/repo"),
        ("/etc/passwd", "outside the workspace /w/repo"),
        ("/w/repo/.git", "inside a .git folder"),
        ("/w/repo/.git/config", "inside a .git folder"),
        ("/w/repo/sub/.git/HEAD", "inside a .git folder"),
        ("/w/repo/.GIT/config", "inside a .git folder"),
    ],
)
def test_confinement_problem(real: str, problem: str | None) -> None:
    found = confinement_problem(real, "/w/repo")
    assert found is None if problem is None else (found is not None and found.startswith(problem))


def test_is_within_compares_components() -> None:
    assert is_within("/a/b", "/a") and is_within("/a", "/a") and is_within("/a/b", "/")
    assert not is_within("/ab", "/a") and not is_within("/", "/a")
