"""Which files a build context holds: the walk of the context root and its ignore rules
(docs/build-context.md#manifest-mode).

Two layouts (`sgp_action.packaging.spec.BuildContextSpec`). Manifest mode (the agentex layout): the archive root is
`build.context.root`, only the `include_paths` directories are walked (at their paths relative to the root), and the
manifest's Dockerfile and dockerignore are stored at the root as `Dockerfile` and `.dockerignore`; a file is left out
when Docker's `.dockerignore` rules exclude it **or** when the agentex CLI's basename patterns would
(`shutil.ignore_patterns`: each line, text after `#` dropped and trimmed, fnmatch'ed against every entry's base
name). Plain mode: the whole root with exactly Docker's rules, the chosen Dockerfile and `.dockerignore` always sent
at their own paths.

`.git` is never walked; symlinks are stored as links unless followed (only to targets inside the workspace and
outside `.git`, `sgp_action.packaging.confine`); sockets, FIFOs and devices are skipped. Files found by walking a folder
without following links cannot leave it, so only named files and followed links are resolved and checked.
Excluded folders are not walked unless a `!` exception could re-include something below them. Members come out
sorted byte-lexically, directories ending with `/` (each follows its parent).
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from sgp_action.errors import ContextError
from sgp_action.packaging.confine import CONFINE_HINT, resolve_confined
from sgp_action.packaging.dockerignore import DockerIgnore

if TYPE_CHECKING:
    from sgp_action.packaging.spec import BuildContextSpec

log = logging.getLogger(__name__)

__all__ = ["Member", "Walker", "cli_ignore_patterns", "list_members"]


class Member(NamedTuple):
    """One archive entry: `name` relative to the archive root without a trailing `/`; `kind` is file/dir/symlink.

    A named tuple rather than a frozen dataclass: one is made per file, and a tuple is made several times faster.
    """

    name: str
    kind: str
    mode: int
    size: int = 0
    source: str | None = None
    target: str = ""

    @property
    def sort_key(self) -> bytes:
        """Byte-lexical order of the names as stored (directories with their trailing `/`)."""
        return (self.name + "/" if self.kind == "dir" else self.name).encode("utf-8", "surrogateescape")


def cli_ignore_patterns(text: str) -> tuple[str, ...]:
    """The agentex CLI's reading of a dockerignore file (docs/build-context.md#the-agentex-clis-exclusions): text after
    `#` dropped, trimmed."""
    return tuple(p for p in (line.split("#", 1)[0].strip() for line in text.splitlines()) if p)


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ContextError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


class Walker:
    """Collects the members of a spec; see the module docstring for the rules.

    `check` is called before each folder is read (a cancellation point: whatever it raises ends the walk).
    """

    def __init__(self, spec: BuildContextSpec, check: Callable[[], None] | None = None) -> None:
        self.spec = spec
        self.check = check or _no_check
        self.root = str(spec.root)
        self.bound = os.path.realpath(spec.workspace or spec.root)
        self._confine(self.root, "the context root")
        text, source = "", ".dockerignore"
        if spec.dockerignore:
            source = str(spec.root / spec.dockerignore)
            text = _read_text(self._confine(source, f"the dockerignore file {spec.dockerignore}"), "dockerignore")
        docker = DockerIgnore.parse(text, source=source)
        manifest = spec.mode == "manifest"
        always = (
            ("Dockerfile", ".dockerignore") if manifest else (spec.dockerfile, spec.dockerignore or ".dockerignore")
        )
        self.docker = docker.with_always_included(*always)
        cli = cli_ignore_patterns(text) if manifest else ()
        self.cli = re.compile("|".join(fnmatch.translate(p) for p in cli)).match if cli else None
        self.reserved = frozenset(always) if manifest else frozenset()
        self.includes = frozenset(spec.include_paths)
        self.ancestors = frozenset(
            "/".join(parts[:i]) for parts in (p.split("/") for p in self.includes) for i in range(1, len(parts))
        )

    def walk(self) -> list[Member]:
        """The members to archive, in archive order."""
        return list(self.iter_members())

    def iter_members(self) -> Iterator[Member]:
        """The members in archive order, each as soon as the walk reaches it (memory flat in the member count).

        Each folder's entries are sorted by their stored names (folders with their trailing `/`) and folders are
        walked depth-first, which is the byte-lexical order of the whole paths. A folder's entry comes before its
        contents but only once something below it is kept (or it is itself in scope and not excluded).
        A file's mode and size are read when the archive opens it (0 here, except the manifest's root files).
        """
        spec = self.spec
        root_files: dict[str, Member] = {}
        if spec.mode == "manifest":
            root_files["Dockerfile"] = self._root_file("Dockerfile", spec.dockerfile)
            if spec.dockerignore:
                root_files[".dockerignore"] = self._root_file(".dockerignore", spec.dockerignore)
        seen = frozenset({os.path.realpath(self.root)}) if spec.follow_symlinks else frozenset()
        yield from self._walk(self.root, "", False, "." in self.includes, seen, root_files)

    def _root_file(self, name: str, rel: str) -> Member:
        # The agentex CLI copies these two files' content to the archive root, whatever they are links to.
        real = self._confine(os.path.join(self.root, rel), f"the {name} {rel}")
        info = _stat(real, rel)
        return Member(name, "file", stat.S_IMODE(info.st_mode), info.st_size, real)

    def _confine(self, path: str, what: str) -> str:
        """The real path of `path`, read for the archive; ContextError when it resolves outside the bound."""
        real, why = resolve_confined(path, self.bound)
        if why:
            raise ContextError(f"{what} {why}; {CONFINE_HINT}")
        return real

    def _walk(
        self,
        path: str,
        rel: str,
        excluded: bool,
        in_scope: bool,
        seen: frozenset[str],
        root_files: dict[str, Member] | None = None,
    ) -> Iterator[Member]:
        """The members below the directory `path` (archive path `rel`), in archive order."""
        self.check()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            raise ContextError(f"cannot read the folder {rel or '.'} ({path}): {exc.strerror or exc}") from None
        found: list[tuple[bytes, Member | _Folder | _Started]] = [
            (_key(m.name), m) for m in (root_files or {}).values()
        ]
        # Bound once per folder: the loop below runs once per entry of the tree.
        includes, ancestors, cli, is_excluded = self.includes, self.ancestors, self.cli, self.docker.excluded
        append, prefix = found.append, f"{rel}/" if rel else ""
        for entry in entries:
            name = entry.name
            if name == ".git":  # may hold the checkout token; never uploaded, at any level
                continue
            child = prefix + name
            child_in_scope = in_scope or child in includes
            if not child_in_scope and child not in ancestors:
                continue
            if in_scope and cli is not None and cli(name):
                log.debug("%s: left out by the agentex CLI's basename patterns", child)
                continue
            child_excluded = is_excluded(child, parent_excluded=excluded)
            if entry.is_dir(follow_symlinks=False):
                if child_excluded and not self.docker.may_reinclude_under(child):
                    continue
                info = _stat(entry.path, child, follow=False)
                # While following links every walked path is a real path (the root is resolved and followed
                # folders are walked through their target), so `seen` holds the real folders of this branch.
                inner = seen | {entry.path} if seen else seen
                found.append(
                    (_key(name + "/"), _Folder(entry.path, child, info, child_excluded, child_in_scope, inner))
                )
                continue
            if child_excluded or not child_in_scope or (not rel and child in self.reserved):
                continue
            if entry.is_file(follow_symlinks=False):  # the type from the folder listing: no stat until it is read
                append((name.encode("utf-8", "surrogateescape"), Member(child, "file", 0, 0, entry.path)))
                continue
            item = self._other(entry.path, child, _stat(entry.path, child, follow=False), child_excluded, seen)
            if item is not None:
                found.append((_key(name + "/" if isinstance(item, _Folder) else name), item))
        if root_files:
            found = self._root_files_or_folders(found, root_files)
        found.sort(key=_first)
        for _, kept in found:
            if isinstance(kept, Member):
                yield kept
            elif isinstance(kept, _Started):
                yield from kept.members
            else:
                yield from self._dir(kept)

    def _root_files_or_folders(
        self, found: list[tuple[bytes, Member | _Folder | _Started]], root_files: dict[str, Member]
    ) -> list[tuple[bytes, Member | _Folder | _Started]]:
        # A walked folder with a root file's name replaces that file when it keeps anything (one entry per name).
        for key, item in list(found):
            if isinstance(item, _Folder) and item.rel in root_files:
                members = self._dir(item)
                first = next(members, None)
                found.remove((key, item))
                if first is not None:
                    found.remove((_key(item.rel), root_files[item.rel]))
                    found.append((key, _Started(itertools.chain((first,), members))))
        return found

    def _dir(self, folder: _Folder) -> Iterator[Member]:
        member = Member(folder.rel, "dir", stat.S_IMODE(folder.info.st_mode))
        below = self._walk(folder.path, folder.rel, folder.excluded, folder.in_scope, folder.seen)
        if folder.in_scope and not folder.excluded:
            yield member
            yield from below
            return
        first = next(below, None)
        if first is not None:
            yield member
            yield first
            yield from below

    def _other(
        self, path: str, rel: str, info: os.stat_result, excluded: bool, seen: frozenset[str]
    ) -> Member | _Folder | None:
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            if not self.spec.follow_symlinks:
                return Member(rel, "symlink", 0o777, target=os.readlink(path))
            return self._follow(path, rel, excluded, seen)
        if stat.S_ISREG(mode):
            return Member(rel, "file", stat.S_IMODE(mode), info.st_size, path)
        if stat.S_ISSOCK(mode):
            log.info("skipped the socket %s (a tar cannot hold sockets)", rel)
        else:
            log.warning("skipped %s: a FIFO or device file cannot be packaged", rel)
        return None

    def _follow(self, path: str, rel: str, excluded: bool, seen: frozenset[str]) -> Member | _Folder | None:
        target = os.readlink(path)
        real, why = resolve_confined(path, self.bound)
        if why:
            raise ContextError(
                f"symlink {rel} -> {target} {why}; with follow-symlinks every link must point inside the workspace "
                "and outside .git: remove the link or turn follow-symlinks off"
            )
        info = _stat(real, rel, what=f"symlink {rel} -> {target} points at nothing; fix or remove it")
        if stat.S_ISDIR(info.st_mode):
            if real in seen:
                raise ContextError(f"symlink {rel} -> {target} makes a loop; remove it or turn follow-symlinks off")
            return _Folder(real, rel, info, excluded, True, seen | {real})
        return self._other(real, rel, info, excluded, seen)


@dataclass(frozen=True)
class _Folder:
    """A folder found in a listing, walked when its turn in archive order comes."""

    path: str
    rel: str
    info: os.stat_result
    excluded: bool
    in_scope: bool
    seen: frozenset[str]


class _Started:
    """A folder whose walk has started: its members, lazily."""

    def __init__(self, members: Iterator[Member]) -> None:
        self.members = members


def _key(stored: str) -> bytes:
    return stored.encode("utf-8", "surrogateescape")


def _first(pair: tuple[bytes, object]) -> bytes:
    return pair[0]


def _no_check() -> None:
    """The default cancellation check: never cancelled."""


def _stat(path: str, rel: str, *, follow: bool = True, what: str | None = None) -> os.stat_result:
    try:
        return os.stat(path, follow_symlinks=follow)
    except OSError as exc:
        raise ContextError(what or f"cannot read {rel} ({path}): {exc.strerror or exc}") from None


def list_members(spec: BuildContextSpec) -> list[str]:
    """The archive's file members (regular files and symlinks, no directories), sorted as in the archive."""
    return [m.name for m in Walker(spec).walk() if m.kind != "dir"]
