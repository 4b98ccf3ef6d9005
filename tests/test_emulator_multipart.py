"""The emulator's streaming multipart parser and body reader, fed in awkward pieces."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from sgp_action.emulator.multipart import BodyReader, MultipartError, TooLarge, boundary_of, parse_form


class Trickle(io.RawIOBase):
    """A socket-like stream that hands out at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self._at = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._step if size < 0 else min(size, self._step)
        piece = self._data[self._at : self._at + size]
        self._at += len(piece)
        return piece

    def readline(self, size: int | None = -1) -> bytes:
        end = self._data.find(b"\n", self._at)
        stop = len(self._data) if end < 0 else end + 1
        if size is not None and size >= 0:
            stop = min(stop, self._at + size)
        piece = self._data[self._at : stop]
        self._at = stop
        return piece


BOUNDARY = "----tricky"
# Content that looks almost like a delimiter must survive intact.
NASTY = b"\r\n------trick\r\n--" + os.urandom(3000) + b"\r\n----tricky-not-quite" + b"\r\n"


def body(archive: bytes = NASTY) -> bytes:
    return (
        b"preamble to ignore\r\n"
        b'------tricky\r\nContent-Disposition: form-data; name="image_name"\r\n\r\necho\r\n'
        b'------tricky\r\nContent-Disposition: form-data; name="note"\r\n\r\nline one\r\nline two\r\n'
        b'------tricky\r\nContent-Disposition: form-data; name="context_archive"; filename="c.tar.gz"\r\n'
        b"Content-Type: application/gzip\r\n\r\n" + archive + b"\r\n------tricky--\r\nepilogue"
    )


@pytest.mark.parametrize("step", [1, 7, 100, 65536])
def test_parts_survive_any_read_size(tmp_path: Path, step: int) -> None:
    data = body()
    form = parse_form(BodyReader(Trickle(data, step), len(data), False), BOUNDARY, str(tmp_path), 10**6)  # type: ignore[arg-type]
    assert form.fields == {"image_name": ["echo"], "note": ["line one\r\nline two"]}
    [part] = form.files["context_archive"]
    assert part.filename == "c.tar.gz" and part.content_type == "application/gzip" and part.size == len(NASTY)
    assert Path(part.path).read_bytes() == NASTY and Path(part.path).parent == tmp_path


def chunked(data: bytes, size: int) -> bytes:
    out = b""
    for at in range(0, len(data), size):
        piece = data[at : at + size]
        out += b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\nTrailer: x\r\n\r\n"


def test_chunked_bodies_are_decoded(tmp_path: Path) -> None:
    stream = Trickle(chunked(body(), 333) + b"NEXT REQUEST", 50)
    reader = BodyReader(stream, None, True)  # type: ignore[arg-type]
    form = parse_form(reader, BOUNDARY, str(tmp_path), 10**6)
    assert Path(form.files["context_archive"][0].path).read_bytes() == NASTY
    assert reader.discard(100) and stream.read(100) == b"NEXT REQUEST"  # stops exactly at the body's end


def test_a_file_over_the_limit_stops_and_leaves_nothing(tmp_path: Path) -> None:
    data = body(os.urandom(50_000))
    reader = BodyReader(Trickle(data, 4096), len(data), False)  # type: ignore[arg-type]
    with pytest.raises(TooLarge):
        parse_form(reader, BOUNDARY, str(tmp_path), 10_000)
    assert os.listdir(tmp_path) == []
    assert reader.consumed < len(data)  # reading stopped early


def test_a_text_field_over_the_limit_is_an_error(tmp_path: Path) -> None:
    data = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n' + b"a" * (1024 * 1024 + 1) + b"\r\n--b--\r\n"
    with pytest.raises(MultipartError, match="longer than"):
        parse_form(BodyReader(io.BytesIO(data), len(data), False), "b", str(tmp_path), 10)


def test_a_short_body_is_an_error(tmp_path: Path) -> None:
    data = body()
    reader = BodyReader(io.BytesIO(data[:-40]), len(data), False)
    with pytest.raises(MultipartError, match="before Content-Length"):
        parse_form(reader, BOUNDARY, str(tmp_path), 10**6)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=abc", "abc"),
        ('Multipart/Form-Data; charset=utf-8; boundary="a b"', "a b"),
    ],
)
def test_boundary_of(content_type: str, boundary: str) -> None:
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize("content_type", ["", "text/plain", "multipart/form-data", "multipart/form-data; boundary="])
def test_boundary_of_refuses(content_type: str) -> None:
    with pytest.raises(MultipartError):
        boundary_of(content_type)


@pytest.mark.parametrize(("data", "length", "chunked"), [(b"x" * 10, 100, False), (b"5\r\nabc", None, True)])
def test_discard_of_a_body_cut_short_says_not_drained(data: bytes, length: int | None, chunked: bool) -> None:
    """A cancelled upload ends the body early: the error answer must not crash on draining it."""
    reader = BodyReader(io.BytesIO(data), length, chunked)
    assert reader.discard(10**6) is False
