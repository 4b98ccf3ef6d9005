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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sgp_action.errors import ContextError
from sgp_action.packaging.pgzip import ParallelGzipWriter
from sgp_action.packaging.spec import BuildContextSpec
from sgp_action.packaging.walk import Member, Walker, cli_ignore_patterns, list_members

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

    def __init__(self, out: ParallelGzipWriter, limit: int, check: Callable[[], None]) -> None:
        self.out = out
        self.limit = limit
        self.check = check
        self.hash = hashlib.sha256(HASH_PREFIX)
        self.raw_bytes = 0
        self.file_count = 0
        self.sizes: list[tuple[int, str]] = []
        self.tar_bytes = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.tar_bytes += len(data)

    def add(self, member: Member) -> None:
        self.check()
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
                self.check()  # per 1 MiB read: a large file stops within milliseconds of a cancellation
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
    spec: BuildContextSpec,
    output: Path,
    *,
    level: int = 6,
    threads: int | None = None,
    max_bytes: int = MAX_CONTEXT_BYTES,
    check: Callable[[], None] | None = None,
) -> BuildContextResult:
    """Package `spec` into the tar.gz `output` (written atomically) and describe it.

    Raises ContextError, before anything could be uploaded, for a bad `.dockerignore`, an unreadable file, a named
    file or followed symlink outside the workspace or inside `.git`, an empty context or one over `max_bytes`
    compressed.
    `check` (e.g. a `CancelToken.check`) is called often and cheaply while the walk and the archive go on; what it
    raises propagates once the compressor threads are stopped and the partial archive is removed.
    """
    members = Walker(spec, check).walk()
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
            writer = _write_archive(members, sink, level, threads, max_bytes, check or (lambda: None))
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    files = tuple(m.name for m in members if m.kind != "dir")
    result = BuildContextResult(
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
    members: list[Member], sink: BinaryIO, level: int, threads: int | None, max_bytes: int, check: Callable[[], None]
) -> _TarWriter:
    gz = ParallelGzipWriter(sink, level=level, threads=threads)
    writer = _TarWriter(gz, max_bytes, check)
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
