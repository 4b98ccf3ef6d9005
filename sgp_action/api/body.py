"""Reading an HTTP answer's body with a hard bound on the bytes read and on the bytes inflated.

`requests` reads a whole body into memory and lets urllib3 inflate it: a 2 MB gzip answer that inflates to 2 GiB
allocates 2 GiB. Here the compressed bytes are read in chunks and inflated with zlib's `max_length`, so no more than
the limit (plus one chunk) is ever held, whatever the answer claims or contains.
"""

from __future__ import annotations

import zlib
from typing import Any

import requests
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

#: The size of each read from the socket (compressed bytes).
CHUNK = 64 * 1024
#: The most read of an error answer, which only feeds a message.
MAX_ERROR_BYTES = 64 * 1024


class AnswerTooLarge(Exception):
    """The body holds more than the limit (after decompression)."""


class UnreadableEncoding(ValueError):
    """The body's Content-Encoding is one this client never asked for, or its compressed data is corrupt."""


class _Inflater:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), never producing more than asked."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # 32 + MAX_WBITS accepts a gzip or a zlib header; a raw deflate stream is tried when that fails at once.
        self._inflater: Any = zlib.decompressobj(32 + zlib.MAX_WBITS)
        self._started = False

    def inflate(self, data: bytes, room: int) -> tuple[bytes, bytes]:
        """At most `room` bytes of output, and the input not yet used (to pass again)."""
        try:
            out = self._inflater.decompress(data, room)
        except zlib.error as exc:
            if self._started or self.encoding != "deflate":
                raise UnreadableEncoding(f"corrupt {self.encoding} data: {exc}") from None
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self._started = True
            return self.inflate(data, room)
        self._started = True
        if self._inflater.eof:
            rest = self._inflater.unused_data
            if rest and self.encoding == "gzip":  # a gzip body may hold several members, one after the other
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return out, rest if self.encoding == "gzip" else b""
        return out, self._inflater.unconsumed_tail


def _encoding(response: requests.Response) -> str:
    value = response.headers.get("Content-Encoding", "").strip().lower()
    if value in ("", "identity"):
        return ""
    if value in ("gzip", "x-gzip"):
        return "gzip"
    if value == "deflate":
        return "deflate"
    raise UnreadableEncoding(f"Content-Encoding {value[:40]!r} is not one this client accepts (gzip, deflate)")


def _read(raw: Any, size: int) -> bytes:
    """One raw read; urllib3's errors as the `requests` exceptions a caller already handles (and retries)."""
    try:
        return bytes(raw.read(size, decode_content=False) or b"")
    except ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    except (ProtocolError, DecodeError, OSError) as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc


def read_capped(response: requests.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The decoded body, at most `limit` bytes: AnswerTooLarge beyond it, or the first `limit` bytes if `truncate`.

    UnreadableEncoding for an encoding other than gzip/deflate/identity or corrupt compressed data.
    """
    encoding = _encoding(response)
    inflater = _Inflater(encoding) if encoding else None
    out = bytearray()
    while True:
        data = _read(response.raw, CHUNK)
        if not data:
            return bytes(out)
        while data:
            room, pending = limit + 1 - len(out), len(data)
            if inflater is None:
                piece, data = data[:room], data[room:]
            else:
                piece, data = inflater.inflate(data, room)
            out += piece
            if len(out) > limit:
                if truncate:
                    return bytes(out[:limit])
                raise AnswerTooLarge(f"more than {limit} bytes" + (f" once {encoding}-decoded" if encoding else ""))
            if not piece and len(data) >= pending:
                break  # no progress: the compressed stream ended, and what trails it is ignored


def _already_read(response: requests.Response) -> bool:
    """True once the body is in memory (read here, or by `requests` itself for a response built elsewhere)."""
    content: Any = getattr(response, "_content", False)
    return content is not False


def read_answer(response: requests.Response, limit: int) -> bytes:
    """The whole decoded body, read once with `read_capped` and kept on the response (`.content` then works)."""
    if _already_read(response):
        return bytes(response.content or b"")
    content = read_capped(response, limit)
    response._content = content
    return content


def body_text(response: requests.Response) -> str:
    """An error answer's text: at most MAX_ERROR_BYTES of it, never an exception (the answer is already an error)."""
    if _already_read(response):
        content = bytes(response.content or b"")[:MAX_ERROR_BYTES]
    else:
        try:
            content = read_capped(response, MAX_ERROR_BYTES, truncate=True)
        except (AnswerTooLarge, ValueError, requests.exceptions.RequestException):
            content = b""
        response._content = content
    try:
        return content.decode(response.encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", "replace")
