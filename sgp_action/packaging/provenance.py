"""Git provenance sent with every build: `source_commit`, `source_ref`, `source_repo`, `source_subpath`, `source_dirty`
(docs/build-context.md#provenance).

The caller passes what the event payload knows (on pull requests the head SHA comes from the payload, never from the
work tree, which holds a merge commit); the rest is read with `git` subprocess calls. Outside a git repository, or
without a `git` executable, the fields are None. Remote URLs lose their credentials: an `https://x-access-token:...@`
remote must never reach the API.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Provenance", "collect_provenance", "find_git_root", "normalise_ref", "normalise_repo_url"]

GIT_TIMEOUT = 30.0
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")


@dataclass(frozen=True)
class Provenance:
    """Where a build context came from; None where it is not known."""

    source_commit: str | None = None
    source_ref: str | None = None
    source_repo: str | None = None
    source_subpath: str | None = None
    source_dirty: bool | None = None

    def as_fields(self) -> dict[str, str | bool | None]:
        """The five fields by their API names."""
        return {
            "source_commit": self.source_commit,
            "source_ref": self.source_ref,
            "source_repo": self.source_repo,
            "source_subpath": self.source_subpath,
            "source_dirty": self.source_dirty,
        }


def find_git_root(path: Path) -> Path | None:
    """The nearest folder at or above `path` holding a `.git` entry (a directory, or a file in worktrees and
    submodules), else None. No subprocess: the context walker calls it for every build."""
    current = Path(path).resolve()
    for folder in (current, *current.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return None


def normalise_repo_url(url: str | None) -> str | None:
    """`host[:port]/path` without scheme, credentials, query or `.git` suffix; None for local paths and junk.

    `https://user:token@GitHub.com/o/r.git` and `git@github.com:o/r.git` both give `github.com/o/r`.
    """
    if not url or not url.strip():
        return None
    url = url.strip()
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "file" or not parts.hostname:
            return None
        host = parts.hostname.lower()
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is not None:
            host = f"{host}:{port}"
        path = parts.path
    else:
        match = _SCP_LIKE.match(url)
        if match is None or "/" in match.group("host"):
            return None
        host, path = match.group("host").lower(), match.group("path")
    path = path.strip("/").removesuffix(".git").strip("/")
    return f"{host}/{path}" if path else host


def normalise_ref(ref: str | None) -> str | None:
    """A branch or tag name: `refs/heads/` and `refs/tags/` are dropped, other refs are kept whole."""
    if not ref or not ref.strip():
        return None
    ref = ref.strip()
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _git(top: Path, *args: str) -> str | None:
    """Output of `git ARGS` in `top` (stripped), or None when git fails or is missing."""
    # safe.directory=*: a checkout owned by another uid (containers) makes git refuse even read-only queries.
    command = ["git", "-c", "safe.directory=*", "-C", str(top), *args]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=GIT_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("git %s failed: %s", " ".join(args), exc)
        return None
    if done.returncode != 0:
        log.debug("git %s exited %d: %s", " ".join(args), done.returncode, done.stderr.strip())
        return None
    return done.stdout.strip()


def head_commit(path: Path) -> str | None:
    """The commit checked out in the git work tree holding `path`, or None outside one."""
    top = find_git_root(path)
    return _git(top, "rev-parse", "--verify", "-q", "HEAD^{commit}") if top is not None else None


def collect_provenance(
    path: Path,
    *,
    commit: str | None = None,
    ref: str | None = None,
    repo: str | None = None,
) -> Provenance:
    """Provenance of the folder `path` (its position in the repository is `source_subpath`).

    `commit`, `ref` and `repo` come from the event payload and win over the work tree (the PR head SHA, the PR's
    head branch, the repository's clone URL). Without a git repository every field is None, overrides included
    for dirty and subpath; the overrides are still reported.
    """
    top = find_git_root(path)
    if top is None or _git(top, "rev-parse", "--git-dir") is None:
        log.debug("%s is not in a git work tree; provenance limited to the event payload", path)
        return Provenance(
            source_commit=commit or None, source_ref=normalise_ref(ref), source_repo=normalise_repo_url(repo)
        )
    head = _git(top, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    if not ref:
        ref = _git(top, "symbolic-ref", "-q", "--short", "HEAD") or _git(
            top, "describe", "--tags", "--exact-match", "HEAD"
        )
    if not repo:
        repo = _git(top, "remote", "get-url", "origin")
    status = _git(top, "status", "--porcelain", "--untracked-files=normal")
    relative = Path(path).resolve().relative_to(top).as_posix()
    return Provenance(
        source_commit=commit or head or None,
        source_ref=normalise_ref(ref),
        source_repo=normalise_repo_url(repo),
        source_subpath=relative,
        source_dirty=None if status is None else bool(status),
    )
