"""The archive writer's own tar headers and the walk's streaming order (`packaging.archive`, `packaging.walk`)."""

from __future__ import annotations

import gzip
import itertools
import os
import tarfile
from pathlib import Path

import pytest

from sgp_action.packaging.archive import BuildContextSpec, build_context, list_members, tar_header
from sgp_action.packaging.walk import Walker

NAMES = [
    "a",
    "Dockerfile",
    "src/pkg/mod.py",
    "x" * 99,
    "x" * 100,
    "x" * 101,
    "d/" + "y" * 97,
    "d/" + "y" * 98,
    "p" * 60 + "/" + "q" * 60,
    "caf\u00e9.txt",
    "\u65e5\u672c/\u8a9e.md",
    os.fsdecode(b"bytes/caf\xe9.txt"),
    "sp ace/tab\there",
    "line\nbreak",
    "del\x7f",
]
MODES = [0o644, 0o755, 0o600, 0o4755, 0o2775, 0o1777, 0o777, 0o000]
SIZES = [0, 1, 511, 512, 513, 1024 * 1024, 8**11 - 1, 8**11]
LINKS = ["", "target", "../up/" + "z" * 94, "../up/" + "z" * 95, "\u00fcber", os.fsdecode(b"\xff")]


def tarfile_header(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize("name", NAMES)
def test_file_headers_are_tarfiles_bytes(name: str) -> None:
    for mode, size in itertools.product(MODES, SIZES):
        assert tar_header(name, b"0", mode, size) == tarfile_header(name, b"0", mode, size), (name, mode, size)


@pytest.mark.parametrize("name", NAMES)
def test_directory_and_link_headers_are_tarfiles_bytes(name: str) -> None:
    for mode in MODES:
        assert tar_header(name, b"5", mode) == tarfile_header(name, b"5", mode), (name, mode)
    for link in LINKS:
        assert tar_header(name, b"2", 0o777, 0, link) == tarfile_header(name, b"2", 0o777, 0, link), (name, link)


def make(root: Path, names: list[str]) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return root


# Names around `/` (0x2f) in byte order: `-` and `.` sort before a folder's `/`, `0` and letters after it.
TRICKY = [
    "Dockerfile",
    "a-b",
    "a.b",
    "a/b-c/d",
    "a/b.c",
    "a/b/c",
    "a/b0",
    "a0",
    "ab/c",
    "A/z",
    "\u00e9/x",
    "z",
]


def test_streamed_order_is_the_byte_order_of_stored_names(tmp_path: Path) -> None:
    root = make(tmp_path / "ctx", TRICKY)
    (root / "empty").mkdir()
    members = Walker(BuildContextSpec.plain(root)).walk()
    keys = [m.sort_key for m in members]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys))
    assert [m.name for m in members if m.kind != "dir"] == sorted(TRICKY, key=lambda n: n.encode())


def test_members_stream_as_the_walk_goes(tmp_path: Path) -> None:
    # The whole member list was built (and kept for the run) before the first byte was written: 0.5 KB a file.
    root = make(tmp_path / "ctx", ["Dockerfile", *(f"d{i}/f.txt" for i in range(20))])
    folders: list[int] = []
    members = Walker(BuildContextSpec.plain(root), lambda: folders.append(1)).iter_members()
    assert next(members).name == "Dockerfile"
    assert [m.name for m in itertools.islice(members, 2)] == ["d0", "d0/f.txt"]
    assert len(folders) == 2  # the root and d0, not the 19 folders after them
    assert len(list(members)) == 2 * 19


def test_a_folder_named_like_a_root_file_replaces_it_when_it_keeps_something(tmp_path: Path) -> None:
    root = make(tmp_path / "ctx", ["docker/Dockerfile", "Dockerfile/inner.txt", "Dockerfile-dev"])
    spec = BuildContextSpec("manifest", root.resolve(), (".",), "docker/Dockerfile", None, False, root.resolve())
    assert list_members(spec) == ["Dockerfile-dev", "Dockerfile/inner.txt", "docker/Dockerfile"]
    (root / "Dockerfile/inner.txt").unlink()  # an empty folder in scope is still an entry: it still wins
    assert list_members(spec) == ["Dockerfile-dev", "docker/Dockerfile"]
    spec = BuildContextSpec("manifest", root.resolve(), ("docker",), "docker/Dockerfile", None, False, root.resolve())
    assert list_members(spec) == ["Dockerfile", "docker/Dockerfile"]


def test_names_are_kept_only_when_asked(tmp_path: Path) -> None:
    root = make(tmp_path / "ctx", ["Dockerfile", "a/b.txt"])
    kept = build_context(BuildContextSpec.plain(root), tmp_path / "kept.tgz")
    flat = build_context(BuildContextSpec.plain(root), tmp_path / "flat.tgz", keep_names=False)
    assert kept.members == ("Dockerfile", "a/b.txt") and flat.members == ()
    assert (tmp_path / "kept.tgz").read_bytes() == (tmp_path / "flat.tgz").read_bytes()


def test_every_archived_header_is_tarfiles_bytes(tmp_path: Path) -> None:
    # The writer builds most file headers inline, apart from tar_header: check them in a real archive.
    root = tmp_path / "ctx"
    names = ["Dockerfile", *(n for n in NAMES if "\n" not in n and "\x7f" not in n)]
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * [0, 1, 511, 512, 513, 4000][i % 6])
        path.chmod(MODES[i % len(MODES)] | 0o400)
    os.symlink("Dockerfile", root / "link")
    build_context(BuildContextSpec.plain(root), tmp_path / "out.tgz", level=1)
    raw = gzip.decompress((tmp_path / "out.tgz").read_bytes())
    seen = 0
    with tarfile.open(tmp_path / "out.tgz", "r:gz", encoding="utf-8", errors="surrogateescape") as tar:
        for info in tar:
            kind = b"5" if info.isdir() else b"2" if info.issym() else b"0"
            expected = tarfile_header(info.name, kind, info.mode, info.size, info.linkname)
            assert raw[info.offset : info.offset_data] == expected, info.name
            seen += 1
    assert seen > len(names)
