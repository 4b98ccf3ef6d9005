"""A streaming multipart/form-data parser, so a 500 MB build context goes to disk and never sits in memory.

The stdlib `email` parsers and `cgi` read a whole body into memory, which is exactly what the emulator must not do
(docs/emulator.md#builds: the upload goes to disk). This parser reads the request body in fixed-size chunks, keeps
only a boundary-sized tail in memory, writes file parts to a temporary file while counting their bytes, and stops
as soon as a file part passes the size limit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

CHUNK = 64 * 1024
MAX_FIELD_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data; the message is the 400 `detail`."""


class TooLarge(Exception):
    """A file part passed the size limit (answer 413)."""


class BodyReader:
    """Reads a request body framed by Content-Length or by chunked transfer encoding."""

    def __init__(self, rfile: IO[bytes], content_length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._remaining = content_length if not chunked else None
        self._chunked = chunked
        self._chunk_left = 0
        self._done = False
        self.consumed = 0

    def read(self, size: int = CHUNK) -> bytes:
        """Return up to `size` bytes of the body, b"" at its end."""
        if self._done:
            return b""
        data = self._read_chunked(size) if self._chunked else self._read_plain(size)
        self.consumed += len(data)
        return data

    def _read_plain(self, size: int) -> bytes:
        if self._remaining is None or self._remaining <= 0:
            self._done = True
            return b""
        data = self._rfile.read(min(size, self._remaining))
        if not data:
            raise MultipartError("the request body ended before Content-Length bytes arrived")
        self._remaining -= len(data)
        return data

    def _read_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise MultipartError("bad chunk size in chunked request body") from None
            if self._chunk_left == 0:
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailer headers carry nothing the emulator needs
                self._done = True
                return b""
        data = self._rfile.read(min(size, self._chunk_left))
        if not data:
            raise MultipartError("the chunked request body ended early")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(16)
        return data

    def discard(self, cap: int) -> bool:
        """Read and drop the rest of the body when it is at most `cap` bytes; True when the body was drained."""
        if self._remaining is not None and self._remaining > cap:
            return False
        dropped = 0
        while True:
            try:
                data = self.read(CHUNK)
            except (MultipartError, OSError):
                # The client went away mid-body (a cancelled upload): nothing left to drain, the connection closes.
                return False
            if not data:
                return True
            dropped += len(data)
            if dropped > cap:
                return False


@dataclass
class FilePart:
    """A file part stored on disk."""

    path: str
    filename: str
    content_type: str
    size: int


@dataclass
class Form:
    """A parsed form: text fields (decoded UTF-8) and file parts (on disk)."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[FilePart]] = field(default_factory=dict)

    def cleanup(self) -> None:
        """Delete every stored file part."""
        for parts in self.files.values():
            for part in parts:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part.path)


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart/form-data Content-Type, or raise `MultipartError`."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise MultipartError(f"expected a multipart/form-data body, got Content-Type {content_type or '(none)'!r}")
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"')
    raise MultipartError("the multipart/form-data Content-Type has no boundary")


def _disposition(headers: dict[str, str]) -> tuple[str, str | None]:
    value = headers.get("content-disposition", "")
    name: str | None = None
    filename: str | None = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"'):
            raw = raw[1:-1].replace('\\"', '"')
        if key.lower() == "name":
            name = raw
        elif key.lower() == "filename":
            filename = raw
    if not value.lower().startswith("form-data") or name is None:
        raise MultipartError("a multipart part has no Content-Disposition: form-data; name=...")
    return name, filename


class _Buffer:
    """The small window of body bytes the parser looks at."""

    def __init__(self, reader: BodyReader) -> None:
        self.reader = reader
        self.data = b""

    def fill(self, need: int) -> bool:
        while len(self.data) < need:
            chunk = self.reader.read(CHUNK)
            if not chunk:
                return False
            self.data += chunk
        return True


def parse_form(reader: BodyReader, boundary: str, upload_dir: str, max_file_bytes: int) -> Form:
    """Parse a multipart body from `reader`, storing file parts under `upload_dir`.

    Raises `MultipartError` for a malformed body and `TooLarge` once a file part passes `max_file_bytes`
    (the bytes already stored are deleted; the rest of the body is left unread).
    """
    form = Form()
    try:
        _parse(reader, boundary.encode("latin-1"), upload_dir, max_file_bytes, form)
    except BaseException:
        form.cleanup()
        raise
    return form


def _parse(reader: BodyReader, boundary: bytes, upload_dir: str, max_file_bytes: int, form: Form) -> None:
    buf = _Buffer(reader)
    opening = b"--" + boundary
    delimiter = b"\r\n--" + boundary
    # The preamble before the first boundary is ignored (RFC 2046 section 5.1.1).
    while True:
        at = buf.data.find(opening)
        if at >= 0:
            buf.data = buf.data[at + len(opening) :]
            break
        buf.data = buf.data[-len(opening) :]
        if not buf.fill(len(buf.data) + 1):
            raise MultipartError("the multipart body has no opening boundary")
    while True:
        if not buf.fill(2):
            raise MultipartError("the multipart body ends without its closing boundary")
        if buf.data.startswith(b"--"):
            return
        if not buf.data.startswith(b"\r\n"):
            raise MultipartError("malformed multipart boundary line")
        buf.data = buf.data[2:]
        headers = _read_headers(buf)
        name, filename = _disposition(headers)
        if filename is not None:
            fd, path = tempfile.mkstemp(prefix="upload-", dir=upload_dir)
            part = FilePart(path, filename, headers.get("content-type", "application/octet-stream"), 0)
            form.files.setdefault(name, []).append(part)
            with os.fdopen(fd, "wb") as sink:
                part.size = _copy_part(buf, delimiter, sink.write, max_file_bytes)
        else:
            chunks: list[bytes] = []
            _copy_part(buf, delimiter, chunks.append, MAX_FIELD_BYTES, field_name=name)
            try:
                form.fields.setdefault(name, []).append(b"".join(chunks).decode("utf-8"))
            except UnicodeDecodeError:
                raise MultipartError(f"form field {name!r} is not UTF-8 text") from None


def _read_headers(buf: _Buffer) -> dict[str, str]:
    while True:
        end = buf.data.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf.data) > MAX_HEADER_BYTES:
            raise MultipartError("a multipart part's headers are too long")
        if not buf.fill(len(buf.data) + 1):
            raise MultipartError("the multipart body ends inside a part's headers")
    raw, buf.data = buf.data[:end], buf.data[end + 4 :]
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


def _copy_part(
    buf: _Buffer, delimiter: bytes, write: Callable[[bytes], object], limit: int, field_name: str | None = None
) -> int:
    """Move one part's content to `sink` up to the next delimiter; return its size."""
    size = 0
    keep = len(delimiter)
    while True:
        at = buf.data.find(delimiter)
        if at >= 0:
            piece, buf.data = buf.data[:at], buf.data[at + len(delimiter) :]
        else:
            # Everything except a possible partial delimiter at the end is content.
            cut = max(0, len(buf.data) - keep)
            piece, buf.data = buf.data[:cut], buf.data[cut:]
        size += len(piece)
        if size > limit:
            if field_name is not None:
                raise MultipartError(f"form field {field_name!r} is longer than {MAX_FIELD_BYTES} bytes")
            raise TooLarge()
        if piece:
            write(piece)
        if at >= 0:
            return size
        if not buf.fill(len(buf.data) + 1):
            raise MultipartError("the multipart body ends inside a part")
