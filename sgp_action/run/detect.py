"""Monorepos: which agents' build inputs changed between two commits (docs/architecture.md#commands, `detect`).

An agent is a folder holding a `manifest.yaml`. Its build inputs are what packaging reads
(docs/build-context.md#manifest-mode): the manifest, the `environments.yaml` beside it, each `include_paths` directory,
the Dockerfile and the dockerignore.
A manifest without `include_paths` ships its whole context root, so the whole root counts then.

Without a usable base (a branch's first push has an all-zero `before`; a shallow clone may lack the base commit)
every agent is listed: building too much is safe, missing a changed agent is not.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sgp_action.ci.report import md_code
from sgp_action.errors import InputError, ManifestError

if TYPE_CHECKING:
    from sgp_action.run.pipeline import RunState

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.yaml"
#: Folders never searched for manifests: VCS data and dependency trees hold vendored copies, not agents.
SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv"})
#: Changed paths named per agent in the summary and the log.
SHOWN_PATHS = 5


@dataclass(frozen=True)
class Agent:
    """One agent of the repository: its manifest (repo-relative), its name and its build inputs (repo-relative)."""

    manifest: str
    name: str
    files: frozenset[str]
    folders: tuple[str, ...]

    def touched_by(self, path: str) -> bool:
        """True when the repo-relative `path` is one of this agent's build inputs."""
        return path in self.files or any(path.startswith(folder + "/") for folder in self.folders)

    def as_matrix_entry(self) -> dict[str, str]:
        """The job-matrix entry: `{"manifest": ..., "agent": ...}`."""
        return {"manifest": self.manifest, "agent": self.name}


def _git(repo_root: Path, *args: str) -> str:
    """Run git in `repo_root`; raises InputError naming the command when it fails."""
    try:
        done = subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise InputError("detect needs git on the PATH") from None
    except subprocess.CalledProcessError as exc:
        raise InputError(f"git {' '.join(args)} failed in {repo_root}: {exc.stderr.strip()}") from None
    return done.stdout


def repository_root(start: Path) -> Path:
    """The top of the git work tree holding `start` (paths from `git diff` are relative to it)."""
    return Path(_git(start, "rev-parse", "--show-toplevel").strip()).resolve()


def find_manifests(repo_root: Path) -> list[Path]:
    """Every `manifest.yaml` under `repo_root`, skipping SKIPPED_DIRS, sorted."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(repo_root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        if MANIFEST_NAME in files:
            found.append(Path(folder) / MANIFEST_NAME)
    return sorted(found)


def _relative(path: Path, repo_root: Path) -> str | None:
    """`path` relative to the repository as git writes it, or None when it lies outside."""
    try:
        return PurePosixPath(path.resolve().relative_to(repo_root).as_posix()).as_posix()
    except ValueError:
        return None


def load_agent(manifest_path: Path, repo_root: Path) -> Agent:
    """Read one manifest and work out its build inputs; raises ManifestError for an invalid one."""
    from sgp_action.packaging.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    root = manifest.context_root
    files = [manifest_path, manifest.environments_path, root / manifest.dockerfile]
    if manifest.dockerignore:
        files.append(root / manifest.dockerignore)
    folders = [root / rel for rel in manifest.include_paths] or [root]
    rel_files = {rel for rel in (_relative(p, repo_root) for p in files) if rel is not None}
    rel_folders = tuple(rel for rel in (_relative(p, repo_root) for p in folders) if rel is not None)
    # A folder equal to the repository root relativises to "."; every path lies under it.
    if "." in rel_folders:
        rel_folders = ("",)
    return Agent(
        manifest=_relative(manifest_path, repo_root) or str(manifest_path),
        name=manifest.agent_name,
        files=frozenset(rel_files),
        folders=tuple(f.rstrip("/") for f in rel_folders),
    )


def repository_agents(start: Path) -> frozenset[str]:
    """The names of every valid agent manifest in the repository holding `start` (or under it, without git)."""
    try:
        root = repository_root(start)
    except InputError:
        root = start.resolve()
    return frozenset(agent.name for agent in _load_agents(root))


def _load_agents(repo_root: Path) -> list[Agent]:
    """Every valid agent of the repository; an invalid manifest is skipped with a warning, never fatal."""
    agents: list[Agent] = []
    for path in find_manifests(repo_root):
        try:
            agents.append(load_agent(path, repo_root))
        except ManifestError as exc:
            log.warning("skipping %s: %s", _relative(path, repo_root), exc)
    return agents


def _usable_base(repo_root: Path, base: str | None) -> bool:
    """False for a missing or all-zero base, or one this clone does not have (shallow checkout)."""
    if not base or set(base) == {"0"}:
        return False
    check = subprocess.run(
        ["git", "cat-file", "-e", f"{base}^{{commit}}"], cwd=repo_root, capture_output=True, check=False
    )
    if check.returncode != 0:
        log.warning("base commit %s is not in this clone (use fetch-depth: 0); listing every agent", base)
        return False
    return True


def detect_changes(repo_root: Path, base: str | None, head: str | None) -> list[tuple[Agent, list[str] | None]]:
    """Each agent whose build inputs changed between `base` and `head`, with the changed paths that touched it
    (None: no usable base, so every agent is listed). Sorted by manifest path, then name."""
    repo_root = repository_root(repo_root)
    agents = _load_agents(repo_root)
    found: list[tuple[Agent, list[str] | None]] = [(agent, None) for agent in agents]
    if _usable_base(repo_root, base):
        diff = _git(repo_root, "diff", "--name-only", "-z", base or "", head or "HEAD", "--")
        changed = [p for p in diff.split("\0") if p]
        touched = [(a, [p for p in changed if a.touched_by(p)]) for a in agents]
        found = [(agent, paths) for agent, paths in touched if paths]
    return sorted(found, key=lambda item: (item[0].manifest, item[0].name))


def changed_agents(repo_root: Path, base: str | None, head: str | None) -> list[dict[str, str]]:
    """The agents whose build inputs changed between `base` and `head` (every agent without a usable base).

    Returns `[{"manifest": <repo-relative path>, "agent": <agent name>}]` sorted by manifest path.
    """
    return [agent.as_matrix_entry() for agent, _ in detect_changes(repo_root, base, head)]


def summary_markdown(found: list[tuple[Agent, list[str] | None]]) -> str:
    """The detect section of the job summary: each agent found and why (the changed paths that touched it)."""
    lines = [f"#### Changed agents: {len(found)}", ""]
    if not found:
        return "\n".join([*lines, "No agent's build inputs changed: nothing to build.", ""])
    lines += ["| Agent | Manifest | Why |", "| --- | --- | --- |"]
    for agent, paths in found:
        if paths is None:
            why = "no usable base commit (a first push, or a shallow clone): every agent is listed"
        else:
            shown = ", ".join(md_code(path) for path in paths[:SHOWN_PATHS])
            more = f" and {len(paths) - SHOWN_PATHS} more" if len(paths) > SHOWN_PATHS else ""
            why = f"changed: {shown}{more}"
        lines.append(f"| {md_code(agent.name)} | {md_code(agent.manifest)} | {why} |")
    return "\n".join(lines) + "\n"


def run(ctx: RunState) -> None:
    """`command: detect`: base and head from the event; the JSON matrix goes to the `matrix` output."""
    event = ctx.event
    head = event.head_sha or event.sha or "HEAD"
    found = detect_changes(ctx.settings.working_directory, event.base_sha or None, head)
    matrix = [agent.as_matrix_entry() for agent, _ in found]
    ctx.runner.set_output("matrix", json.dumps(matrix))
    for agent, paths in found:
        why = "no usable base commit" if paths is None else f"changed: {', '.join(paths[:SHOWN_PATHS])}"
        ctx.runner.info(f"Changed agent {agent.name} ({agent.manifest}): {why}")
    names = ", ".join(entry["agent"] for entry in matrix) or "none"
    ctx.runner.info(f"Changed agents: {names}")
    ctx.runner.append_summary(summary_markdown(found))
    ctx.report.result = "success"
