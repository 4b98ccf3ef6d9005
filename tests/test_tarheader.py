"""The tar header writer: its fast paths give exactly `tarfile`'s bytes."""

from __future__ import annotations

import io
import tarfile

import pytest

from sgp_action.packaging.tarheader import REGTYPE, end_of_archive, file_header, tar_header


@pytest.mark.parametrize(
    ("name", "mode", "size"),
    [
        ("a.txt", 0o644, 0),
        ("dir/x" * 20, 0o755, 1 << 20),
        ("é.txt", 0o600, 5),
        ("a" * 101, 0o644, 1),
        ("b", 0o4755, 8**11),
    ],
)
def test_file_header_is_tar_header(name: str, mode: int, size: int) -> None:
    assert file_header(name, name.encode("utf-8", "surrogateescape"), mode, size) == tar_header(
        name, REGTYPE, mode, size
    )


@pytest.mark.parametrize("written", [0, 512, 1024 * 9, 10240 - 1024, 10240, 10240 * 3 + 512])
def test_end_of_archive_pads_to_a_record_as_tarfile_does(written: int) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.fileobj.write(bytes(written))
        tar.offset = written
    assert bytes(written) + end_of_archive(written) == buffer.getvalue()
