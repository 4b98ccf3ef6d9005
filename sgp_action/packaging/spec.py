"""What a build context holds: `BuildContextSpec`, built from a manifest or from Docker's plain layout.

Its own module because both the walk (`sgp_action.packaging.walk`, which files) and the archive writer
(`sgp_action.packaging.archive`) read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sgp_action.errors import ContextError, ManifestError
from sgp_action.packaging.confine import CONFINE_HINT, resolve_confined, workspace_bound

if TYPE_CHECKING:
    from sgp_action.packaging.manifest import Manifest


@dataclass(frozen=True)
class BuildContextSpec:
    """What to package. Build it with `from_manifest` or `plain`; paths are absolute, relative ones `/`-separated.

    `workspace` is the real folder every path read for the archive must resolve into (`sgp_action.packaging.confine`).
    """

    mode: str
    root: Path
    include_paths: tuple[str, ...]
    dockerfile: str
    dockerignore: str | None
    follow_symlinks: bool = False
    workspace: Path | None = None

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, follow_symlinks: bool = False, workspace: Path | None = None
    ) -> BuildContextSpec:
        """The agentex layout of a validated manifest (root, include paths, Dockerfile and dockerignore).

        Each path the manifest names must resolve inside `workspace` (by default `workspace_bound` of the
        manifest's folder) and outside `.git`; ManifestError names the key and the resolved path otherwise.
        """
        root = manifest.context_root.resolve()
        bound = os.path.realpath(workspace or workspace_bound(manifest.directory))
        named = [("build.context.root", root)]
        named += [(f"build.context.include_paths[{i}]", root / rel) for i, rel in enumerate(manifest.include_paths)]
        named.append(("build.context.dockerfile", root / manifest.dockerfile))
        if manifest.dockerignore is not None:
            named.append(("build.context.dockerignore", root / manifest.dockerignore))
        for key, path in named:
            why = resolve_confined(path, bound)[1]
            if why:
                raise ManifestError(f"{manifest.path}: `{key}` {why}; {CONFINE_HINT}")
        return cls(
            "manifest",
            root,
            manifest.include_paths,
            manifest.dockerfile,
            manifest.dockerignore,
            follow_symlinks,
            Path(bound),
        )

    @classmethod
    def plain(
        cls,
        root: Path,
        dockerfile: str = "Dockerfile",
        dockerignore: str | None = None,
        follow_symlinks: bool = False,
        workspace: Path | None = None,
    ) -> BuildContextSpec:
        """Docker's own layout: everything under `root`. Without `dockerignore`, BuildKit's choice
        (docs/build-context.md#files-that-are-always-sent):
        `<dockerfile>.dockerignore` when it exists, else `.dockerignore` at the root when it exists.

        The root, the Dockerfile and the dockerignore must resolve inside `workspace` (by default `workspace_bound`
        of `root`) and outside `.git`.
        """
        root = Path(root).resolve()
        if not root.is_dir():
            raise ContextError(f"context root {root} is not a directory")
        bound = os.path.realpath(workspace or workspace_bound(root))
        _confine(root, bound, "--root", str(root))
        dockerfile = _inside_root(root, dockerfile, "--dockerfile")
        if not os.path.lexists(root / dockerfile):
            raise ContextError(f"Dockerfile {root / dockerfile} not found; pass --dockerfile relative to {root}")
        _confine(root / dockerfile, bound, "--dockerfile", dockerfile)
        flag = "--dockerignore"
        if dockerignore is not None:
            dockerignore = _inside_root(root, dockerignore, flag)
            if not (root / dockerignore).is_file():
                raise ContextError(f"dockerignore file {root / dockerignore} not found")
        elif (root / f"{dockerfile}.dockerignore").is_file():
            dockerignore, flag = f"{dockerfile}.dockerignore", "the dockerignore file"
        elif (root / ".dockerignore").is_file():
            dockerignore, flag = ".dockerignore", "the dockerignore file"
        if dockerignore is not None:
            _confine(root / dockerignore, bound, flag, dockerignore)
        return cls("plain", root, (".",), dockerfile, dockerignore, follow_symlinks, Path(bound))


def _inside_root(root: Path, rel: str, flag: str) -> str:
    clean = os.path.normpath(rel).replace(os.sep, "/")
    if os.path.isabs(rel) or clean == ".." or clean.startswith("../") or clean == ".":
        raise ContextError(f"{flag} {rel!r} must name a file inside the context root {root}, relative to it")
    return clean


def _confine(path: Path, bound: str, flag: str, given: str) -> None:
    why = resolve_confined(path, bound)[1]
    if why:
        raise ContextError(f"{flag} {given} {why}; {CONFINE_HINT}")
