"""Packaging a build context into a reproducible tar.gz (docs/build-context.md#the-archives-shape).

What goes in (the two layouts, the ignore rules, links) is `sgp_action.packaging.walk`; this module describes the
context (`BuildContextSpec`) and writes the archive. The archive: members sorted byte-lexically (directories end with
`/`, so each follows its parent), directory entries included, uid/gid 0 and empty owner names, permission bits kept
(setuid/setgid/sticky too; links 0777), mtime 0, USTAR headers with PAX records only when needed
(`sgp_action.packaging.tarheader`), gzip header without name or time: the same tree gives the same bytes.

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

import hashlib
import heapq
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sgp_action.errors import ContextError
from sgp_action.packaging.pgzip import ParallelGzipWriter
from sgp_action.packaging.spec import BuildContextSpec
from sgp_action.packaging.tarheader import (
    BLOCK,
    DIRTYPE,
    PADDING,
    SYMTYPE,
    U32_U64,
    U64,
    end_of_archive,
    file_header,
    tar_header,
)
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
    "tar_header",
]

# the build API's upload limit (docs/sgp-api.md#one-image-source-and-the-size-limit)
MAX_CONTEXT_BYTES = 500 * 1024 * 1024
HASH_PREFIX = b"sgp-action working-tree-hash v1\n"
SECRET_LIKE = (".env*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.p12", "*.pfx")
SECRET_NAMES = frozenset(
    {"credentials", "credentials.json", ".npmrc", ".pypirc", ".netrc", ".git-credentials", ".htpasswd", ".dockercfg"}
)
# Every pattern above is a literal with one `*` at its start or its end: matching is a prefix or suffix test, a
# fraction of a regular expression's cost (it runs once per file).
_SECRET_PREFIXES = tuple(p[:-1] for p in SECRET_LIKE if p.endswith("*"))
_SECRET_SUFFIXES = tuple(p[1:] for p in SECRET_LIKE if p.startswith("*"))
_READ_CHUNK = 1024 * 1024


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
    return name in SECRET_NAMES or (
        (name.startswith(_SECRET_PREFIXES) or name.endswith(_SECRET_SUFFIXES)) and not name.endswith(".pub")
    )


_KIND = {"dir": (DIRTYPE, b"d"), "symlink": (SYMTYPE, b"l")}
_BATCH = 256 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


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

    def _add_entry(self, member: Member) -> None:
        """A folder or a symlink: its header, and its hash entry with the link's target as payload."""
        kind, letter = _KIND[member.kind]
        name = member.name.encode("utf-8", "surrogateescape")
        payload = member.target.encode("utf-8", "surrogateescape")
        self._hashed += b"%s%s%s%s%s" % (U64(len(name)), name, letter, U32_U64(member.mode, len(payload)), payload)
        self._batch += tar_header(member.name, kind, member.mode, 0, member.target)
        if member.kind == "symlink":
            self.file_count += 1
            if self.names is not None:
                self.names.append(member.name)

    def _flush_checked(self) -> None:
        self._flush()
        if self.out.bytes_out > self.limit:
            raise ContextError(
                f"the build context is over the {human_size(self.limit)} upload limit once compressed; leave out "
                "large files with .dockerignore"
            )

    def add_all(self, members: Iterable[Member]) -> None:
        """Every member, in turn. A regular file under 256 KiB (the bulk of a large tree) is handled here inline, its
        lookups bound once: per file, the Python work is otherwise a good part of the time beside the kernel's open,
        fstat, read and close. A larger file, or one that changed while it was read, goes through `_add_file`."""
        check, record = self.check, self._record
        fstat, read, close, isreg, header_of = os.fstat, os.read, os.close, stat.S_ISREG, file_header
        for member in members:
            check()
            self.member_count += 1
            source = member.source
            if member.kind == "file" and source is not None:
                name = member.name
                fd = _open(name, source)
                try:
                    # Size, mode and type from the open file (its only stat): a path swapped for a FIFO or a link
                    # since the walk must not block us.
                    opened = fstat(fd)
                    size = opened.st_size
                    chunk = None
                    if isreg(opened.st_mode) and size < _BATCH:
                        chunk = b""
                        if size:
                            check()  # before each read, as the general path does
                            chunk = read(fd, size)
                except OSError as exc:
                    raise ContextError(f"cannot read {name} ({source}): {exc.strerror or exc}") from None
                finally:
                    close(fd)
                if chunk is not None and len(chunk) == size:
                    mode = opened.st_mode & 0o7777
                    encoded = name.encode("utf-8", "surrogateescape")
                    self._hashed += b"".join((U64(len(encoded)), encoded, b"f", U32_U64(mode, size), chunk))
                    self._batch += b"".join((header_of(name, encoded, mode, size), chunk, PADDING[size % BLOCK]))
                    record(name, size)
                else:  # large, not a regular file, or changed since its fstat
                    self._add_file(member)
            else:
                self._add_entry(member)
            if len(self._batch) >= _BATCH:
                self._flush_checked()

    def _add_file(self, member: Member) -> None:
        """A regular file of any size, opened again and read in 1 MiB chunks (`_copy`)."""
        path = member.source
        assert path is not None
        fd = _open(member.name, path)
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise ContextError(f"{member.name} stopped being a regular file while it was packaged; retry")
            size, mode = opened.st_size, opened.st_mode & 0o7777
            name = member.name.encode("utf-8", "surrogateescape")
            self._batch += file_header(member.name, name, mode, size)
            self._hashed += b"%s%sf%s" % (U64(len(name)), name, U32_U64(mode, size))
            self._copy(fd, member, size)
            self._batch += PADDING[size % BLOCK]
        finally:
            os.close(fd)
        self._record(member.name, size)

    def _record(self, name: str, size: int) -> None:
        """Count a regular file of `size` bytes stored as `name`, and note it among the largest or secret-like."""
        self.raw_bytes += size
        self.file_count += 1
        self.regular_files += 1
        if self.names is not None:
            self.names.append(name)
        largest = self.largest
        if len(largest) < 5:
            heapq.heappush(largest, (size, name))
        elif size >= largest[0][0] and (size, name) > largest[0]:
            heapq.heapreplace(largest, (size, name))
        if is_secret_like(name.rpartition("/")[2]):
            self.secret_like.append(name)

    @staticmethod
    def _read(fd: int, member: Member, size: int) -> bytes:
        try:
            chunk = os.read(fd, size)
        except OSError as exc:
            raise ContextError(f"cannot read {member.name} ({member.source}): {exc.strerror or exc}") from None
        if not chunk:
            raise ContextError(f"{member.name} shrank while it was packaged; retry when nothing writes to it")
        return chunk

    def _copy(self, fd: int, member: Member, size: int) -> None:
        """The content of a file from `fd`, checking for a cancellation before each 1 MiB read."""
        remaining = size
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
        self._batch += end_of_archive(self.out.bytes_in + len(self._batch))
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


def _open(name: str, path: str) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise ContextError(f"cannot read {name} ({path}): {exc.strerror or exc}") from None


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
        writer.add_all(members)
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
