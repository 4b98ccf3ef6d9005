"""Packaging a build context into a reproducible tar.gz (docs/build-context.md#the-archives-shape).

What goes in (the two layouts, the ignore rules, links) is `sgp_action.packaging.walk`; this module describes the
context (`BuildContextSpec`) and writes the archive. The archive: members sorted byte-lexically (directories end with
`/`, so each follows its parent), directory entries included, uid/gid 0 and empty owner names, permission bits kept
(setuid/setgid/sticky too; links 0777), mtime 0, USTAR headers with PAX records only when needed, gzip header without
name or time: the same tree gives the same bytes.

Packaging can be cancelled: `build_context` calls its `check` between members, per folder walked and per chunk of a
large file; whatever `check` raises (the run's `Cancelled`) stops the compressor threads and removes the partial
archive before it propagates.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sgp_action.errors import ContextError, ManifestError
from sgp_action.packaging.confine import CONFINE_HINT, resolve_confined, workspace_bound
from sgp_action.packaging.pgzip import ParallelGzipWriter
from sgp_action.packaging.walk import Member, Walker, cli_ignore_patterns, list_members

if TYPE_CHECKING:
    from sgp_action.packaging.manifest import Manifest

log = logging.getLogger(__name__)

__all__ = [
    "MAX_CONTEXT_BYTES",
    "BuildContextResult",
    "BuildContextSpec",
    "Member",
    "build_context",
    "cli_ignore_patterns",
    "human_size",
    "is_secret_like",
    "list_members",
]

# the build API's upload limit (docs/sgp-api.md#one-image-source-and-the-size-limit)
MAX_CONTEXT_BYTES = 500 * 1024 * 1024
HASH_PREFIX = b"sgp-action working-tree-hash v1\n"
SECRET_LIKE = (".env*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.p12", "*.pfx")
SECRET_NAMES = frozenset(
    {"credentials", "credentials.json", ".npmrc", ".pypirc", ".netrc", ".git-credentials", ".htpasswd", ".dockercfg"}
)
_SECRET_RE = re.compile("|".join(fnmatch.translate(p) for p in SECRET_LIKE))
_READ_CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE


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


# --- the archive ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildContextResult:
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
            f"Build context: {self.file_count} file{'' if self.file_count == 1 else 's'}, "
            f"{human_size(self.raw_bytes)} raw, "
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


_REGTYPE, _DIRTYPE, _SYMTYPE = b"0", b"5", b"2"
_KIND = {"file": (_REGTYPE, b"f"), "dir": (_DIRTYPE, b"d"), "symlink": (_SYMTYPE, b"l")}
_IDS = b"0000000\x000000000\x00"  # uid and gid 0
_MTIME = b"00000000000\x00"
# magic "ustar\0" version "00", empty uname and gname, empty device numbers and prefix, padding to 512 bytes.
_USTAR_TAIL = b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155 + 12)
# Type flag, empty link name and the rest, with the sum of their bytes (for the checksum), per member type.
_TAILS = {kind: (kind + bytes(100) + _USTAR_TAIL, sum(kind + bytes(100) + _USTAR_TAIL)) for kind in (b"0", b"2", b"5")}
_U64 = struct.Struct(">Q").pack
_U32_U64 = struct.Struct(">IQ").pack
_FILE_TAIL = _TAILS[b"0"][0]
# A file header's bytes besides its name and octal digits: ids, mtime, the checksum field as spaces, the tail.
_FILE_FIXED_SUM = sum(_IDS) + sum(_MTIME) + 256 + _TAILS[b"0"][1]
_PADDING = [bytes(-n % 512) for n in range(512)]
_MAX_USTAR_SIZE = 8**11 - 1
_BATCH = 256 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def tar_header(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> bytes:
    """The tar header of one member with uid/gid 0, no owner names and mtime 0: the bytes `tarfile` writes in
    PAX format (`TarInfo.tobuf`), built directly when the name and link fit USTAR as ASCII (the common case,
    several times faster); otherwise by `tarfile` itself, with its PAX records. Directory names get their `/` here.
    """
    stored = name + "/" if kind == _DIRTYPE and not name.endswith("/") else name
    fits = len(stored) <= 100 and len(linkname) <= 100 and 0 <= size <= _MAX_USTAR_SIZE
    if fits and stored.isascii() and linkname.isascii():
        head = b"%s%07o\x00%s%011o\x00%s" % (
            stored.encode("ascii").ljust(100, b"\x00"),
            mode & 0o7777,
            _IDS,
            size,
            _MTIME,
        )
        if linkname:
            block = kind + linkname.encode("ascii").ljust(100, b"\x00") + _USTAR_TAIL
            tail = (block, sum(block))
        else:
            tail = _TAILS[kind]
        # The checksum counts its own field as eight spaces (256).
        return b"%s%06o\x00 %s" % (head, sum(head) + tail[1] + 256, tail[0])
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _TarWriter:
    """Streams members as tar into `out`, feeding the working-tree hash as it goes (module docstring).

    Small members are gathered and handed to the compressor in batches of about 256 KiB.
    """

    def __init__(self, out: ParallelGzipWriter, limit: int, check: Callable[[], None], keep_names: bool) -> None:
        self.out = out
        self.limit = limit
        self.check = check
        self.hash = hashlib.sha256(HASH_PREFIX)
        self.raw_bytes = 0
        self.file_count = 0
        self.regular_files = 0
        self.member_count = 0
        self.largest: list[tuple[int, str]] = []  # a min-heap of the five largest (size, name)
        self.secret_like: list[str] = []
        self.names: list[str] | None = [] if keep_names else None
        self.tar_bytes = 0
        self._batch = bytearray()
        self._hashed = bytearray()

    def _flush(self) -> None:
        # The hash input is gathered like the tar bytes (never more of it): one update per batch, not two a file.
        if self._hashed:
            self.hash.update(self._hashed)
            self._hashed = bytearray()
        if self._batch:
            self.out.write(self._batch)
            self._batch = bytearray()

    def add(self, member: Member) -> None:
        self.check()
        self.member_count += 1
        if member.kind == "file":
            self._add_file(member)
        else:
            kind, letter = _KIND[member.kind]
            name = member.name.encode("utf-8", "surrogateescape")
            payload = member.target.encode("utf-8", "surrogateescape")
            self._hashed += b"%s%s%s%s%s" % (
                _U64(len(name)),
                name,
                letter,
                _U32_U64(member.mode, len(payload)),
                payload,
            )
            self._batch += tar_header(member.name, kind, member.mode, 0, member.target)
            if member.kind == "symlink":
                self.file_count += 1
                if self.names is not None:
                    self.names.append(member.name)
        if len(self._batch) >= _BATCH:
            self._flush()
            if self.out.bytes_out > self.limit:
                raise ContextError(
                    f"the build context is over the {human_size(self.limit)} upload limit once compressed; leave out "
                    "large files with .dockerignore"
                )

    def _add_file(self, member: Member) -> None:
        path = member.source
        assert path is not None
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            raise ContextError(f"cannot read {member.name} ({path}): {exc.strerror or exc}") from None
        try:
            # Size, mode and type from the open file (its only stat): a path swapped for a FIFO or a link since the
            # walk must not block us.
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise ContextError(f"{member.name} stopped being a regular file while it was packaged; retry")
            size, mode = opened.st_size, opened.st_mode & 0o7777
            name = member.name.encode("utf-8", "surrogateescape")
            if len(name) <= 100 and size <= _MAX_USTAR_SIZE and name.isascii():
                # tar_header's fast path, inlined: this runs once per file.
                digits = b"%07o%011o" % (mode, size)
                self._batch += b"%s%s\x00%s%s\x00%s%06o\x00 %s" % (
                    name.ljust(100, b"\x00"),
                    digits[:7],
                    _IDS,
                    digits[7:],
                    _MTIME,
                    sum(name) + sum(digits) + _FILE_FIXED_SUM,  # the checksum: the sum of every other byte
                    _FILE_TAIL,
                )
            else:
                self._batch += tar_header(member.name, _REGTYPE, mode, size)
            entry = b"%s%sf%s" % (_U64(len(name)), name, _U32_U64(mode, size))
            if 0 < size < _BATCH:
                self.check()
                try:
                    chunk = os.read(fd, size)
                except OSError as exc:
                    raise ContextError(f"cannot read {member.name} ({path}): {exc.strerror or exc}") from None
                if len(chunk) == size:
                    self._hashed += entry
                    self._hashed += chunk
                    self._batch += chunk
                else:
                    self._hashed += entry
                    self._copy(fd, member, size, chunk)
            else:
                self._hashed += entry
                if size:
                    self._copy(fd, member, size, b"")
        finally:
            os.close(fd)
        self._batch += _PADDING[size % _BLOCK]
        self.raw_bytes += size
        self.file_count += 1
        self.regular_files += 1
        if self.names is not None:
            self.names.append(member.name)
        largest = self.largest
        if len(largest) < 5:
            heapq.heappush(largest, (size, member.name))
        elif size >= largest[0][0] and (size, member.name) > largest[0]:
            heapq.heapreplace(largest, (size, member.name))
        if is_secret_like(member.name.rpartition("/")[2]):
            self.secret_like.append(member.name)

    @staticmethod
    def _read(fd: int, member: Member, size: int) -> bytes:
        try:
            chunk = os.read(fd, size)
        except OSError as exc:
            raise ContextError(f"cannot read {member.name} ({member.source}): {exc.strerror or exc}") from None
        if not chunk:
            raise ContextError(f"{member.name} shrank while it was packaged; retry when nothing writes to it")
        return chunk

    def _copy(self, fd: int, member: Member, size: int, first: bytes) -> None:
        """The rest of a file from `fd` after `first`, checking for a cancellation before each 1 MiB read."""
        if first:
            self._hashed += first
            self._batch += first
        remaining = size - len(first)
        while remaining:
            self.check()  # per 1 MiB read: a large file stops within milliseconds of a cancellation
            chunk = self._read(fd, member, min(_READ_CHUNK, remaining))
            if len(chunk) < _BATCH:
                self._hashed += chunk
                self._batch += chunk
            else:
                self._flush()
                self.hash.update(chunk)
                self.out.write(chunk)
            remaining -= len(chunk)

    def finish(self) -> None:
        # End-of-archive marker (two zero blocks), padded to a full record as GNU tar and tarfile do.
        self._batch += bytes(2 * _BLOCK)
        total = self.out.bytes_in + len(self._batch)
        if total % tarfile.RECORDSIZE:
            self._batch += bytes(tarfile.RECORDSIZE - total % tarfile.RECORDSIZE)
        self.tar_bytes = self.out.bytes_in + len(self._batch)
        self._flush()


def build_context(
    spec: BuildContextSpec,
    output: Path,
    *,
    level: int = 6,
    threads: int | None = None,
    max_bytes: int = MAX_CONTEXT_BYTES,
    check: Callable[[], None] | None = None,
    keep_names: bool = True,
) -> BuildContextResult:
    """Package `spec` into the tar.gz `output` (written atomically) and describe it.

    Raises ContextError, before anything could be uploaded, for a bad `.dockerignore`, an unreadable file, a named
    file or followed symlink outside the workspace or inside `.git`, an empty context or one over `max_bytes`
    compressed.
    `check` (e.g. a `CancelToken.check`) is called often and cheaply while the walk and the archive go on; what it
    raises propagates once the compressor threads are stopped and the partial archive is removed. Members stream
    from the walk into the archive; `keep_names=False` leaves `members` empty, so memory stays flat however many
    files the context holds.
    """
    check = check or _never_cancelled
    walker = Walker(spec, check)
    output = Path(output)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        sink = open(partial, "wb")  # noqa: SIM115 (closed by the with below; opened apart to word its error)
    except OSError as exc:
        raise ContextError(f"cannot write the archive {output}: {exc.strerror or exc}") from None
    try:
        with sink:
            writer = _write_archive(walker.iter_members(), sink, level, threads, max_bytes, check, keep_names)
        if not writer.regular_files:
            raise ContextError(
                f"the build context under {spec.root} holds no files; check include_paths and .dockerignore"
            )
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    result = BuildContextResult(
        path=output,
        file_count=writer.file_count,
        raw_bytes=writer.raw_bytes,
        compressed_bytes=writer.out.bytes_out,
        working_tree_hash=writer.hash.hexdigest(),
        secret_like=tuple(writer.secret_like),
        largest=tuple((name, size) for size, name in sorted(writer.largest, reverse=True)),
        members=tuple(writer.names or ()),
    )
    log.debug("packaged %s: %d members, %d tar bytes", output, writer.member_count, writer.tar_bytes)
    return result


def _never_cancelled() -> None:
    """The default cancellation check."""


def _write_archive(
    members: Iterator[Member],
    sink: BinaryIO,
    level: int,
    threads: int | None,
    max_bytes: int,
    check: Callable[[], None],
    keep_names: bool,
) -> _TarWriter:
    gz = ParallelGzipWriter(sink, level=level, threads=threads)
    writer = _TarWriter(gz, max_bytes, check, keep_names)
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
