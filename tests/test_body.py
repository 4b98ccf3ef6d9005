"""Bounded body reading: every Content-Encoding this client asks for, the cap before and after inflating."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest
import requests
from urllib3.response import HTTPResponse

from sgp_action.api.body import AnswerTooLarge, UnreadableEncoding, body_text, read_answer, read_capped

TEXT = b'{"id": "b1", "status": "running"}' * 100


def _response(data: bytes, encoding: str = "") -> requests.Response:
    """A response whose body is read from `data` as it would be from the socket, still encoded."""
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = requests.Response()
    response.status_code = 200
    response.headers.update(headers)
    response.raw = HTTPResponse(body=io.BytesIO(data), headers=headers, preload_content=False, decode_content=False)
    return response


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT, ""),
        (TEXT, "identity"),
        (gzip.compress(TEXT), "gzip"),
        (gzip.compress(TEXT), "X-GZIP"),
        (zlib.compress(TEXT), "deflate"),
        (_raw_deflate(TEXT), "deflate"),  # some servers send deflate without its zlib header
        (gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:]), "gzip"),  # two gzip members
    ],
    # Named, not shown: a gzip header holds the time it was made, and xdist's workers must collect the same ids.
    ids=["plain", "identity", "gzip", "x-gzip", "zlib-deflate", "raw-deflate", "two-gzip-members"],
)
def test_every_encoding_reads_whole(data: bytes, encoding: str) -> None:
    assert read_capped(_response(data, encoding), len(TEXT)) == TEXT


@pytest.mark.parametrize("encoding", ["", "gzip", "deflate"])
def test_one_byte_over_the_cap_is_too_large(encoding: str) -> None:
    data = {"": TEXT, "gzip": gzip.compress(TEXT), "deflate": zlib.compress(TEXT)}[encoding]
    with pytest.raises(AnswerTooLarge, match=f"more than {len(TEXT) - 1} bytes"):
        read_capped(_response(data, encoding), len(TEXT) - 1)
    assert read_capped(_response(data, encoding), 10, truncate=True) == TEXT[:10]


@pytest.mark.parametrize(
    ("data", "encoding", "words"),
    [
        (b"\x00\x01", "br", "Content-Encoding 'br' is not one this client accepts"),
        (b"\x1f\x8b\x09" + bytes(7) + b"garbage", "gzip", "corrupt gzip data"),
        (b"not deflate at all", "deflate", "corrupt deflate data"),
    ],
)
def test_unreadable_encodings(data: bytes, encoding: str, words: str) -> None:
    with pytest.raises(UnreadableEncoding, match=words):
        read_capped(_response(data, encoding), 1000)


def test_read_answer_keeps_the_body_and_body_text_caps_an_error() -> None:
    response = _response(gzip.compress(TEXT), "gzip")
    assert read_answer(response, len(TEXT)) == TEXT
    assert response.content == TEXT  # kept: `.content` works afterwards
    huge = _response(b"x" * (1 << 20))
    assert body_text(huge) == "x" * 65536
    assert body_text(_response(b"\x00", "br")) == ""  # an error body that cannot be read is just empty
