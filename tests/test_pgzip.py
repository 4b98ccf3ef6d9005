"""Parallel gzip: a single valid gzip member, byte-identical for the same input, close to `gzip -6` in size."""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from sgp_action.packaging import pgzip
from sgp_action.packaging.pgzip import WINDOW, ParallelGzipWriter

BLOCK = 64 * 1024


def compress(
    data: bytes, *, block_size: int = BLOCK, threads: int | None = 2, chunk: int = 10_000, level: int = 6
) -> bytes:
    out = io.BytesIO()
    with ParallelGzipWriter(out, level=level, threads=threads, block_size=block_size) as writer:
        for start in range(0, len(data), chunk):
            writer.write(data[start : start + chunk])
    return out.getvalue()


def text(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [
        rng.choice(["def", "return", "self", "import", "value", "class", "for", "in", "x", "None"]) for _ in range(4000)
    ]
    line = " ".join(words).encode()
    return (line * (size // len(line) + 1))[:size]


SIZES = [0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 3 * BLOCK + 17, 7 * BLOCK + WINDOW]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "random"])
def test_round_trip(size: int, kind: str) -> None:
    data = text(size) if kind == "text" else random.Random(size).randbytes(size)
    packed = compress(data)
    assert gzip.decompress(packed) == data
    # One member: a raw inflate of the deflate stream ends exactly before the 8-byte trailer.
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(packed[10:]) == data
    assert inflater.eof and inflater.unused_data == packed[-8:]
    assert int.from_bytes(packed[-8:-4], "little") == zlib.crc32(data)
    assert int.from_bytes(packed[-4:], "little") == size


@pytest.mark.parametrize("level", [1, 6, 9])
def test_header_has_no_name_and_no_time(level: int) -> None:
    packed = compress(b"hello " * 1000, level=level)
    assert packed[:4] == b"\x1f\x8b\x08\x00"  # FLG 0: no FNAME, FCOMMENT, FEXTRA
    assert packed[4:8] == b"\x00\x00\x00\x00"  # MTIME 0
    assert packed[8] == {1: 4, 6: 0, 9: 2}[level]


def test_deterministic_whatever_the_threads_and_write_sizes() -> None:
    data = text(5 * BLOCK + 123) + random.Random(3).randbytes(2 * BLOCK)
    outputs = {
        compress(data, threads=threads, chunk=chunk) for threads in (1, 2, 4) for chunk in (1, 511, 10_000, len(data))
    }
    assert len(outputs) == 1


def test_gzip_tool_reads_it(tmp_path: Path) -> None:
    gzip_tool = shutil.which("gzip")
    if gzip_tool is None:
        pytest.fail("the gzip tool is needed by this test")
    data = text(3 * BLOCK + 5)
    path = tmp_path / "x.gz"
    path.write_bytes(compress(data))
    assert subprocess.run([gzip_tool, "-t", str(path)], check=False).returncode == 0
    assert subprocess.run([gzip_tool, "-dc", str(path)], capture_output=True, check=True).stdout == data


def test_tarfile_streams_through_it() -> None:
    out = io.BytesIO()
    with ParallelGzipWriter(out, threads=2, block_size=BLOCK) as writer, tarfile.open(fileobj=writer, mode="w|") as tar:  # type: ignore[call-overload]
        payload = text(200_000)
        info = tarfile.TarInfo("a.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:gz") as tar:
        member = tar.extractfile("a.txt")
        assert member is not None and member.read() == payload


def test_size_close_to_gzip_6_on_text() -> None:
    data = b"".join(path.read_bytes() for path in sorted(Path(__file__).parent.glob("*.py"))) * 3
    ours = len(compress(data, block_size=128 * 1024))
    reference = len(gzip.compress(data, compresslevel=6, mtime=0))
    assert ours <= reference * 1.05, (ours, reference)


def test_counters_and_memory_bound() -> None:
    class Sink(io.BytesIO):
        pass

    sink = Sink()
    writer = ParallelGzipWriter(sink, threads=2, block_size=BLOCK)
    data = random.Random(9).randbytes(BLOCK)
    for _ in range(40):
        writer.write(data)
        # Never more than 2 * threads blocks queued, plus the one being filled.
        assert len(writer._pending) <= 4 and len(writer._buffer) < BLOCK
    writer.close()
    assert writer.bytes_in == 40 * BLOCK
    assert writer.bytes_out == len(sink.getvalue())
    with pytest.raises(ValueError):
        writer.write(b"late")


def test_abort_writes_no_trailer() -> None:
    out = io.BytesIO()
    writer = ParallelGzipWriter(out, threads=2, block_size=BLOCK)
    writer.write(text(3 * BLOCK))
    writer.abort()
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(out.getvalue())


@pytest.mark.parametrize(("kwargs", "message"), [({"level": 10}, "level"), ({"block_size": 1024}, "block size")])
def test_bad_parameters(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ParallelGzipWriter(io.BytesIO(), **kwargs)


def test_incompressible_blocks_are_stored() -> None:
    data = random.Random(5).randbytes(10 * BLOCK)
    packed = compress(data)
    assert gzip.decompress(packed) == data
    # Stored deflate blocks: 5 bytes per 64 KiB, below what a match search gives for random bytes.
    assert len(packed) <= len(data) * 1.001 + 64
    assert len(packed) <= len(gzip.compress(data, compresslevel=6, mtime=0))


def test_mixed_blocks_keep_their_dictionary() -> None:
    # Text, then random bytes, then the same text again: the third part refers back across a stored block only
    # when the window allows, and every variant must still inflate to the input.
    part = text(3 * BLOCK)
    data = part + random.Random(6).randbytes(2 * BLOCK) + part[: BLOCK // 2]
    assert gzip.decompress(compress(data)) == data


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 2), (8, 8), (64, 8)])
def test_default_threads_follow_the_cpus_up_to_the_cap(
    cpus: int, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert pgzip.default_threads() == expected
