"""Packaging a build context into a reproducible tar.gz (product.md section 4, formats.md A.6, sgp-api.md 9.1).

Two layouts. Manifest mode (the agentex layout): the archive root is `build.context.root`, only the `include_paths`
directories are walked (at their paths relative to the root), and the manifest's Dockerfile and dockerignore are
stored at the root as `Dockerfile` and `.dockerignore`; a file is left out when Docker's `.dockerignore` rules
exclude it **or** when the agentex CLI's basename patterns would (`shutil.ignore_patterns`: each line, text after
`#` dropped and trimmed, fnmatch'ed against every entry's base name). Plain mode: the whole root with exactly
Docker's rules, the chosen Dockerfile and `.dockerignore` always sent at their own paths.

The archive: members sorted byte-lexically (directories end with `/`, so each follows its parent), directory
entries included, uid/gid 0 and empty owner names, permission bits kept (setuid/setgid/sticky too; links 0777),
mtime 0, USTAR headers with PAX records only when needed, gzip header without name or time: the same tree gives the
same bytes. `.git` is never walked; symlinks are stored as links unless followed (only to targets inside the
repository); sockets, FIFOs and devices are skipped. Excluded folders are not walked unless a `!` exception could
re-include something below them.

Working-tree hash (computed while the archive streams, never by a second read): SHA-256 of
`b"sgp-action working-tree-hash v1\\n"` followed by, for each member in archive order:

    u64(len(name)) name  type  u32(mode)  u64(len(payload)) payload

where integers are big-endian, `name` is the member's UTF-8 path without a trailing `/`, `type` one byte (`f`
regular file, `d` directory, `l` symlink), `mode` the permission bits stored in the tar header, and `payload` the
file's content, the link's target text, or nothing for a directory.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import logging
import os
import re
import stat
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sgp_action.dockerignore import DockerIgnore
from sgp_action.errors import ContextError
from sgp_action.pgzip import ParallelGzipWriter
from sgp_action.provenance import find_git_root

if TYPE_CHECKING:
    from sgp_action.manifest import Manifest

log = logging.getLogger(__name__)

__all__ = ["MAX_CONTEXT_BYTES", "ContextResult", "ContextSpec", "Member", "build_context", "list_members"]

MAX_CONTEXT_BYTES = 500 * 1024 * 1024  # the build API's upload limit (sgp-api.md 2.1, trap T5)
HASH_PREFIX = b"sgp-action working-tree-hash v1\n"
SECRET_LIKE = (".env*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.p12", "*.pfx")
SECRET_NAMES = frozenset(
    {"credentials", "credentials.json", ".npmrc", ".pypirc", ".netrc", ".git-credentials", ".htpasswd", ".dockercfg"}
)
_SECRET_RE = re.compile("|".join(fnmatch.translate(p) for p in SECRET_LIKE))
_READ_CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class Member:
    """One archive entry: `name` relative to the archive root without a trailing `/`; `kind` is file/dir/symlink."""

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


@dataclass(frozen=True)
class ContextSpec:
    """What to package. Build it with `from_manifest` or `plain`; paths are absolute, relative ones `/`-separated."""

    mode: str
    root: Path
    include_paths: tuple[str, ...]
    dockerfile: str
    dockerignore: str | None
    follow_symlinks: bool = False
    repo_root: Path | None = None

    @classmethod
    def from_manifest(cls, manifest: Manifest, follow_symlinks: bool = False) -> ContextSpec:
        """The agentex layout of a validated manifest (root, include paths, Dockerfile and dockerignore)."""
        root = manifest.context_root.resolve()
        return cls(
            mode="manifest",
            root=root,
            include_paths=manifest.include_paths,
            dockerfile=manifest.dockerfile,
            dockerignore=manifest.dockerignore,
            follow_symlinks=follow_symlinks,
            repo_root=find_git_root(root) or root,
        )

    @classmethod
    def plain(
        cls,
        root: Path,
        dockerfile: str = "Dockerfile",
        dockerignore: str | None = None,
        follow_symlinks: bool = False,
    ) -> ContextSpec:
        """Docker's own layout: everything under `root`. Without `dockerignore`, BuildKit's choice (A.3):
        `<dockerfile>.dockerignore` when it exists, else `.dockerignore` at the root when it exists."""
        root = Path(root).resolve()
        if not root.is_dir():
            raise ContextError(f"context root {root} is not a directory")
        dockerfile = _inside_root(root, dockerfile, "--dockerfile")
        if not os.path.lexists(root / dockerfile):
            raise ContextError(f"Dockerfile {root / dockerfile} not found; pass --dockerfile relative to {root}")
        if dockerignore is not None:
            dockerignore = _inside_root(root, dockerignore, "--dockerignore")
            if not (root / dockerignore).is_file():
                raise ContextError(f"dockerignore file {root / dockerignore} not found")
        elif (root / f"{dockerfile}.dockerignore").is_file():
            dockerignore = f"{dockerfile}.dockerignore"
        elif (root / ".dockerignore").is_file():
            dockerignore = ".dockerignore"
        return cls("plain", root, (".",), dockerfile, dockerignore, follow_symlinks, find_git_root(root) or root)


def _inside_root(root: Path, rel: str, flag: str) -> str:
    clean = os.path.normpath(rel).replace(os.sep, "/")
    if os.path.isabs(rel) or clean == ".." or clean.startswith("../") or clean == ".":
        raise ContextError(f"{flag} {rel!r} must name a file inside the context root {root}, relative to it")
    return clean


def cli_ignore_patterns(text: str) -> tuple[str, ...]:
    """The agentex CLI's reading of a dockerignore file (sgp-api.md 9.1 step 6): text after `#` dropped, trimmed."""
    return tuple(p for p in (line.split("#", 1)[0].strip() for line in text.splitlines()) if p)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ContextError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


class _Walker:
    """Collects the members of a spec; see the module docstring for the rules."""

    def __init__(self, spec: ContextSpec) -> None:
        self.spec = spec
        self.root = str(spec.root)
        self.repo_real = os.path.realpath(spec.repo_root or spec.root)
        self.members: dict[str, Member] = {}
        text = _read_text(spec.root / spec.dockerignore, "dockerignore") if spec.dockerignore else ""
        source = str(spec.root / spec.dockerignore) if spec.dockerignore else ".dockerignore"
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
        spec = self.spec
        if spec.mode == "manifest":
            self._root_file("Dockerfile", spec.dockerfile)
            if spec.dockerignore:
                self._root_file(".dockerignore", spec.dockerignore)
        seen = frozenset({os.path.realpath(self.root)}) if spec.follow_symlinks else frozenset()
        self._walk(self.root, "", False, "." in self.includes, seen)
        return sorted(self.members.values(), key=lambda m: m.sort_key)

    def _root_file(self, name: str, rel: str) -> None:
        # The agentex CLI copies these two files' content to the archive root, whatever they are links to.
        real = os.path.realpath(os.path.join(self.root, rel))
        info = _stat(real, rel)
        self.members[name] = Member(name, "file", stat.S_IMODE(info.st_mode), info.st_size, real)

    def _walk(self, path: str, rel: str, excluded: bool, in_scope: bool, seen: frozenset[str]) -> bool:
        """Walk the directory `path` (archive path `rel`); True when a member was added below it."""
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            raise ContextError(f"cannot read the folder {rel or '.'} ({path}): {exc.strerror or exc}") from None
        added = False
        for entry in entries:
            name = entry.name
            if name == ".git":  # may hold the checkout token; never uploaded, at any level
                continue
            child = f"{rel}/{name}" if rel else name
            child_in_scope = in_scope or child in self.includes
            if not child_in_scope and child not in self.ancestors:
                continue
            if in_scope and self.cli is not None and self.cli(name):
                log.debug("%s: left out by the agentex CLI's basename patterns", child)
                continue
            child_excluded = self.docker.excluded(child, parent_excluded=excluded)
            if entry.is_dir(follow_symlinks=False):
                if child_excluded and not self.docker.may_reinclude_under(child):
                    continue
                info = _stat(entry.path, child, follow=False)
                # While following links every walked path is a real path (the root is resolved and followed
                # folders are walked through their target), so `seen` holds the real folders of this branch.
                inner = seen | {entry.path} if seen else seen
                added |= self._dir(entry.path, child, info, child_excluded, child_in_scope, inner)
                continue
            if child_excluded or not child_in_scope or (not rel and child in self.reserved):
                continue
            added |= self._other(entry.path, child, _stat(entry.path, child, follow=False), child_excluded, seen)
        return added

    def _dir(
        self, path: str, rel: str, info: os.stat_result, excluded: bool, in_scope: bool, seen: frozenset[str]
    ) -> bool:
        below = self._walk(path, rel, excluded, in_scope, seen)
        if below or (in_scope and not excluded):
            self.members[rel] = Member(rel, "dir", stat.S_IMODE(info.st_mode))
            return True
        return False

    def _other(self, path: str, rel: str, info: os.stat_result, excluded: bool, seen: frozenset[str]) -> bool:
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            if not self.spec.follow_symlinks:
                self.members[rel] = Member(rel, "symlink", 0o777, target=os.readlink(path))
                return True
            return self._follow(path, rel, excluded, seen)
        if stat.S_ISREG(mode):
            self.members[rel] = Member(rel, "file", stat.S_IMODE(mode), info.st_size, path)
            return True
        if stat.S_ISSOCK(mode):
            log.info("skipped the socket %s (a tar cannot hold sockets)", rel)
        else:
            log.warning("skipped %s: a FIFO or device file cannot be packaged", rel)
        return False

    def _follow(self, path: str, rel: str, excluded: bool, seen: frozenset[str]) -> bool:
        target = os.readlink(path)
        real = os.path.realpath(path)
        if real != self.repo_real and not real.startswith(self.repo_real.rstrip("/") + "/"):
            raise ContextError(
                f"symlink {rel} -> {target} leaves the repository ({self.repo_real}); with follow-symlinks every "
                "link must point inside it: remove the link or turn follow-symlinks off"
            )
        info = _stat(real, rel, what=f"symlink {rel} -> {target} points at nothing; fix or remove it")
        if stat.S_ISDIR(info.st_mode):
            if real in seen:
                raise ContextError(f"symlink {rel} -> {target} makes a loop; remove it or turn follow-symlinks off")
            return self._dir(real, rel, info, excluded, True, seen | {real})
        return self._other(real, rel, info, excluded, seen)


def _stat(path: str, rel: str, *, follow: bool = True, what: str | None = None) -> os.stat_result:
    try:
        return os.stat(path, follow_symlinks=follow)
    except OSError as exc:
        raise ContextError(what or f"cannot read {rel} ({path}): {exc.strerror or exc}") from None


def list_members(spec: ContextSpec) -> list[str]:
    """The archive's file members (regular files and symlinks, no directories), sorted as in the archive."""
    return [m.name for m in _Walker(spec).walk() if m.kind != "dir"]


# --- the archive ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextResult:
    """A packaged context: where it is, what it holds, and its working-tree hash (hex SHA-256)."""

    path: Path
    file_count: int
    raw_bytes: int
    compressed_bytes: int
    working_tree_hash: str
    secret_like: tuple[str, ...]
    largest: tuple[tuple[str, int], ...]
    members: tuple[str, ...] = ()

    def summary_lines(self) -> list[str]:
        """What the CLI prints to stderr (and the action to the log) about the archive."""
        lines = [
            f"Build context: {self.file_count} files, {human_size(self.raw_bytes)} raw, "
            f"{human_size(self.compressed_bytes)} compressed",
            f"Working-tree hash: {self.working_tree_hash}",
        ]
        if self.largest:
            lines.append("Largest: " + ", ".join(f"{name} ({human_size(size)})" for name, size in self.largest))
        if self.secret_like:
            lines.append("Look like secrets (left in the context): " + ", ".join(self.secret_like))
        return lines


def human_size(size: int) -> str:
    """`812 B`, `3.4 KiB`, `12.0 MiB`, `1.5 GiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def is_secret_like(name: str) -> bool:
    """Whether a base name looks like a credentials file (`.env*`, `*.pem`, `*.key`, `id_rsa*`, `.netrc`, ...)."""
    return name in SECRET_NAMES or (not name.endswith(".pub") and _SECRET_RE.match(name) is not None)


class _TarWriter:
    """Streams members as tar into `out`, feeding the working-tree hash as it goes (module docstring)."""

    def __init__(self, out: ParallelGzipWriter, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.hash = hashlib.sha256(HASH_PREFIX)
        self.raw_bytes = 0
        self.file_count = 0
        self.sizes: list[tuple[int, str]] = []
        self.tar_bytes = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.tar_bytes += len(data)

    def add(self, member: Member) -> None:
        info = tarfile.TarInfo(member.name)
        info.mode = member.mode
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        kind = {"file": b"f", "dir": b"d", "symlink": b"l"}[member.kind]
        name = member.name.encode("utf-8", "surrogateescape")
        self.hash.update(struct.pack(">Q", len(name)) + name + kind + struct.pack(">I", member.mode))
        if member.kind == "dir":
            info.type = tarfile.DIRTYPE
            self.hash.update(struct.pack(">Q", 0))
            self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        elif member.kind == "symlink":
            info.type = tarfile.SYMTYPE
            info.linkname = member.target
            target = member.target.encode("utf-8", "surrogateescape")
            self.hash.update(struct.pack(">Q", len(target)) + target)
            self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            self.file_count += 1
        else:
            self._add_file(member, info)
        if self.out.bytes_out > self.limit:
            raise ContextError(
                f"the build context is over the {human_size(self.limit)} upload limit once compressed; leave out "
                "large files with .dockerignore"
            )

    def _add_file(self, member: Member, info: tarfile.TarInfo) -> None:
        assert member.source is not None
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(member.source, flags)
        except OSError as exc:
            raise ContextError(f"cannot read {member.name} ({member.source}): {exc.strerror or exc}") from None
        try:
            # Size and type from the open file: a path swapped for a FIFO or link since the walk must not block us.
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise ContextError(f"{member.name} stopped being a regular file while it was packaged; retry")
            size = opened.st_size
            info.size = size
            self.hash.update(struct.pack(">Q", size))
            self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            remaining = size
            while remaining:
                try:
                    chunk = os.read(fd, min(_READ_CHUNK, remaining))
                except OSError as exc:
                    raise ContextError(f"cannot read {member.name} ({member.source}): {exc.strerror or exc}") from None
                if not chunk:
                    raise ContextError(f"{member.name} shrank while it was packaged; retry when nothing writes to it")
                self.hash.update(chunk)
                self._write(chunk)
                remaining -= len(chunk)
        finally:
            os.close(fd)
        if size % _BLOCK:
            self._write(bytes(_BLOCK - size % _BLOCK))
        self.raw_bytes += size
        self.file_count += 1
        self.sizes.append((size, member.name))

    def finish(self) -> None:
        # End-of-archive marker (two zero blocks), padded to a full record as GNU tar and tarfile do.
        self._write(bytes(2 * _BLOCK))
        if self.tar_bytes % tarfile.RECORDSIZE:
            self._write(bytes(tarfile.RECORDSIZE - self.tar_bytes % tarfile.RECORDSIZE))


def build_context(
    spec: ContextSpec,
    output: Path,
    *,
    level: int = 6,
    threads: int | None = None,
    max_bytes: int = MAX_CONTEXT_BYTES,
) -> ContextResult:
    """Package `spec` into the tar.gz `output` (written atomically) and describe it.

    Raises ContextError, before anything could be uploaded, for a bad `.dockerignore`, an unreadable file, a
    symlink leaving the repository (with follow-symlinks), an empty context or one over `max_bytes` compressed.
    """
    members = _Walker(spec).walk()
    if not any(m.kind == "file" for m in members):
        raise ContextError(f"the build context under {spec.root} holds no files; check include_paths and .dockerignore")
    output = Path(output)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        sink = open(partial, "wb")  # noqa: SIM115 (closed by the with below; opened apart to word its error)
    except OSError as exc:
        raise ContextError(f"cannot write the archive {output}: {exc.strerror or exc}") from None
    try:
        with sink:
            writer = _write_archive(members, sink, level, threads, max_bytes)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    files = tuple(m.name for m in members if m.kind != "dir")
    result = ContextResult(
        path=output,
        file_count=writer.file_count,
        raw_bytes=writer.raw_bytes,
        compressed_bytes=writer.out.bytes_out,
        working_tree_hash=writer.hash.hexdigest(),
        secret_like=tuple(m.name for m in members if m.kind == "file" and is_secret_like(m.name.rsplit("/", 1)[-1])),
        largest=tuple((name, size) for size, name in heapq.nlargest(5, writer.sizes, key=lambda s: (s[0], s[1]))),
        members=files,
    )
    log.debug("packaged %s: %d members, %d tar bytes", output, len(members), writer.tar_bytes)
    return result


def _write_archive(
    members: list[Member], sink: BinaryIO, level: int, threads: int | None, max_bytes: int
) -> _TarWriter:
    gz = ParallelGzipWriter(sink, level=level, threads=threads)
    writer = _TarWriter(gz, max_bytes)
    try:
        for member in members:
            writer.add(member)
        writer.finish()
        gz.close()
    except BaseException:
        gz.abort()
        raise
    if gz.bytes_out > max_bytes:
        raise ContextError(
            f"the build context is {human_size(gz.bytes_out)} compressed, over the {human_size(max_bytes)} upload "
            "limit; leave out large files with .dockerignore"
        )
    return writer
