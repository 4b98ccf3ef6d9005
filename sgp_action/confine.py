"""Keeping what is packaged inside the workspace and out of `.git`.

A manifest arrives with the code under review, so a pull request chooses the paths the action reads: it can name
`../../../../etc/passwd` as its Dockerfile, the checkout's `.git/config` (which holds the job's token when the checkout
keeps its credentials) as its dockerignore, or commit a link to either. Every path read for the archive is therefore
resolved, following every link on the way, and must land inside the workspace bound and outside any `.git` folder
(or `.git` file, as worktrees and submodules have).

The bound (`workspace_bound`) is the git repository holding the starting folder (the nearest folder at or above it
with a `.git`); without one, `GITHUB_WORKSPACE` when it holds the starting folder, else the starting folder itself.
A repository found above `GITHUB_WORKSPACE` is not a bound: the runner's own folders are not part of the checkout.
The action starts from its `working-directory`; `sgp-action context` from the current directory when that holds the
manifest's folder (or `--root`), else from that folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONFINE_HINT", "confinement_problem", "is_within", "resolve_confined", "workspace_bound"]

CONFINE_HINT = "name a path inside the workspace and outside .git (a link counts by where it points)"


def is_within(path: str, folder: str) -> bool:
    """Whether the absolute, normalised `path` is `folder` or below it (by path components, not by prefix)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def workspace_bound(start: Path, github_workspace: str | None = None) -> Path:
    """The real folder nothing packaged may leave, for work starting in `start` (see the module docstring).

    `github_workspace` is the runner's `GITHUB_WORKSPACE` (None or empty outside a runner).
    """
    real = os.path.realpath(start)
    workspace = os.path.realpath(github_workspace) if github_workspace else None
    if workspace is not None and not is_within(real, workspace):
        workspace = None
    folder = real
    while True:
        if os.path.lexists(os.path.join(folder, ".git")):
            return Path(folder)
        parent = os.path.dirname(folder)
        if folder == workspace or parent == folder:
            return Path(workspace or real)
        folder = parent


def confinement_problem(real: str, bound: str) -> str | None:
    """Why the resolved path `real` must not be read for the archive, or None when it may be.

    `bound` is a real path (`workspace_bound`). `.git` is compared without case: on a case-insensitive disk
    `.GIT/config` is the same file.
    """
    if not is_within(real, bound):
        return f"outside the workspace {bound}"
    rest = real[len(bound) :].split(os.sep)
    if any(part.casefold() == ".git" for part in rest):
        return "inside a .git folder, which can hold the checkout's token"
    return None


def resolve_confined(path: str | Path, bound: str) -> tuple[str, str | None]:
    """(`path` resolved with every link followed, None) when it may be read; else (the real path, "resolves to
    <real path>, <why not>") for the caller's error message."""
    real = os.path.realpath(path)
    problem = confinement_problem(real, bound)
    return real, None if problem is None else f"resolves to {real}, {problem}"
