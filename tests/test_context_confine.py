"""Nothing from outside the workspace or from `.git` reaches the archive: named paths, links, both layouts.

The tree is a checkout that kept its credentials: `.git/config` holds the `extraheader` line with the job's token.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sgp_action.errors import ContextError, ManifestError
from sgp_action.packaging.archive import BuildContextSpec, build_context, list_members
from sgp_action.packaging.manifest import load_manifest
from tests.support import CHECKOUT_TOKEN, keep_checkout_credentials

CONTEXT = {
    "root": "../..",
    "include_paths": ["agents/echo"],
    "dockerfile": "agents/echo/Dockerfile",
    "dockerignore": "agents/echo/.dockerignore",
}
FILES = {
    "work/repo/.git/HEAD": "ref: refs/heads/main\n",
    "work/repo/agents/echo/Dockerfile": "FROM python:3.12\n",
    "work/repo/agents/echo/.dockerignore": "*.log\n",
    "work/repo/agents/echo/project/acp.py": "print('hi')\n",
    "work/repo/lib/shared.py": "shared = 1\n",
    "work/neighbour/notes.txt": "another checkout\n",
    "outside/Dockerfile": "FROM attacker\n",
    "outside/secret.txt": "not in the workspace\n",
}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """`tmp/work/repo`: a repository with one agent, credentials kept; `tmp/outside` beside the workspace."""
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    repo = tmp_path / "work/repo"
    keep_checkout_credentials(repo)
    write_manifest(repo)
    return repo


def write_manifest(repo: Path, **context: Any) -> Path:
    data = {
        "build": {"context": {**CONTEXT, **context}},
        "agent": {"name": "echo-bot", "acp_type": "sync", "description": "echoes"},
    }
    path = repo / "agents/echo/manifest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def archive_bytes(path: Path) -> bytes:
    with gzip.open(path) as handle:
        return handle.read()


def link(repo: Path, rel: str, target: str) -> dict[str, Any]:
    """Make `repo/rel` a symbolic link to `target`; returns no extra inputs, so a case's setup can be one lambda."""
    path = repo / rel
    if path.exists():
        path.unlink()
    os.symlink(target, path)
    return {}


def _escaping_root(repo: Path) -> dict[str, Any]:
    return {
        "root": "../../..",
        "include_paths": ["repo/agents/echo"],
        "dockerfile": "repo/agents/echo/Dockerfile",
        "dockerignore": "repo/agents/echo/.dockerignore",
    }


# (case, set-up returning manifest overrides, the key named, where it resolves relative to tmp_path, the problem)
MANIFEST_CASES: list[tuple[str, Callable[[Path], dict[str, Any]], str, str, str]] = [
    (
        "dockerfile-etc-passwd",
        lambda repo: {"dockerfile": "../" * 12 + "etc/passwd"},
        "build.context.dockerfile",
        "/etc/passwd",
        "outside the workspace",
    ),
    (
        "dockerignore-git-config",
        lambda repo: {"dockerignore": ".git/config"},
        "build.context.dockerignore",
        "work/repo/.git/config",
        "inside a .git folder",
    ),
    (
        "dockerfile-link-out",
        lambda repo: link(repo, "agents/echo/Dockerfile", str(repo.parent.parent / "outside/Dockerfile")),
        "build.context.dockerfile",
        "outside/Dockerfile",
        "outside the workspace",
    ),
    (
        "dockerignore-link-into-git",
        lambda repo: link(repo, "agents/echo/.dockerignore", "../../.git/config"),
        "build.context.dockerignore",
        "work/repo/.git/config",
        "inside a .git folder",
    ),
    ("root-outside", _escaping_root, "build.context.root", "work", "outside the workspace"),
    (
        "root-is-git",
        lambda repo: {"root": "../../.git", "include_paths": [], "dockerfile": "config", "dockerignore": "HEAD"},
        "build.context.root",
        "work/repo/.git",
        "inside a .git folder",
    ),
    (
        "include-path-in-git",
        lambda repo: {"root": "../..", "include_paths": ["agents/echo", ".git"]},
        "build.context.include_paths[1]",
        "work/repo/.git",
        "inside a .git folder",
    ),
]


@pytest.mark.parametrize(
    ("setup", "key", "resolved", "problem"), [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES]
)
def test_manifest_paths_must_stay_in_the_workspace(
    checkout: Path, setup: Callable[[Path], dict[str, Any]], key: str, resolved: str, problem: str
) -> None:
    manifest = load_manifest(write_manifest(checkout, **setup(checkout)))
    with pytest.raises(ManifestError) as caught:
        BuildContextSpec.from_manifest(manifest)
    message = str(caught.value)
    where = resolved if resolved.startswith("/") else str(checkout.parent.parent.resolve() / resolved)
    assert f"`{key}` resolves to {where}, {problem}" in message, message
    assert str(manifest.path) in message


def test_backstop_in_the_walk(checkout: Path, tmp_path: Path) -> None:
    """A spec built by hand (no manifest check) is refused where the files are read."""
    for dockerfile, dockerignore in (("agents/echo/Dockerfile", ".git/config"), (".git/config", None)):
        spec = BuildContextSpec("manifest", checkout, ("agents/echo",), dockerfile, dockerignore, workspace=checkout)
        with pytest.raises(ContextError, match=r"\.git/config resolves to .*inside a \.git folder"):
            build_context(spec, tmp_path / "o.tgz")
    assert not (tmp_path / "o.tgz").exists()


@pytest.mark.parametrize("target", ["../../../.git", "../../../.git/config", "../../../../../outside"])
def test_followed_link_leaving_or_into_git_is_refused(checkout: Path, tmp_path: Path, target: str) -> None:
    link(checkout, "agents/echo/project/g", target)
    spec = BuildContextSpec.from_manifest(load_manifest(checkout / "agents/echo/manifest.yaml"), follow_symlinks=True)
    with pytest.raises(ContextError, match=rf"symlink agents/echo/project/g -> {target} resolves to "):
        build_context(spec, tmp_path / "o.tgz")
    assert not (tmp_path / "o.tgz").exists()
    # Not followed, the link is stored as a link: its target's content is never read.
    plain = BuildContextSpec.from_manifest(load_manifest(checkout / "agents/echo/manifest.yaml"))
    result = build_context(plain, tmp_path / "p.tgz")
    assert "agents/echo/project/g" in result.members
    assert b"extraheader" not in archive_bytes(result.path) and b"attacker" not in archive_bytes(result.path)


def test_links_inside_the_workspace_still_work(checkout: Path, tmp_path: Path) -> None:
    link(checkout, "agents/echo/Dockerfile", "../../lib/shared.py")
    link(checkout, "agents/echo/project/lib", "../../../lib")
    spec = BuildContextSpec.from_manifest(load_manifest(checkout / "agents/echo/manifest.yaml"), follow_symlinks=True)
    assert spec.workspace == checkout.resolve()
    result = build_context(spec, tmp_path / "o.tgz")
    assert "agents/echo/project/lib/shared.py" in result.members
    assert b"shared = 1" in archive_bytes(result.path)


def test_checkout_token_never_in_the_archive(checkout: Path, tmp_path: Path) -> None:
    link(checkout, "agents/echo/project/cfg", "../../../.git/config")  # stored as a link, not followed
    for layout in (
        BuildContextSpec.from_manifest(load_manifest(checkout / "agents/echo/manifest.yaml")),
        BuildContextSpec.plain(checkout, dockerfile="agents/echo/Dockerfile"),
    ):
        data = archive_bytes(build_context(layout, tmp_path / "o.tgz").path)
        assert CHECKOUT_TOKEN.encode() not in data and b"extraheader" not in data and b"refs/heads" not in data


# --- plain mode (`sgp-action context --root`) ----------------------------------------------------------------

PLAIN_CASES: list[tuple[str, Callable[[Path], tuple[Path, dict[str, Any]]], str]] = [
    (
        "dockerignore-git-config",
        lambda repo: (repo, {"dockerfile": "agents/echo/Dockerfile", "dockerignore": ".git/config"}),
        "--dockerignore .git/config",
    ),
    (
        "dockerfile-link-out",
        lambda repo: (repo / "agents/echo", link(repo, "agents/echo/Dockerfile", "../../../../outside/Dockerfile")),
        "--dockerfile Dockerfile",
    ),
    (
        "found-dockerignore-link-into-git",
        lambda repo: (repo / "agents/echo", link(repo, "agents/echo/.dockerignore", "../../.git/config")),
        "the dockerignore file .dockerignore",
    ),
    ("root-is-git", lambda repo: (repo / ".git", {"dockerfile": "config"}), "--root"),
]


@pytest.mark.parametrize(("setup", "named"), [c[1:] for c in PLAIN_CASES], ids=[c[0] for c in PLAIN_CASES])
def test_plain_mode_paths_must_stay_in_the_workspace(
    checkout: Path, setup: Callable[[Path], tuple[Path, dict[str, Any]]], named: str
) -> None:
    root, kwargs = setup(checkout)
    with pytest.raises(ContextError, match=rf"^{named} .*resolves to .*(outside the workspace|inside a \.git folder)"):
        BuildContextSpec.plain(root, **kwargs)


def test_plain_root_outside_a_named_workspace(checkout: Path) -> None:
    outside = checkout.parent.parent / "outside"
    with pytest.raises(ContextError, match=r"--root .* outside the workspace"):
        BuildContextSpec.plain(outside, workspace=checkout)
    assert list_members(BuildContextSpec.plain(outside)) == ["Dockerfile", "secret.txt"]  # its own bound otherwise
